import '../src/platform/node';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { readCheckpoint } from '../src/format/file';
import { bytesOf, tempDir } from './helpers';
import { runTrainer, SMALL } from './soak/trainer-child';
import { checkpointName } from '../src/checkpoint/names';

const N = 50; // 20 steps per epoch with --train-limit 640 --batch 32
const cases = [
  { name: 'inside warmup', k: 5 },
  { name: 'at an epoch boundary', k: 20 },
  { name: 'mid-epoch', k: 33 },
];

async function finalTensors(dir: string) {
  return (await readCheckpoint(path.join(dir, checkpointName(N)))).tensors;
}

for (const backend of ['wasm', 'cpu']) {
  test(`resume is byte-exact on ${backend}: stop at k, exit, resume in a new process, reach N`, { timeout: 300_000 }, async () => {
    const root = tempDir();
    const args = [...SMALL, '--backend', backend, '--save-every', '7'];
    const refDir = path.join(root, 'ref');
    runTrainer([...args, '--steps', String(N), '--dir', refDir]);
    const ref = await finalTensors(refDir);
    assert.ok(Object.keys(ref).length >= 12, 'weights and both Adam slots of every layer');
    for (const { name, k } of cases) {
      const dir = path.join(root, `k${k}`);
      const first = runTrainer([...args, '--steps', String(k), '--dir', dir]);
      assert.ok(
        first.some((e) => e.event === 'durable' && e.step === k),
        `a run given --steps ${k} ends with a durable checkpoint at ${k}`,
      );
      const second = runTrainer([...args, '--steps', String(N), '--dir', dir]);
      assert.equal(second[0]!.event, 'start');
      assert.equal(second[0]!.resumedFrom, k, `${name}: resumed from step ${k}`);
      const got = await finalTensors(dir);
      for (const [tensor, t] of Object.entries(ref)) {
        assert.ok(bytesOf(got[tensor]!.data).equals(bytesOf(t.data)), `${name}: tensor ${tensor} differs after resume`);
      }
    }
  });
}

test('a different seed gives different weights (the exactness check can fail)', { timeout: 120_000 }, async () => {
  const root = tempDir();
  runTrainer([...SMALL, '--backend', 'cpu', '--steps', String(N), '--dir', path.join(root, 'a')]);
  runTrainer([...SMALL, '--backend', 'cpu', '--steps', String(N), '--dir', path.join(root, 'b'), '--seed', '2']);
  const [a, b] = [await finalTensors(path.join(root, 'a')), await finalTensors(path.join(root, 'b'))];
  assert.ok(!bytesOf(a['model/0-dense/kernel']!.data).equals(bytesOf(b['model/0-dense/kernel']!.data)));
});
