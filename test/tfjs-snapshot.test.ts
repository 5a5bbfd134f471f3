import '../src/platform/node';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { loadTf } from '../src/tfjs/backend';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { cpuValues, currentBackend, dropData, heapBytes, holdData } from '../src/tfjs/internals';
import { snapshot, StagingArena } from '../src/tfjs/snapshot';
import { TensorList } from '../src/format/tensor-list';
import { bytesOf, tempDir } from './helpers';

for (const backend of ['cpu', 'wasm'] as const) {
  test(`tfjs internals used by the snapshot still behave as expected (${backend})`, async () => {
    const { tf } = await loadTf(backend);
    const init = tf.tensor1d([1, 2, 3]);
    const v = tf.variable(init);
    init.dispose(); // only the variable references its data now
    const current = currentBackend(tf);
    assert.equal(current.name, backend);
    if (backend === 'cpu') {
      const values = cpuValues(current, v)!;
      v.assign(tf.tensor1d([7, 8, 9]));
      assert.deepEqual([...(values as Float32Array)], [1, 2, 3], 'the old values array is untouched by assign');
      assert.deepEqual([...(cpuValues(current, v) as Float32Array)], [7, 8, 9], 'and the variable has a new one');
    } else {
      assert.equal(cpuValues(current, v), undefined);
      const buffers = tf.memory().numDataBuffers;
      const held = holdData(tf, current, v);
      assert.equal(held.heap, true);
      v.assign(tf.tensor1d([7, 8, 9]));
      assert.equal(tf.memory().numDataBuffers, buffers + 1, 'the held data outlives assign, counted by the engine');
      assert.deepEqual([...new Float32Array(heapBytes(held, 12).slice().buffer)], [1, 2, 3], 'its bytes are the old values');
      dropData(tf, held);
      assert.equal(tf.memory().numDataBuffers, buffers, 'dropping the last reference frees it and the engine forgets it');
    }
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
    const before = tf.memory();
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
    // The snapshot holds data without Tensor objects: count the backend's data buffers and bytes, not only tensors.
    const after = tf.memory();
    assert.equal(after.numTensors, before.numTensors, 'no tensor leaked');
    assert.equal(after.numDataBuffers, before.numDataBuffers, 'no data buffer left held');
    assert.equal(after.numBytes, before.numBytes, 'no bytes left held');
    w.dispose();
    x.dispose();
    opt.dispose();
    assert.ok(path.isAbsolute(dir));
  });
}

test('wasm heap copies (the deprecated arena, where in-place reads are off) yield to the event loop by copy budget, not once per slice; the bytes are exact either way', async () => {
  const { tf } = await loadTf('wasm');
  const vars = Array.from({ length: 4 }, (_, i) => tf.variable(tf.randomNormal([1 << 18], 0, 1, 'float32', 20 + i)));
  const named: Record<string, (typeof vars)[number]> = {};
  vars.forEach((v, i) => (named[`v${i}`] = v));
  const expected = vars.map((v) => bytesOf((v.dataSync() as Float32Array).slice()));
  const slices = (4 * (1 << 20)) / 65536; // 4 tensors of 1 MiB in 64 KiB slices
  const turnsDuring = async (turnBudgetMs: number): Promise<number> => {
    const source = snapshot(tf, named, { sliceBytes: 65536, turnBudgetMs, wasmRead: 'copy', arena: new StagingArena() });
    let turns = 0;
    let running = true;
    const tick = () => {
      if (running) {
        turns++;
        setImmediate(tick);
      }
    };
    setImmediate(tick);
    const out = TensorList.from(await source.materialize()).toRecord();
    running = false;
    vars.forEach((_, i) => assert.ok(bytesOf(out[`v${i}`]!.data).equals(expected[i]!), `v${i} bytes`));
    source.release();
    return turns;
  };
  assert.equal(await turnsDuring(Infinity), 0, 'an unlimited budget copies everything in one turn');
  assert.ok((await turnsDuring(0)) >= slices - 1, 'a zero budget yields after every slice');
  vars.forEach((v) => v.dispose());
});

test('cpu: the arrays a snapshot holds are let go once it is released (nothing is held past the save)', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const { tf } = await loadTf('cpu');
  const w = tf.variable(tf.randomNormal([1024], 0, 1, 'float32', 3));
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 1 });
  const refs: WeakRef<object>[] = [];
  for (let s = 0; s < 5; s++) {
    refs.push(new WeakRef(cpuValues(currentBackend(tf), w)!));
    const h = await ckpt.save(s, { tensors: snapshot(tf, { w }) });
    w.assign(tf.randomNormal([1024], 0, 1, 'float32', 10 + s)); // the held array is now only the snapshot's
    await h.durable;
  }
  await ckpt.close();
  for (let i = 0; i < 10 && refs.some((r) => r.deref() !== undefined); i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  assert.deepEqual(
    refs.map((r) => r.deref() === undefined),
    refs.map(() => true),
    'every superseded array was collected',
  );
  w.dispose();
});
