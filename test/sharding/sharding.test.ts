/** Sharded runs (docs/sharding.md): every rank saves its shard, rank 0's coordination worker commits the step once
 * every shard is present; a step is complete on every rank or does not exist. */
import '../../src/platform/node';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError, PeerError } from '../../src/binding/errors';
import { Checkpointer, DurableInfo } from '../../src/checkpoint/checkpointer';
import { fitCheckpoint } from '../../src/tfjs/callback';
import { decisionName, shardName } from '../../src/checkpoint/shards';
import { TensorEntry } from '../../src/format/file';
import { cli, pattern, tempDir } from '../helpers';
import { LoopFs, powerLossUnavailable } from '../reliability/powerloss';

const CHILD = path.join(__dirname, 'rank-child.js');
const tensors = (rank: number, step: number): Record<string, TensorEntry> => ({
  [`w${rank}`]: { dtype: 'float32', shape: [4096], data: pattern(4096, step * 10 + rank + 1) },
});

interface ChildLine {
  event: string;
  rank: number;
  step: number;
  code?: string;
  ranks?: number[];
  sha256?: string;
}

interface Rank {
  pid: number;
  lines: ChildLine[];
  stderr: string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

function startRank(
  dir: string,
  rank: number,
  world: number,
  steps: number,
  every: number,
  opts: { timeoutMs?: number; mode?: string; env?: NodeJS.ProcessEnv } = {},
): Rank {
  const args = [CHILD, dir, String(rank), String(world), String(steps), String(every), String(opts.timeoutMs ?? 5000), opts.mode ?? 'normal'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  const r: Rank = {
    pid: child.pid!,
    lines: [],
    stderr: '',
    exited: new Promise((resolve) => child.on('close', (code) => resolve(code))),
    kill: (signal = 'SIGKILL') => child.kill(signal),
  };
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) if (l.startsWith('{')) r.lines.push(JSON.parse(l) as ChildLine);
  });
  child.stderr.on('data', (d: Buffer) => (r.stderr += d.toString()));
  return r;
}

async function runAll(dir: string, world: number, steps: number, every: number, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Rank[]> {
  const ranks = Array.from({ length: world }, (_, r) => startRank(dir, r, world, steps, every, opts));
  const codes = await Promise.all(ranks.map((r) => r.exited));
  codes.forEach((c, i) => assert.equal(c, 0, `rank ${i} exited ${c}: ${ranks[i]!.stderr}`));
  return ranks;
}

const finals = (ranks: Rank[]) => ranks.map((r) => r.lines.find((l) => l.event === 'done')!.sha256);

/** The newest complete step, read as any process would (no rank, no lock). */
async function newestComplete(dir: string): Promise<{ step: number; worldSize: number } | null> {
  const reader = new Checkpointer({ dir, lock: false, onWarning: () => {} });
  const s = await reader.loadLatestStep();
  return s && { step: s.step, worldSize: s.worldSize };
}

function newestCompleteInChild(dir: string): { step: number; worldSize: number } | null {
  const code = `const { Checkpointer } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'index.js'))});
    new Checkpointer({ dir: ${JSON.stringify(dir)}, lock: false, onWarning: () => {} }).loadLatestStep().then((s) => console.log(JSON.stringify(s && { step: s.step, worldSize: s.worldSize })));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { step: number; worldSize: number } | null;
}

for (const world of [2, 4]) {
  test(`${world} ranks: every rank's save is durable once the step's record lists every shard; all processes exit, a new set resumes, and the final state is byte-identical to an uninterrupted run`, async () => {
    const whole = await runAll(tempDir(), world, 40, 5);
    for (const r of whole)
      assert.deepEqual(
        r.lines
          .filter((l) => l.event === 'durable')
          .map((l) => l.step)
          .sort((a, b) => a - b), // each step's durable settles on its own
        [5, 10, 15, 20, 25, 30, 35, 40],
      );
    const dir = tempDir();
    await runAll(dir, world, 22, 5);
    assert.deepEqual(await newestComplete(dir), { step: 20, worldSize: world });
    const record = JSON.parse(fs.readFileSync(path.join(dir, decisionName(20)), 'utf8')) as { outcome: string; shards: { file: string }[] };
    assert.equal(record.outcome, 'committed');
    assert.deepEqual(
      record.shards.map((s) => s.file),
      Array.from({ length: world }, (_, r) => shardName(20, r, world)),
    );
    const resumed = await runAll(dir, world, 40, 5);
    for (const r of resumed) assert.equal(r.lines[0]!.step, 20, 'each rank resumed from step 20');
    assert.deepEqual(finals(resumed), finals(whole));
    // The CLI sees the steps: ls lists them with the pointer, verify reads every shard of each.
    const verified = cli(['verify', dir]);
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /ok {3}ckpt-0000000040\.step\.json \(every shard/);
    const listed = JSON.parse(cli(['ls', dir, '--json']).stdout) as { steps: { step: number; worldSize: number; pointers: string[]; problem: unknown }[] };
    assert.deepEqual(
      listed.steps.map((s) => [s.step, s.worldSize, s.pointers, s.problem]),
      [
        [35, world, [], null],
        [40, world, ['latest'], null],
      ],
    );
    // keepLast 2: two complete steps remain, records and shards together.
    const left = fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors') || n.endsWith('.step.json'));
    assert.deepEqual(left.sort(), [35, 40].flatMap((s) => [decisionName(s), ...Array.from({ length: world }, (_, r) => shardName(s, r, world))]).sort());
  });
}

test('a rank that never arrives: the others fail the step with ECKPT_PEER naming it after the timeout, nothing of it becomes visible, training goes on', async () => {
  const dir = tempDir();
  const warnings: string[] = [];
  // Rank 2 saves step 5 and exits before step 10: steps 10 and 15 never complete.
  const ranks = [0, 1, 2].map((r) => startRank(dir, r, 3, 15, 5, { timeoutMs: 3000, mode: r === 2 ? 'stop-at-10' : 'normal' }));
  const codes = await Promise.all(ranks.map((r) => r.exited));
  assert.deepEqual(codes, [0, 0, 3], ranks.map((r) => r.stderr).join('\n'));
  for (const r of ranks.slice(0, 2)) {
    assert.deepEqual(
      r.lines.filter((l) => l.event === 'durable').map((l) => l.step),
      [5],
    );
    const failed = r.lines.filter((l) => l.event === 'failed');
    assert.deepEqual(
      failed.map((l) => [l.step, l.code, l.ranks]),
      [
        [10, 'ECKPT_PEER', [2]],
        [15, 'ECKPT_PEER', [2]],
      ],
    );
    assert.ok(
      r.lines.some((l) => l.event === 'done' && l.step === 15),
      'the loop went on to its end',
    );
  }
  assert.deepEqual(await newestComplete(dir), { step: 5, worldSize: 3 });
  const reader = new Checkpointer({ dir, lock: false, onWarning: (m) => warnings.push(m) });
  assert.equal((await reader.loadLatestStep())!.step, 5);
  assert.deepEqual(warnings, []);
});

test('in one process: a rank that skips or fails its save fails the step for every rank at once; options are checked; a sharded step loads with another world size by merging its shards', async () => {
  const dir = tempDir();
  const quiet = { onWarning: () => {} };
  for (const bad of [
    { rank: 0 },
    { worldSize: 2 },
    { rank: 2, worldSize: 2 },
    { rank: -1, worldSize: 2 },
    { rank: 0, worldSize: 0 },
    { rank: 0, worldSize: 2, peerTimeoutMs: 0 },
    { rank: 0, worldSize: 2, dedup: true },
    { rank: 0, worldSize: 2, best: 'max' as const },
    { peerTimeoutMs: 100 },
  ]) {
    assert.throws(
      () => new Checkpointer({ dir, ...bad, ...quiet }),
      (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_ARGS',
      JSON.stringify(bad),
    );
  }
  // An empty retention list is no policy; fitCheckpoint (the whole model from one process) names what to use instead.
  new Checkpointer({ dir: tempDir(), rank: 0, worldSize: 1, retention: [], lock: false, ...quiet });
  await assert.rejects(
    fitCheckpoint({ layers: [] } as unknown as Parameters<typeof fitCheckpoint>[0], { dir, rank: 0, worldSize: 2, ...quiet }),
    (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_ARGS' && /Checkpointer\.save/.test(e.message),
  );
  const world = 4;
  const ranks = [0, 1, 2, 3].map((rank) => new Checkpointer({ dir, rank, worldSize: world, keepLast: 3, peerTimeoutMs: 20_000, onFull: 'skip', ...quiet }));
  const saveAll = async (step: number) =>
    Promise.all(ranks.map(async (c, rank) => (await c.save(step, { tensors: tensors(rank, step), state: { rank, step } })).durable));
  const first = await Promise.all(await saveAll(1));
  assert.deepEqual(
    first.map((d) => (d as DurableInfo).path),
    Array(4).fill(`${dir}/${decisionName(1)}`),
  );
  // Rank 2's step-2 shard is big and still being written when it saves step 3: no room, step 3 is skipped
  // (onFull: 'skip'), which fails step 3 for every rank at once, not at the 20 s timeout.
  const t0 = performance.now();
  const outcomes = await Promise.all(
    ranks.map(async (c, rank) => {
      if (rank === 2) {
        const big = await c.save(2, { tensors: { big: { dtype: 'float32', shape: [8 << 20], data: new Float32Array(8 << 20) } } });
        const h = await c.save(3, { tensors: tensors(rank, 3) });
        assert.equal(h.skipped, true);
        return Promise.allSettled([big.durable, h.durable]);
      }
      const d2 = (await c.save(2, { tensors: tensors(rank, 2) })).durable;
      await d2;
      return Promise.allSettled([d2, (await c.save(3, { tensors: tensors(rank, 3) })).durable]);
    }),
  );
  assert.ok(performance.now() - t0 < 10_000, 'decided at once, not at the 20 s timeout');
  for (const [rank, [two, three]] of outcomes.entries()) {
    assert.equal(two!.status, 'fulfilled', `rank ${rank} step 2`);
    if (rank === 2) {
      assert.deepEqual(three, { status: 'fulfilled', value: null }); // the skipped save itself resolves null
      continue;
    }
    assert.equal(three!.status, 'rejected');
    const err = (three as PromiseRejectedResult).reason as PeerError;
    assert.equal(err.code, 'ECKPT_PEER');
    assert.deepEqual(err.ranks, [2]);
    assert.match(err.message, /rank 2 skipped its save/);
  }
  await Promise.all(ranks.map((c) => c.flush().catch(() => {})));
  await Promise.all(await saveAll(4));
  await Promise.all(ranks.map((c) => c.close().catch(() => {})));
  assert.equal((await newestComplete(dir))!.step, 4);

  // Another world size: loadLatest refuses; loadLatestStep gives every shard, whose tensors are split anew.
  const two = [0, 1].map((rank) => new Checkpointer({ dir, rank, worldSize: 2, keepLast: 3, ...quiet }));
  await assert.rejects(two[0]!.loadLatest(), (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_MISMATCH' && /loadLatestStep/.test(e.message));
  const step = (await two[1]!.loadLatestStep())!;
  assert.equal(step.worldSize, 4);
  const merged: Record<string, TensorEntry> = Object.assign({}, ...step.shards.map((s) => s.tensors));
  assert.deepEqual(Object.keys(merged).sort(), ['w0', 'w1', 'w2', 'w3']);
  for (let r = 0; r < 4; r++) assert.deepEqual(merged[`w${r}`]!.data, tensors(r, 4)[`w${r}`]!.data);
  const resplit = (rank: number) => Object.fromEntries(Object.entries(merged).filter((_, i) => i % 2 === rank));
  await Promise.all(await Promise.all(two.map(async (c, rank) => (await c.save(5, { tensors: resplit(rank) })).durable)));
  const again = (await two[0]!.loadLatestStep())!;
  assert.equal(again.step, 5);
  assert.equal(again.worldSize, 2);
  assert.deepEqual(Object.keys(Object.assign({}, ...again.shards.map((s) => s.tensors)) as object).sort(), ['w0', 'w1', 'w2', 'w3']);
  // A step is decided once: saving it (or an older one) again is refused before anything is written.
  await assert.rejects(
    two[0]!.save(5, { tensors: resplit(0) }),
    (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_ARGS' && /must increase/.test(e.message),
  );
  await Promise.all(two.map((c) => c.close()));
});

test('rank 0 restarted alone: the step of the other rank in flight fails with ECKPT_PEER at once, and no step mixes shards of two incarnations', async () => {
  const dir = tempDir();
  const quiet = { onWarning: () => {} };
  const opts = { dir, worldSize: 2, peerTimeoutMs: 1500, ...quiet };
  const rank0 = new Checkpointer({ ...opts, rank: 0 });
  const rank1 = new Checkpointer({ ...opts, rank: 1 });
  await Promise.all([rank0, rank1].map(async (c, rank) => (await c.save(1, { tensors: tensors(rank, 1) })).durable));
  await rank0.close();
  // A new rank 0 starts (a new incarnation: it cleans up and names itself coordinator); the old rank 1, still
  // running, saves step 2, and so does the new rank 0. Rank 1's shard is of the old incarnation.
  const again = new Checkpointer({ ...opts, rank: 0 });
  await again.manifest(); // opened
  const h1 = await rank1.save(2, { tensors: tensors(1, 2) });
  const h0 = await again.save(2, { tensors: tensors(0, 2) });
  const [r1, r0] = await Promise.allSettled([h1.durable, h0.durable]);
  assert.equal(r1.status, 'rejected');
  assert.equal(((r1 as PromiseRejectedResult).reason as PeerError).code, 'ECKPT_PEER');
  assert.match(((r1 as PromiseRejectedResult).reason as Error).message, /rank 0 restarted/);
  assert.equal(r0.status, 'rejected');
  assert.deepEqual(((r0 as PromiseRejectedResult).reason as PeerError).ranks, [1]);
  assert.equal((await newestComplete(dir))!.step, 1);
  await Promise.all([again, rank1].map((c) => c.close().catch(() => {})));
});

test('untrusted records and damaged shards: a step whose shard is corrupt or missing, or whose record names other files, is skipped with a warning naming it', async () => {
  const dir = tempDir();
  const quiet = { onWarning: () => {} };
  const ranks = [0, 1].map((rank) => new Checkpointer({ dir, rank, worldSize: 2, keepLast: 5, ...quiet }));
  for (const step of [1, 2, 3, 4])
    await Promise.all(await Promise.all(ranks.map(async (c, rank) => (await c.save(step, { tensors: tensors(rank, step) })).durable)));
  await Promise.all(ranks.map((c) => c.close()));
  // Step 4: a flipped byte in rank 1's shard. Step 3: rank 0's shard removed. Step 2: the record names ../escape.
  const s4 = path.join(dir, shardName(4, 1, 2));
  const bytes = fs.readFileSync(s4);
  bytes[bytes.length - 3]! ^= 0xff;
  fs.writeFileSync(s4, bytes);
  fs.rmSync(path.join(dir, shardName(3, 0, 2)));
  const r2 = JSON.parse(fs.readFileSync(path.join(dir, decisionName(2)), 'utf8')) as { shards: { file: string }[] };
  r2.shards[1]!.file = '../escape.safetensors';
  fs.writeFileSync(path.join(dir, decisionName(2)), JSON.stringify(r2));
  const v = cli(['verify', dir, '--json']);
  assert.equal(v.status, 1);
  const checks = (JSON.parse(v.stdout) as { checks: { name: string; kind: string; ok: boolean; code?: string }[] }).checks.filter((c) => c.kind === 'step');
  assert.deepEqual(
    checks.map((c) => [c.name, c.ok, c.code ?? null]),
    [
      [decisionName(1), true, null],
      [decisionName(2), false, 'ECKPT_FORMAT'],
      [decisionName(3), false, 'ENOENT'],
      [decisionName(4), false, 'ECKPT_CHECKSUM'],
    ],
  );
  const warnings: string[] = [];
  const rank1 = new Checkpointer({ dir, rank: 1, worldSize: 2, lock: false, onWarning: (m) => warnings.push(m) });
  const loaded = (await rank1.loadLatest())!;
  assert.equal(loaded.step, 1);
  assert.deepEqual(loaded.tensors.w1!.data, tensors(1, 1).w1!.data);
  assert.equal(warnings.length, 3, warnings.join('\n'));
  assert.ok(
    warnings.some((w) => /step 4 .*ECKPT_CHECKSUM/.test(w)),
    warnings.join('\n'),
  );
  assert.ok(
    warnings.some((w) => /step 3 .*ENOENT/.test(w)),
    warnings.join('\n'),
  );
  assert.ok(
    warnings.some((w) => /ckpt-0000000002\.step\.json is not a valid step record: shard 1 is not named/.test(w)),
    warnings.join('\n'),
  );
});

test(
  'kill -9 of one rank at random moments (20 kills): the newest visible step is always complete, nothing acknowledged is lost, and the run ends byte-identical to an uninterrupted one',
  { timeout: 600_000 },
  async (t) => {
    const world = 2;
    const steps = 1000;
    const env = { CKPTIO_TEST_STEP_MS: '3', CKPTIO_TEST_YIELD: '1' };
    const whole = await runAll(tempDir(), world, steps, 5, { env, timeoutMs: 2000 });
    const dir = tempDir();
    let kills = 0;
    let acknowledged = 0;
    const resumedFrom: number[] = [];
    for (let round = 0; kills < 20; round++) {
      assert.ok(round < 60, 'the run keeps making progress');
      const ranks = [0, 1].map((r) => startRank(dir, r, world, steps, 5, { env, timeoutMs: 2000 }));
      const victim = ranks[Math.floor(Math.random() * world)]!;
      // From both ranks' start (resumed, training, saving) to a random moment up to 400 ms later.
      while (!ranks.every((r) => r.lines.length > 0)) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, Math.random() * 400));
      victim.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, Math.random() * 100));
      for (const r of ranks) r.kill('SIGKILL');
      await Promise.all(ranks.map((r) => r.exited));
      kills++;
      for (const r of ranks) for (const l of r.lines) if (l.event === 'durable') acknowledged = Math.max(acknowledged, l.step);
      resumedFrom.push(ranks[0]!.lines[0]?.step ?? -1);
      const newest = await newestComplete(dir);
      assert.ok(
        (newest?.step ?? 0) >= acknowledged,
        `round ${round}: step ${acknowledged} was acknowledged durable, the newest complete step is ${newest?.step}`,
      );
      if (newest?.step === steps) break;
    }
    const last = await runAll(dir, world, steps, 5, { env, timeoutMs: 2000 });
    t.diagnostic(`${kills} kills; newest acknowledged ${acknowledged}; rounds resumed from ${resumedFrom.join(', ')}`);
    assert.ok(kills >= 20);
    assert.ok(resumedFrom.filter((s) => s > 0).length >= 15, `most rounds resumed from a saved step: ${resumedFrom.join(', ')}`);
    assert.deepEqual(finals(last), finals(whole));
  },
);

const noPowerLoss = powerLossUnavailable();
test(
  'power loss (XFS shut down without a log flush) at an acknowledgement: the newest complete step is at least the acknowledged one, and every shard it lists validates',
  { skip: noPowerLoss ?? false, timeout: 600_000 },
  async (t) => {
    const root = fs.mkdtempSync('/tmp/ckptio-shard-powerloss-');
    const lfs = new LoopFs('xfs', root);
    const details: string[] = [];
    try {
      for (let round = 0; round < 5; round++) {
        lfs.mount();
        const dir = path.join(lfs.mnt, 'run');
        const ranks = [0, 1].map((r) => startRank(dir, r, 2, 1_000_000, 1, { env: { CKPTIO_TEST_STEP_MS: '2', CKPTIO_TEST_YIELD: '1' }, timeoutMs: 3000 }));
        const target = 3 + Math.floor(Math.random() * 10);
        let acked = -1;
        await new Promise<void>((resolve) => {
          const timer = setInterval(() => {
            const acks = ranks.flatMap((r) => r.lines.filter((l) => l.event === 'durable'));
            if (acks.length < target) return;
            for (const r of ranks) r.kill('SIGSTOP');
            // Read after the freeze: only what was printed before it is a claim the file system is held to.
            acked = Math.max(...ranks.flatMap((r) => r.lines.filter((l) => l.event === 'durable').map((l) => l.step)));
            lfs.shutdown();
            for (const r of ranks) r.kill('SIGKILL');
            clearInterval(timer);
            resolve();
          }, 1);
        });
        await Promise.all(ranks.map((r) => r.exited));
        lfs.unmount();
        lfs.mount();
        // Read in a child: the shards' mappings would keep the file system busy in this process until collected.
        const newest = newestCompleteInChild(dir);
        details.push(`round ${round}: acknowledged ${acked}, newest complete ${newest?.step}`);
        assert.ok(newest !== null && newest.step >= acked, details.join('\n'));
        lfs.unmount();
      }
      t.diagnostic(details.join('; '));
    } finally {
      lfs.dispose();
    }
  },
);
