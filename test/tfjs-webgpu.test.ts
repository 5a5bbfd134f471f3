/** The webgpu backend through Dawn (docs/gpu.md), each case in its own child process that must exit by itself
 * after close(). Here (no GPU) that is Mesa's software OpenGL ES adapter. Skipped, with the reason, where the
 * `webgpu` / `@tensorflow/tfjs-backend-webgpu` packages or the Mesa libraries are missing; CKPTIO_REQUIRE_WEBGPU=1
 * (CI) turns the skip into a failure. */
import '../src/platform/node';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { tempDir } from './helpers';
import type { GpuMemory, WebGpuChildConfig } from './tfjs/webgpu-child';
import { missingSystemLibraries } from '../src/tfjs/webgpu';
import { killLoop } from './soak/killloop';

const child = path.join(__dirname, 'tfjs', 'webgpu-child.js');
const CLI = path.join(__dirname, '..', '..', 'bin', 'ckptio.js');
const env = { ...process.env, EGL_PLATFORM: process.env.EGL_PLATFORM ?? 'surfaceless' };

interface Line {
  adapter?: { software: boolean; dawnBackend: string; description: string };
  error?: string;
  message?: string;
  [k: string]: unknown;
}

function run(cfg: WebGpuChildConfig, extraEnv: Record<string, string> = {}): { status: number | null; signal: string | null; lines: Line[]; stderr: string } {
  // A child that does not exit on its own is killed at the timeout: status null, a signal.
  const r = spawnSync(process.execPath, [child, JSON.stringify(cfg)], { encoding: 'utf8', timeout: 90_000, env: { ...env, ...extraEnv } });
  const lines = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
  return { status: r.status, signal: r.signal, lines, stderr: r.stderr };
}

function ok(cfg: WebGpuChildConfig): Line[] {
  const r = run(cfg);
  assert.equal(r.signal, null, `child ${cfg.phase} did not exit by itself (killed by ${r.signal}): ${r.stderr.slice(-2000)}`);
  assert.equal(r.status, 0, `child ${cfg.phase} failed: ${r.stderr.slice(-2000)}`);
  return r.lines;
}

const probe = (() => {
  const r = run({ phase: 'probe' });
  const err = r.lines.find((l) => l.error);
  if (r.status === 0 && r.lines[0]?.adapter) return { skip: null as string | null, adapter: r.lines[0].adapter };
  const missing = missingSystemLibraries().map((m) => `${m.file} (${m.pkg})`);
  return {
    skip: `webgpu unavailable: ${err ? `${err.error}: ${err.message}` : `child exited ${r.status ?? r.signal}`}${missing.length ? `; not found: ${missing.join(', ')}` : ''}`,
    adapter: null,
  };
})();
const required = process.env.CKPTIO_REQUIRE_WEBGPU === '1';
const skip = probe.skip && !required ? probe.skip : false;
if (probe.skip) process.stderr.write(`# ${probe.skip}${required ? ' (CKPTIO_REQUIRE_WEBGPU=1: failing)' : ' (skipping)'}\n`);

test('webgpu: an adapter is created (CKPTIO_REQUIRE_WEBGPU=1 fails here instead of skipping)', { skip }, () => {
  assert.equal(probe.skip, null, String(probe.skip));
  assert.ok(probe.adapter!.dawnBackend === 'vulkan' || probe.adapter!.dawnBackend === 'opengles');
  assert.equal(typeof probe.adapter!.software, 'boolean');
});

test('webgpu: a snapshot after k steps holds step-k values while training continues', { skip }, () => {
  const lines = ok({ phase: 'snapshot', first: 4 });
  const r = lines.find((l) => l.expected) as {
    expected: Record<string, string>;
    got: Record<string, string>;
    live: Record<string, string>;
    stats: { readBytes: number; peakReadBytesInFlight: number };
  };
  assert.ok(r, 'the child reported');
  assert.ok(
    Object.keys(r.expected).some((k) => k.startsWith('optimizer/')),
    'optimizer slots are in the snapshot',
  );
  assert.deepEqual(r.got, r.expected, 'every tensor of the snapshot has its step-k bytes');
  const changed = Object.keys(r.expected).filter((k) => r.live[k] !== r.expected[k]);
  assert.ok(changed.length >= Object.keys(r.expected).length / 2, `training went on meanwhile (${changed.length} tensors changed)`);
  assert.ok(r.stats.readBytes > 0, 'read through data()');
  assert.ok(r.stats.peakReadBytesInFlight <= Math.max(4096, 16 * 16 * 4), `reads were bounded (${r.stats.peakReadBytesInFlight} bytes in flight)`);
});

test('webgpu: modelState + Checkpointer, k steps -> exit -> restore in a new process -> N steps is byte-identical to N uninterrupted', { skip }, () => {
  const dir = tempDir();
  const full = ok({ phase: 'full', dir: path.join(dir, 'full'), total: 10 }).find((l) => l.done)!;
  ok({ phase: 'first', dir: path.join(dir, 'r'), first: 4 });
  const resumed = ok({ phase: 'resume', dir: path.join(dir, 'r'), total: 10 }).find((l) => l.done)!;
  assert.equal(resumed.step, 10);
  assert.ok(
    Object.keys(full.done as object).some((k) => k.startsWith('optimizer/')),
    'optimizer slots compared',
  );
  assert.deepEqual(resumed.done, full.done, 'every weight, batch-norm statistic and Adam slot byte-identical');
});

test("webgpu: no tensor, data buffer or GPU buffer leak over 100 saves (tf.memory() and the backend's buffer manager before/after)", { skip }, () => {
  const r = ok({ phase: 'leak', dir: tempDir(), saves: 100 }).find((l) => l.before) as unknown as {
    before: GpuMemory;
    after: GpuMemory;
    peak: GpuMemory;
    samples: GpuMemory[];
    saves: number;
    durableSaves: number;
    tensorsPerSave: number;
  };
  assert.equal(r.durableSaves, 104, 'every save (4 warm-up + 100) became durable');
  assert.ok(r.tensorsPerSave >= 10, `weights, batch-norm statistics and Adam slots saved (${r.tensorsPerSave} tensors)`);
  // What a snapshot holds while a save runs: a counted reference on each dataId (the GPU buffer), no Tensor object.
  // A save that kept one would leave data buffers, their bytes and GPU buffers behind.
  const held = ['numTensors', 'numDataBuffers', 'numBytes', 'numDataIds', 'numBytesInGPU', 'numUsedGpuBuffers'] as const;
  for (const k of held) {
    assert.equal(
      r.after[k],
      r.before[k],
      `${k} unchanged over 100 saves (${r.before[k]} -> ${r.after[k]}; every 10 saves: ${r.samples.map((m) => m[k]).join(', ')})`,
    );
    assert.equal(r.peak[k], r.before[k], `${k} never above its starting value after a save (peak ${r.peak[k]})`);
  }
  // The backend pools freed buffers; the pool may round up once but must not grow per save.
  assert.ok(
    r.after.numBytesAllocatedInGPU - r.before.numBytesAllocatedInGPU < 4096,
    `GPU pool did not grow per save (${r.before.numBytesAllocatedInGPU} -> ${r.after.numBytesAllocatedInGPU})`,
  );
  // The pool keeps the high-water mark of buffers alive at once: the reads of a save are issued in turns while
  // training steps run, so a few more may coexist once; a leak grows it with every save.
  assert.ok(
    r.after.numFreeGpuBuffers - r.before.numFreeGpuBuffers <= 8,
    `pooled GPU buffers bounded, not growing per save (${r.before.numFreeGpuBuffers} -> ${r.after.numFreeGpuBuffers}; every 10 saves: ${r.samples.map((m) => m.numFreeGpuBuffers).join(', ')})`,
  );
});

test(
  'webgpu: a read that fails while others are in flight rejects the snapshot, and no tensor is given back to the backend while its read is in flight',
  { skip },
  () => {
    const r = ok({ phase: 'failed-read' }).find((l) => 'reads' in l) as unknown as {
      error: string | null;
      reads: number;
      inFlightAtRejection: number;
      droppedInFlight: number[];
      tensors: number;
    };
    assert.ok(r, 'the child reported');
    assert.match(String(r.error), /injected read failure/, "materialize() rejects with the read's error");
    assert.ok(r.reads >= 3, `several reads were issued (${r.reads} of ${r.tensors} tensors)`);
    assert.equal(r.inFlightAtRejection, 0, 'materialize() settles only once every read it issued has');
    assert.deepEqual(r.droppedInFlight, [], 'no data was given back while a read of it was in flight');
  },
);

test('webgpu: a save issues no GPU read before save() has returned to the caller; every tensor is read before it is durable', { skip }, () => {
  const dir = tempDir();
  const r = ok({ phase: 'read-after-return', dir }).find((l) => 'counts' in l) as unknown as {
    counts: { atReturn: number; atDurable: number }[];
    tensors: number;
  };
  assert.ok(r, 'the child reported');
  for (const [i, c] of r.counts.entries()) {
    assert.equal(c.atReturn, 0, `save ${i + 1}: ${c.atReturn} reads issued before save() returned`);
    assert.equal(c.atDurable, r.tensors, `save ${i + 1}: ${c.atDurable} of ${r.tensors} tensors read by the time it was durable`);
  }
});

test(
  'webgpu: no adapter is a typed ECKPT_NO_GPU_ADAPTER naming what is missing',
  { skip: skip || (!missingSystemLibraries().some((m) => m.file === 'libvulkan.so.1') && 'libvulkan.so.1 is present: the Vulkan-only route may succeed') },
  () => {
    const r = run({ phase: 'probe' }, { CKPTIO_DAWN_BACKENDS: 'vulkan' });
    assert.equal(r.signal, null, 'exits by itself after the failure');
    assert.equal(r.status, 1);
    const err = r.lines.find((l) => l.error)!;
    assert.equal(err.error, 'ECKPT_NO_GPU_ADAPTER');
    assert.match(err.message!, /libvulkan\.so\.1/);
  },
);

test('ckptio train --backend webgpu --steps 5 --train-limit 320: trains, records the adapter, exits by itself', { skip }, async () => {
  const dir = path.join(tempDir(), 'run');
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      'train',
      '--backend',
      'webgpu',
      '--steps',
      '5',
      '--train-limit',
      '320',
      '--batch',
      '32',
      '--layers',
      '32',
      '--save-every',
      '2',
      '--eval-every',
      '5',
      '--log',
      'json',
      '--dir',
      dir,
    ],
    { encoding: 'utf8', timeout: 120_000, env },
  );
  assert.equal(r.signal, null, `the CLI did not exit by itself: ${r.stderr.slice(-2000)}`);
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  const events = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; adapter?: { dawnBackend: string }; step?: number });
  const start = events.find((e) => e.event === 'start')!;
  assert.equal((start as { backend?: string }).backend, 'webgpu');
  assert.ok(start.adapter?.dawnBackend, 'the start event names the adapter');
  assert.equal(events.find((e) => e.event === 'done')?.step, 5);
  const loaded = await new Checkpointer({ dir, lock: false }).loadLatest();
  assert.equal(loaded?.step, 5, `checkpoints written: ${fs.readdirSync(dir).join(', ')}`);
  const prov = (loaded!.state as { provenance: { backend: string; adapter?: { dawnBackend: string; software: boolean; description: string } } }).provenance;
  assert.equal(prov.backend, 'webgpu');
  assert.deepEqual(prov.adapter, start.adapter, "the checkpoint's provenance records the same adapter");
});

test(
  'kill -9 loop on webgpu: ckptio train killed at random points (>= 5 SIGKILLs) and resumed ends byte-identical to an uninterrupted webgpu run',
  { skip, timeout: 600_000 },
  async (t) => {
    process.env.EGL_PLATFORM ??= 'surfaceless'; // the trainers inherit it
    // 8 epochs of 10 steps (320 digits, batch 32), a 16-unit hidden layer with Adam, a checkpoint every 2 steps so
    // a kill between two saves makes the resumed run redo steps. Kill i lands at a random step of the i-th of 7
    // stretches of the run, then up to 300 ms later (inside a step, a save, an eval or the restore).
    const steps = 80;
    const r = await killLoop({
      dir: tempDir(),
      kills: 6,
      steps,
      backend: 'webgpu',
      saveEvery: 2,
      maxDelayMs: 300,
      spread: true,
      seed: 4242,
      trainArgs: ['--epochs', '8', '--layers', '16', '--batch', '32', '--train-limit', '320', '--warmup', '5', '--eval-every', '10', '--log', 'json'],
    });
    const where = JSON.stringify(r.killedAt);
    t.diagnostic(`${r.kills} kills, ${r.runs} runs; per kill, last step reported and where the next run resumed: ${where}`);
    assert.ok(r.kills >= 5, `kills: ${r.kills} (${where})`);
    assert.equal(r.lostAcknowledged, 0, `a restart resumed from before a step acknowledged durable (${where})`);
    assert.equal(r.invalidLoaded, 0, 'every checkpoint left in the directory validates');
    assert.ok(r.killedAt.filter((k) => (k.resumedFrom ?? 0) > 0).length >= 3, `most kills resumed from a checkpoint, not from scratch (${where})`);
    assert.ok(
      r.killedAt.some((k) => k.lastStep > (k.resumedFrom ?? 0)),
      `some kill made the next run redo steps (${where})`,
    );
    assert.equal(r.finalEqual, true, `final weights and Adam slots at step ${steps} differ from the uninterrupted webgpu run (${where})`);
  },
);
