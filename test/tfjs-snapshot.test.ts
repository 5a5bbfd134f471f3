import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { loadTf } from '../src/tfjs/backend';
import { byteAccess, retainData } from '../src/tfjs/internals';
import { snapshot } from '../src/tfjs/snapshot';
import { bytesOf, tempDir } from './helpers';

for (const backend of ['cpu', 'wasm'] as const) {
  test(`tfjs internals used by the snapshot still behave as expected (${backend})`, async () => {
    const { tf } = await loadTf(backend);
    const v = tf.variable(tf.tensor1d([1, 2, 3]));
    const held = retainData(tf, v);
    v.assign(tf.tensor1d([7, 8, 9]));
    assert.deepEqual([...(held.dataSync() as Float32Array)], [1, 2, 3], 'a retained reference survives assign');
    const access = byteAccess(tf, held);
    assert.equal(access.kind, backend === 'cpu' ? 'in-place' : 'heap', 'bytes reachable without a read');
    if ('bytes' in access) assert.deepEqual([...new Float32Array(access.bytes.slice().buffer)], [1, 2, 3]);
    held.dispose();
    v.dispose();
  });

  test(`a snapshot holds step s's values while training goes on, and leaks no tensor over 100 saves (${backend})`, async () => {
    const { tf } = await loadTf(backend);
    const w = tf.variable(tf.randomNormal([256, 64], 0, 1, 'float32', 7), true, 'w');
    const opt = tf.train.adam(0.01);
    const x = tf.randomNormal([32, 256], 0, 1, 'float32', 8);
    const stepOnce = () => opt.minimize(() => tf.sum(tf.square(tf.matMul(x, w))) as never);
    stepOnce();
    const dir = tempDir();
    const ckpt = new Checkpointer({ dir, keepLast: 2, maxInflight: 1 });
    const before = tf.memory().numTensors;
    for (let s = 0; s < 100; s++) {
      const expected = (w.dataSync() as Float32Array).slice();
      const h = await ckpt.save(s, { tensors: snapshot(tf, { w }) });
      stepOnce(); // training goes on while the save is written
      stepOnce();
      const d = await h.durable;
      if (s % 25 === 0 || s === 99) {
        const back = await ckpt.load(d!.path);
        assert.ok(bytesOf(back.tensors.w!.data).equals(bytesOf(expected)), `save ${s} holds the values at its step`);
        assert.ok(!bytesOf(back.tensors.w!.data).equals(bytesOf(w.dataSync() as Float32Array)), 'training did change w');
      }
    }
    await ckpt.close();
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    w.dispose();
    x.dispose();
    opt.dispose();
    assert.ok(path.isAbsolute(dir));
  });
}

test('wasm heap copies yield to the event loop by copy budget, not once per slice; the bytes are exact either way', async () => {
  const { tf } = await loadTf('wasm');
  const vars = Array.from({ length: 4 }, (_, i) => tf.variable(tf.randomNormal([1 << 18], 0, 1, 'float32', 20 + i)));
  const named: Record<string, typeof vars[number]> = {};
  vars.forEach((v, i) => (named[`v${i}`] = v));
  const expected = vars.map((v) => bytesOf((v.dataSync() as Float32Array).slice()));
  const slices = (4 * (1 << 20)) / 65536; // 4 tensors of 1 MiB in 64 KiB slices
  const turnsDuring = async (turnBudgetMs: number): Promise<number> => {
    const source = snapshot(tf, named, { sliceBytes: 65536, turnBudgetMs });
    let turns = 0;
    let running = true;
    const tick = () => { if (running) { turns++; setImmediate(tick); } };
    setImmediate(tick);
    const out = await source.materialize();
    running = false;
    vars.forEach((_, i) => assert.ok(bytesOf(out[`v${i}`]!.data).equals(expected[i]!), `v${i} bytes`));
    source.release();
    return turns;
  };
  assert.equal(await turnsDuring(Infinity), 0, 'an unlimited budget copies everything in one turn');
  assert.ok(await turnsDuring(0) >= slices - 1, 'a zero budget yields after every slice');
  vars.forEach((v) => v.dispose());
});
