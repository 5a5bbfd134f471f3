import '../src/platform/node';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { Checkpointer, readCheckpoint, TensorEntry, writeCheckpoint } from '../src';
import { loadTf } from '../src/tfjs/backend';
import { snapshot } from '../src/tfjs/snapshot';
import { bytesOf, tempDir } from './helpers';

const KINDS: { dtype: TensorEntry['dtype']; make: (n: number, seed: number) => TensorEntry['data'] }[] = [
  { dtype: 'float32', make: (n, s) => Float32Array.from({ length: n }, (_, i) => (i * 31 + s) / 7) },
  { dtype: 'int32', make: (n, s) => Int32Array.from({ length: n }, (_, i) => i * 97 - s) },
  { dtype: 'uint8', make: (n, s) => Uint8Array.from({ length: n }, (_, i) => (i + s) & 255) },
  { dtype: 'float64', make: (n, s) => Float64Array.from({ length: n }, (_, i) => i / (s + 1)) },
  { dtype: 'bool', make: (n, s) => Uint8Array.from({ length: n }, (_, i) => (i + s) & 1) },
  { dtype: 'float16', make: (n, s) => Uint16Array.from({ length: n }, (_, i) => (i * 13 + s) & 0xffff) },
  { dtype: 'int64', make: (n, s) => BigInt64Array.from({ length: n }, (_, i) => BigInt(i) * 1000000007n - BigInt(s)) },
];
const SHAPES = [[], [0], [1], [3], [2, 3], [4, 1, 2], [2, 0, 5], [1, 1, 1, 2]];

test('30,000 tensors round-trip byte-exactly with every name, dtype and shape', async () => {
  const tensors: Record<string, TensorEntry> = {};
  for (let i = 0; i < 30_000; i++) {
    const kind = KINDS[i % KINDS.length]!;
    const shape = SHAPES[(i * 7) % SHAPES.length]!;
    const n = shape.reduce((a, d) => a * d, 1);
    // Names that sort differently from their insertion order, non-ASCII ones and ones differing only late.
    const name = i % 5 === 0 ? `层/${i}/ünïcode` : i % 5 === 1 ? `model/${(30_000 - i).toString().padStart(6, '0')}/kernel` : `t${i}`;
    tensors[name] = { dtype: kind.dtype, shape, data: kind.make(n, i) };
  }
  const file = path.join(tempDir(), 'many.safetensors');
  await writeCheckpoint(file, tensors);
  const back = await readCheckpoint(file);
  assert.equal(Object.keys(back.tensors).length, 30_000);
  for (const [name, t] of Object.entries(tensors)) {
    const r = back.tensors[name];
    assert.ok(r, `tensor "${name}" is back`);
    assert.equal(r.dtype, t.dtype, `${name} dtype`);
    assert.deepEqual(r.shape, t.shape, `${name} shape`);
    assert.ok(bytesOf(r.data).equals(bytesOf(t.data)), `${name} bytes`);
  }
});

test('10,000 tfjs tensors through snapshot + Checkpointer round-trip exactly (cpu and wasm)', async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    const { tf } = await loadTf(backend);
    const vars: Record<string, ReturnType<typeof tf.variable>> = {};
    for (let i = 0; i < 10_000; i++) {
      const dtype = i % 3 === 0 ? 'int32' : i % 3 === 1 ? 'float32' : 'bool';
      const t = tf.tidy(() => tf.cast(tf.randomUniform([1 + (i % 5), 2], 0, 2, 'float32', i), dtype));
      vars[`layer_${i}/w`] = tf.variable(t, true, undefined, dtype);
      t.dispose();
    }
    const expected = Object.fromEntries(
      Object.entries(vars).map(([k, v]) => [k, { dtype: v.dtype, shape: v.shape, bytes: bytesOf(v.dataSync() as Uint8Array) }]),
    );
    const dir = tempDir();
    const before = tf.memory();
    const ckpt = new Checkpointer({ dir });
    const h = await ckpt.save(1, { tensors: snapshot(tf, vars) });
    for (const v of Object.values(vars)) {
      // the snapshot holds the values of its step while the variables move on
      const z = tf.zerosLike(v);
      v.assign(z);
      z.dispose();
    }
    await h.durable;
    await ckpt.close();
    const loaded = await new Checkpointer({ dir, lock: false }).loadLatest();
    for (const [name, e] of Object.entries(expected)) {
      const t = loaded!.tensors[name]!;
      assert.equal(t.dtype, e.dtype, `${backend} ${name} dtype`);
      assert.deepEqual(t.shape, e.shape, `${backend} ${name} shape`);
      assert.ok(bytesOf(t.data).equals(e.bytes), `${backend} ${name} bytes`);
    }
    const after = tf.memory();
    assert.equal(after.numDataBuffers, before.numDataBuffers, `${backend}: the superseded data was freed, nothing is held`);
    assert.equal(after.numTensors, before.numTensors, `${backend}: no tensor left`);
    Object.values(vars).forEach((v) => v.dispose());
  }
});
