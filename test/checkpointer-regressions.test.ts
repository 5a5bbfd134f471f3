/** Regressions found in reviews of the Checkpointer: tags racing saves, pointers of other runs, saves below the newest, close with a save waiting. */
import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError } from '../src/binding/errors';
import { testing } from '../src/binding/native';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { readPointer } from '../src/checkpoint/directory';
import { checkpointName } from '../src/checkpoint/manifest';
import { keepBest } from '../src/checkpoint/retention';
import { TensorEntry } from '../src/format/file';
import { listDir, pattern, tempDir } from './helpers';

const { faults } = testing();

const quiet = { onWarning: () => {} };
const t = (step: number): Record<string, TensorEntry> => ({ w: { dtype: 'float32', shape: [1024], data: pattern(1024, step + 1) } });

test('review regressions: tag racing saves, pointers of other runs, a missing old file, a save below the newest, close with a save waiting, the lock through a symlink, steps past 10 digits', async () => {
  // tag() while saves are queued: the tag file names a file that stays, and the record has it.
  let dir = tempDir();
  let c = new Checkpointer({ dir, keepLast: 1, ...quiet });
  await (
    await c.save(10, { tensors: t(10) })
  ).durable;
  const tagged = c.tag(10, 'v1');
  const later = [await c.save(11, { tensors: t(11) }), await c.save(12, { tensors: t(12) })];
  await tagged;
  await Promise.all(later.map((h) => h.durable));
  assert.equal((await readPointer(dir, 'tag.v1'))!.file, checkpointName(10));
  assert.ok(fs.existsSync(path.join(dir, checkpointName(10))), 'the tagged checkpoint stays');
  assert.deepEqual((await c.manifest()).find((e) => e.step === 10)!.tags, ['v1']);
  await c.close();

  // A pointer an earlier run maintained (best-val_acc) keeps its checkpoint when this run does not maintain it.
  dir = tempDir();
  c = new Checkpointer({ dir, keepLast: 1, retention: [keepBest({ metric: 'val_acc', mode: 'max' })], ...quiet });
  await (
    await c.save(1, { tensors: t(1), metrics: { val_acc: 0.9 } })
  ).durable;
  await (
    await c.save(2, { tensors: t(2), metrics: { val_acc: 0.1 } })
  ).durable;
  await c.close();
  c = new Checkpointer({ dir, keepLast: 1, ...quiet });
  const d3 = (await (await c.save(3, { tensors: t(3) })).durable)!;
  assert.deepEqual(d3.pruned, [checkpointName(2)], 'best-val_acc still names step 1, so it stays');
  assert.ok(fs.existsSync(path.join(dir, checkpointName(1))));

  // A checkpoint removed by hand does not make every later save fail (the unlink is already done).
  fs.rmSync(path.join(dir, checkpointName(3)));
  await (
    await c.save(4, { tensors: t(4) })
  ).durable;
  await (
    await c.save(5, { tensors: t(5) })
  ).durable;
  assert.deepEqual(
    listDir(dir).filter((f) => f.startsWith('ckpt-')),
    [checkpointName(1), checkpointName(5)],
  );

  // A save below the newest step is not removed by its own job.
  const low = (await (await c.save(2, { tensors: t(2) })).durable)!;
  assert.deepEqual(low.pruned, []);
  assert.ok(fs.existsSync(path.join(dir, checkpointName(2))));
  assert.equal((await readPointer(dir, 'latest'))!.step, 5, 'latest stays at the newest step');

  // Steps are 10-digit file names.
  await assert.rejects(c.save(10_000_000_000, { tensors: t(1) }), (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS');
  await c.close();

  // close() with a save waiting for room: the lock is released only after that save is durable.
  dir = tempDir();
  c = new Checkpointer({ dir, maxInflight: 1, ...quiet });
  faults.configure({ delayMs: { fdatasync: 150 } });
  try {
    const first = await c.save(1, { tensors: t(1) });
    const second = c.save(2, { tensors: t(2) }); // waits for room
    const closing = c.close();
    const order: string[] = [];
    void first.durable.then(() => order.push('1 durable'));
    void second.then((h) => h.durable).then(() => order.push('2 durable'));
    await closing;
    order.push('closed');
    assert.deepEqual(order, ['1 durable', '2 durable', 'closed']);
  } finally {
    faults.disable();
  }

  // The lock file is never followed through a symlink (an unpacked archive could point it anywhere).
  dir = tempDir();
  const victim = path.join(dir, 'victim.txt');
  fs.writeFileSync(victim, 'keep me');
  fs.mkdirSync(path.join(dir, 'run'));
  fs.symlinkSync(victim, path.join(dir, 'run', 'ckptio.lock'));
  c = new Checkpointer({ dir: path.join(dir, 'run'), ...quiet });
  await assert.rejects(c.manifest(), (err: unknown) => err instanceof CheckpointError && err.code === 'ELOOP');
  assert.equal(fs.readFileSync(victim, 'utf8'), 'keep me');

  // A tag that is a directory or a FIFO is a warning, not a failure or a hang.
  dir = tempDir();
  fs.mkdirSync(path.join(dir, 'tag.x'));
  const { execFileSync } = await import('node:child_process');
  execFileSync('mkfifo', [path.join(dir, 'tag.y')]);
  const warnings: string[] = [];
  c = new Checkpointer({ dir, onWarning: (w) => warnings.push(w) });
  await (
    await c.save(1, { tensors: t(1) })
  ).durable;
  await c.close();
  assert.equal(warnings.filter((w) => w.includes('not a readable pointer')).length, 2);
});
