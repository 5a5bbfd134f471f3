/** Dedup of unchanged tensors: stored once and by reference, kept while referenced, loads whole and verified. */
import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError } from '../src/binding/errors';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { MANIFEST_NAME, checkpointName, parseManifest } from '../src/checkpoint/manifest';
import { listDir, tempDir } from './helpers';

const quiet = { onWarning: () => {} };

test('dedup: a frozen layer is stored once and by reference after; retention keeps the file holding it; loads are whole and verified', async () => {
  const { loadTf } = await import('../src/tfjs/backend');
  const { modelState } = await import('../src/tfjs/model-state');
  const { restoreModelState } = await import('../src/tfjs/restore');
  const { tf } = await loadTf('cpu');
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [64], units: 256, trainable: false, name: 'frozen' }), tf.layers.dense({ units: 4, name: 'head' })],
  });
  const optimizer = tf.train.adam(0.01);
  const x = tf.randomNormal([16, 64], 0, 1, 'float32', 3);
  const y = tf.randomNormal([16, 4], 0, 1, 'float32', 4);
  // The frozen layer's variables are still tf-trainable: pass the LayersModel's trainable weights explicitly.
  const vars = model.trainableWeights.map((w) => w.read() as never);
  const stepOnce = () => optimizer.minimize(() => tf.losses.meanSquaredError(y, model.apply(x) as never) as never, false, vars);
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 2, dedup: true, ...quiet });
  const infos = [];
  for (let s = 1; s <= 4; s++) {
    stepOnce();
    infos.push((await (await ckpt.save(s, { tensors: modelState(model, optimizer, { tf }) })).durable)!);
  }
  await ckpt.close();
  const frozenBytes = (64 * 256 + 256) * 4;
  assert.deepEqual(
    infos.map((i) => i.dedupedBytes),
    [0, frozenBytes, frozenBytes, frozenBytes],
    'bytes saved reported per save',
  );
  assert.ok(infos[1]!.bytes < infos[0]!.bytes - frozenBytes + 4096, 'the second file is smaller by the frozen layer');
  // keepLast 2 keeps 3 and 4, and 1, which holds the frozen layer both refer to; 2 goes.
  assert.deepEqual(
    listDir(dir).filter((f) => f.startsWith('ckpt-')),
    [checkpointName(1), checkpointName(3), checkpointName(4)],
  );
  const m = parseManifest(fs.readFileSync(path.join(dir, MANIFEST_NAME)), MANIFEST_NAME);
  assert.deepEqual(m.entries.find((e) => e.step === 1)!.keptBy.sort(), ['referenced by step 3', 'referenced by step 4']);
  // A load is whole and byte-exact, and restores into a fresh model.
  const reader = new Checkpointer({ dir, lock: false, ...quiet });
  const loaded = (await reader.loadLatest())!;
  assert.equal(loaded.step, 4);
  assert.ok(loaded.tensors['model/frozen/kernel'], 'the referenced tensor is back');
  assert.equal(loaded.metadata['ckptio.refs'], undefined);
  const fresh = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [64], units: 256, trainable: false, name: 'frozen' }), tf.layers.dense({ units: 4, name: 'head' })],
  });
  restoreModelState(fresh, tf.train.adam(0.01), loaded, { tf });
  for (const [a, b] of fresh.getWeights().map((w, i) => [w, model.getWeights()[i]!])) {
    assert.ok(Buffer.from((a!.dataSync() as Float32Array).buffer).equals(Buffer.from((b!.dataSync() as Float32Array).buffer)));
  }
  // Across a restart (and a lost manifest) the reference still protects the holder.
  fs.rmSync(path.join(dir, MANIFEST_NAME));
  const again = new Checkpointer({ dir, keepLast: 1, dedup: true, ...quiet });
  const r = await again.prune();
  await again.close();
  assert.deepEqual(r.removed, [checkpointName(3)], 'the holder (1) stays for 4; 3 goes');
  // A holder that is damaged makes the load of a checkpoint referring to it fail (verified), never silently partial.
  const holder = path.join(dir, checkpointName(1));
  const bytes = fs.readFileSync(holder);
  bytes[bytes.length - 8] ^= 0xff;
  fs.writeFileSync(holder, bytes);
  await assert.rejects(
    new Checkpointer({ dir, lock: false, ...quiet }).load(path.join(dir, checkpointName(4))),
    (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_CHECKSUM',
  );
  // A reference that names a path outside the run is refused.
  const { parseRefs } = await import('../src/checkpoint/dedup');
  assert.throws(
    () => parseRefs({ 'ckptio.refs': JSON.stringify({ w: { file: '../x/ckpt-0000000001.safetensors', dtype: 'float32', shape: [1] } }) }, 'f'),
    (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_FORMAT',
  );
});

test('dedup: a step that others reference cannot be saved again (its bytes would change under them)', async () => {
  const { loadTf } = await import('../src/tfjs/backend');
  const { modelState } = await import('../src/tfjs/model-state');
  const { tf } = await loadTf('cpu');
  const frozen = tf.variable(tf.ones([4]), false, 'frozen_dedup_replace');
  const moving = tf.variable(tf.zeros([4]), true, 'moving_dedup_replace');
  const dir = tempDir();
  const c = new Checkpointer({ dir, dedup: true, ...quiet });
  const save = async (s: number) => (await c.save(s, { tensors: modelState(null, null, { tf, variables: { frozen, moving } }) })).durable;
  await save(10);
  moving.assign(tf.ones([4]));
  assert.equal((await save(11))!.dedupedBytes, 16);
  await assert.rejects(save(10), (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS' && err.message.includes('11'));
  await c.close().catch(() => {});
  frozen.dispose();
  moving.dispose();
});
