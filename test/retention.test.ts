/** Retention policies and their invariants: composition, what is always kept and why, keep-best across restarts. */
import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError } from '../src/binding/errors';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { readPointer } from '../src/checkpoint/directory';
import { MANIFEST_NAME, checkpointName, parseManifest } from '../src/checkpoint/manifest';
import { decideRetention, deleteOlderThan, keepBest, keepEvery, keepLast, keepTagged, keepWithin, RetentionEntry } from '../src/checkpoint/retention';
import { TensorEntry } from '../src/format/file';
import { listDir, pattern, tempDir } from './helpers';

const quiet = { onWarning: () => {} };
const t = (step: number): Record<string, TensorEntry> => ({ w: { dtype: 'float32', shape: [1024], data: pattern(1024, step + 1) } });
const DAY = 86_400_000;
const now = Date.UTC(2026, 11, 1);
const e = (step: number, daysAgo: number, metrics: Record<string, number> = {}, tags: string[] = []): RetentionEntry => ({
  step,
  time: now - daysAgo * DAY,
  metrics,
  tags,
});

test('policies compose; the newest, pointer targets and tagged checkpoints are always kept, with their reasons', () => {
  const entries = [
    e(10, 40, { acc: 0.5, f1: 0.9 }),
    e(20, 35, { acc: 0.9, f1: 0.1 }, ['v1_baseline']),
    e(30, 8, { acc: 0.7, f1: 0.2 }),
    e(40, 3, { acc: 0.6, f1: 0.3 }),
    e(50, 1, { acc: 0.1, f1: 0.4 }),
    e(60, 0, {}),
  ];
  const d = decideRetention(
    entries,
    [keepLast(2), keepBest({ metric: 'acc', mode: 'max' }), keepBest({ metric: 'f1', mode: 'max', k: 2 }), keepEvery(30), deleteOlderThan(30)],
    now,
  );
  assert.deepEqual(d.pointers, { latest: 60, 'best-acc': 20, 'best-f1': 10 });
  assert.deepEqual(d.remove, [40], 'only 40 is kept by nothing');
  assert.ok(d.kept.get(10)!.includes('pointer best-f1'), 'older than 30 days but a pointer names it');
  assert.ok(!d.kept.get(10)!.includes('best f1 #1'), 'its policy reason expired');
  assert.deepEqual(d.kept.get(20), ['pointer best-acc', 'tag v1_baseline']);
  assert.deepEqual(d.kept.get(30), ['every 30 steps']);
  assert.deepEqual(d.kept.get(50), ['last 2', 'best f1 #2']);
  assert.deepEqual(d.kept.get(60), ['last 2', 'every 30 steps', 'newest', 'pointer latest']);
  // keepWithin, keepTagged, min mode, ties go to the earlier step.
  const d2 = decideRetention(
    [e(1, 10, { loss: 0.3 }), e(2, 5, { loss: 0.2 }, ['x']), e(3, 1, { loss: 0.2 }), e(4, 0.5, { loss: 0.9 })],
    [keepWithin(2), keepTagged(), keepBest({ metric: 'loss', mode: 'min' })],
    now,
  );
  assert.deepEqual(d2.pointers['best-loss'], 2);
  assert.deepEqual(d2.remove, [1]);
  assert.deepEqual(d2.kept.get(2), ['tagged x', 'best loss #1', 'pointer best-loss', 'tag x']);
  for (const bad of [
    () => keepLast(0),
    () => keepBest({ metric: 'a b', mode: 'max' }),
    () => keepBest({ metric: 'a', mode: 'up' as 'max' }),
    () => keepEvery(1.5),
    () => keepWithin(-1),
    () => deleteOlderThan(NaN),
  ]) {
    assert.throws(bad, (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS');
  }
});

test('keep-best of two metrics holds across a restart, with its pointers; the manifest records why each is kept', async () => {
  const dir = tempDir();
  const retention = [keepBest({ metric: 'acc', mode: 'max' }), keepBest({ metric: 'f1', mode: 'max' })];
  const metrics: Record<number, Record<string, number>> = {
    1: { acc: 0.9, f1: 0.1 },
    2: { acc: 0.2, f1: 0.8 },
    3: { acc: 0.3, f1: 0.2 },
    4: { acc: 0.4, f1: 0.3 },
    5: { acc: 0.5, f1: 0.4 },
    6: { acc: 0.1, f1: 0.5 },
  };
  let ckpt = new Checkpointer({ dir, keepLast: 1, retention, ...quiet });
  for (const s of [1, 2, 3]) await (await ckpt.save(s, { tensors: t(s), metrics: metrics[s] })).durable;
  await ckpt.close();
  ckpt = new Checkpointer({ dir, keepLast: 1, retention, ...quiet }); // a new process would do the same: state from the manifest
  for (const s of [4, 5, 6]) await (await ckpt.save(s, { tensors: t(s), metrics: metrics[s] })).durable;
  await ckpt.close();
  assert.deepEqual(
    listDir(dir).filter((f) => f.startsWith('ckpt-')),
    [checkpointName(1), checkpointName(2), checkpointName(6)],
  );
  assert.equal((await readPointer(dir, 'best-acc'))!.step, 1);
  assert.equal((await readPointer(dir, 'best-f1'))!.step, 2);
  assert.equal((await readPointer(dir, 'latest'))!.step, 6);
  const m = parseManifest(fs.readFileSync(path.join(dir, MANIFEST_NAME)), MANIFEST_NAME);
  assert.deepEqual(
    m.entries.map((x) => [x.step, x.keptBy]),
    [
      [1, ['best acc #1', 'pointer best-acc']],
      [2, ['best f1 #1', 'pointer best-f1']],
      [6, ['last 1', 'newest', 'pointer latest']],
    ],
  );
  assert.deepEqual(m.entries[2]!.parent, { step: 5, contentId: m.entries[2]!.parent!.contentId }, 'parent: the previous checkpoint of the run');
  assert.match(m.entries[2]!.contentId!, /^[0-9a-f]{16}$/);
  assert.notEqual(m.entries[0]!.contentId, m.entries[1]!.contentId);
});
