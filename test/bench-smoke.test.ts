import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempDir } from './helpers';
import { browserSkipReason } from './browser/harness';

test('npm run bench -- --quick runs and produces every figure (values not asserted)', { timeout: 300_000 }, () => {
  const out = tempDir();
  const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'benches', 'run.js'), '--quick', '--out', out], {
    encoding: 'utf8',
    env: { ...process.env, CKPTIO_BENCH_DIR: tempDir() },
  });
  assert.equal(r.status, 0, r.stderr);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as { results: Record<string, Record<string, unknown>> };
  for (const key of [
    '16MiB:ckptio writeCheckpoint (caller-owned buffers)',
    '16MiB:raw O_DIRECT 4 MiB blocks + fsync (disk limit)',
    '16MiB:fs.promises writeFile + fdatasync + rename',
    '16MiB:load',
    '16MiB:ckptio writeCheckpoint, checksum: false',
    '16MiB:tfjs-wasm',
    '16MiB:tfjs-cpu',
    'steps:synthetic-wasm:every 10',
    'steps:synthetic-cpu:every 1',
    'steps:trainer:every 10',
    'steps:trainer:no saves',
    '16MiB:memory:raw:1',
    '16MiB:memory:raw-copy:2',
    '16MiB:memory:tfjs-wasm:2',
    'compression:trained',
    'compression:random-16MiB',
    'layers:16MiB:cpu',
    'layers:16MiB:wasm',
    'layers:many:cpu',
    'layers:many:wasm',
    'layers:cpuFloorMs',
  ]) {
    assert.ok(json.results[key], `missing figure ${key}`);
    for (const v of Object.values(json.results[key]!)) assert.ok(v !== null && v !== undefined);
  }
  // The LayersModel figures (issue 10): each path's stall, main-thread CPU to durable, restore and many-layers cost.
  type S = { median: number };
  for (const backend of ['cpu', 'wasm']) {
    const l = json.results[`layers:16MiB:${backend}`] as unknown as Record<string, Record<string, S | Record<string, S>>>;
    for (const p of ['ckptio', 'modelSaveFsPromises', 'modelSaveIoHandler']) {
      for (const f of ['stallMs', 'cpuMs', 'doneMs']) assert.ok(Number.isFinite((l[p]![f] as S).median), `layers ${backend} ${p}.${f}`);
    }
    for (const p of ['ckptio', 'loadLayersModel'])
      assert.ok(Number.isFinite((l.restore as Record<string, Record<string, S>>)[p]!.ms!.median), `restore ${backend} ${p}`);
    const many = json.results[`layers:many:${backend}`] as unknown as { tensors: number; stallMs: S; cpuMs: S; stallUsPerTensor: number };
    assert.ok(
      many.tensors >= 600 && Number.isFinite(many.stallMs.median) && Number.isFinite(many.cpuMs.median) && Number.isFinite(many.stallUsPerTensor),
      `many layers ${backend}`,
    );
  }
  // The remote tier's figures, where radosgw is installed (the section starts its own gateway).
  if (spawnSync('sh', ['-c', 'command -v radosgw']).status === 0) {
    for (const key of ['remote:upload', 'remote:download', 'remote:cpuPerSave']) assert.ok(json.results[key], `missing figure ${key}`);
    assert.ok(Number.isFinite((json.results['remote:upload'] as { ratio: number }).ratio));
  }
  // The webgpu section (issue 11): figures where Dawn created an adapter, else the reason it did not.
  if (json.results['webgpu:unavailable']) {
    assert.ok(json.results['webgpu:unavailable']!.reason, 'the webgpu section says why it did not run');
  } else {
    assert.ok(json.results['webgpu:adapter'], 'the webgpu section names its adapter');
    for (const size of ['small', 'large']) {
      const save = json.results[`webgpu:${size}:save`] as unknown as Record<string, Record<string, S>>;
      for (const p of ['ckptio', 'modelSave', 'readOnly', 'batchedPrototype']) assert.ok(Number.isFinite(save[p]!.cpuMs!.median), `webgpu ${size} ${p}.cpuMs`);
      for (const f of ['stallMs', 'snapshotMs', 'issueMs', 'tickMs', 'mappedMs', 'restMs'])
        assert.ok(Number.isFinite(save.ckptio![f]!.median), `webgpu ${size} ckptio.${f}`);
      const steps = json.results[`webgpu:${size}:steps`] as unknown as { meanRatio: number; adapter: string };
      assert.ok(Number.isFinite(steps.meanRatio) && steps.adapter, `webgpu ${size} step-time ratio with its adapter`);
    }
  }
  // The many-tensors section (issue 18): the same bytes in 100 and 10,000 tensors, and the targets row.
  for (const count of [100, 10000]) {
    const t = json.results[`tensors:${count}`] as unknown as { cpuMs: S; gbps: S; loadMs: S };
    for (const f of ['cpuMs', 'gbps', 'loadMs'] as const) assert.ok(Number.isFinite(t[f].median), `tensors ${count} ${f}`);
  }
  assert.ok(Number.isFinite((json.results['tensors:targets'] as unknown as { throughputVs100: number }).throughputVs100), 'tensors targets');
  // The every-step regime: both backends, both loops, at 0.25x and 0.5x of the disk's bytes per step, with the
  // training thread's faults and the same loop in a process that never loads ckptio.
  for (const backend of ['wasm', 'cpu'])
    for (const loop of ['yields', 'sync'])
      for (const f of ['0.25', '0.5']) {
        const key = `everystep:${backend}:${loop}:${f}`;
        const e = json.results[key] as unknown as { meanRatio: number; p99Ratio: number; faultsPerStep: { every: number }; bareProcess: { mean: number } };
        assert.ok(e && Number.isFinite(e.meanRatio) && Number.isFinite(e.p99Ratio), `missing figure ${key}`);
        assert.ok(Number.isFinite(e.faultsPerStep.every) && Number.isFinite(e.bareProcess.mean), `${key}: faults and the bare process`);
      }
  // Default options on the loops users write: cpu and wasm always; webgpu says why when it cannot run.
  for (const backend of ['cpu', 'wasm']) {
    const d = json.results[`defaults:${backend}`] as unknown as { callMs: S; cpuMs: S; fitHoldMs: S; durableByNext: number };
    assert.ok(
      d && Number.isFinite(d.callMs.median) && Number.isFinite(d.cpuMs.median) && Number.isFinite(d.fitHoldMs.median),
      `missing figure defaults:${backend}`,
    );
  }
  // The browser section, where Chromium and playwright-core are present: both backends, with what was copied.
  if (browserSkipReason() === null) {
    for (const backend of ['wasm', 'cpu']) {
      const b = json.results[`browser:16MiB:${backend}`] as unknown as { holdMs: S; durableMs: S; tfjsIndexedDbMs: S; stats: { copiedBytes: number } };
      assert.ok(
        b && Number.isFinite(b.holdMs.median) && Number.isFinite(b.durableMs.median) && Number.isFinite(b.tfjsIndexedDbMs.median),
        `browser ${backend}`,
      );
      assert.ok(Number.isFinite(b.stats.copiedBytes), `browser ${backend}: bytes copied on the page`);
    }
  }
  const md = fs.readFileSync(path.join(out, 'RESULTS.md'), 'utf8');
  assert.match(md, /Machine: .*cores.*Node v/);
  assert.match(md, /## tfjs LayersModel \+ Adam: modelState \+ Checkpointer\.save vs model\.save/);
  assert.match(md, /## webgpu \(Dawn\): main-thread time per save vs model\.save, step time with saves/);
  assert.match(md, /\| \(issue 10\) modelState \+ save ≤ 2 ms of main thread on cpu: stall .*\| (met|NOT met) \|/);
  assert.match(md, /\| \(issue 10\) the same target read as the main thread's CPU time .*\| (met|NOT met) \|/);
});
