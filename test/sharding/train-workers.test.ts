/** `ckptio train --workers N`: data-parallel over N processes with sharded checkpoints (rank 0 the weights, the
 * optimizer's slots dealt over the ranks), resumed byte-identically once every process has exited. */
import '../../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { readCheckpoint } from '../../src/format/file';
import { decisionName } from '../../src/checkpoint/shards';
import { assertSameTensors, cli, tempDir, withoutTestContext } from '../helpers';

const FLAGS = ['--layers', '32', '--train-limit', '2000', '--epochs', '1', '--batch', '32', '--save-every', '4', '--log', 'json'];

function train(dir: string, workers: number, steps: number): { event: string; rank: number; step: number; resumedFrom?: number | null }[] {
  const r = cli(['train', '--workers', String(workers), '--dir', dir, '--steps', String(steps), ...FLAGS], { env: withoutTestContext() });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; rank: number; step: number });
}

/** Every tensor of the step, from all its shards (each tensor is whole in exactly one). */
async function stepTensors(dir: string, step: number) {
  const record = JSON.parse(fs.readFileSync(path.join(dir, decisionName(step)), 'utf8')) as { shards: { file: string }[] };
  const all = await Promise.all(record.shards.map((s) => readCheckpoint(path.join(dir, s.file))));
  const names = all.flatMap((r) => Object.keys(r.tensors));
  assert.equal(new Set(names).size, names.length, 'no tensor is in two shards');
  return { shards: all, tensors: Object.assign({}, ...all.map((r) => r.tensors)) as Awaited<ReturnType<typeof readCheckpoint>>['tensors'] };
}

for (const workers of [2, 4]) {
  test(`train --workers ${workers}: every rank saves its shard, stopped at step 12 and resumed by new processes it ends byte-identical to an uninterrupted run`, async () => {
    const whole = tempDir();
    const events = train(whole, workers, 24);
    for (let rank = 0; rank < workers; rank++) {
      assert.deepEqual(
        events.filter((e) => e.event === 'durable' && e.rank === rank).map((e) => e.step),
        [4, 8, 12, 16, 20, 24],
        `rank ${rank}`,
      );
    }
    const dir = tempDir();
    train(dir, workers, 12);
    const resumed = train(dir, workers, 24);
    assert.deepEqual(
      resumed.filter((e) => e.event === 'start').map((e) => e.resumedFrom),
      Array(workers).fill(12),
    );
    const a = await stepTensors(whole, 24);
    const b = await stepTensors(dir, 24);
    assert.ok(Object.keys(a.tensors).some((n) => n.startsWith('model/')) && Object.keys(a.tensors).some((n) => n.startsWith('optimizer/')));
    assert.ok(
      a.shards.every((s) => Object.keys(s.tensors).length > 0),
      'every rank holds part of the state',
    );
    assertSameTensors(b.tensors, a.tensors);
    // Each rank's shard records its own rank and data position.
    b.shards.forEach((s, rank) => {
      const state = JSON.parse(s.metadata['ckptio.state']!) as { rank: number; step: number; posInEpoch: number };
      assert.deepEqual([state.rank, state.step, state.posInEpoch], [rank, 24, 24]);
    });
  });
}
