/** What a new user meets first: parent directories created by ioHandler and import, a CLI that stops quietly when
 * its reader goes away and uses the exit codes it documents, and error messages that name what was passed and what
 * to pass instead. */
import '../src/platform/node';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError } from '../src/binding/errors';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { writeCheckpoint } from '../src/format/file';
import { loadTf } from '../src/tfjs/backend';
import { ioHandler } from '../src/tfjs/io-handler';
import { modelState } from '../src/tfjs/model-state';
import { restoreModelState } from '../src/tfjs/restore';
import { tempDir } from './helpers';

const BIN = path.join(__dirname, '..', '..', 'bin', 'ckptio.js');

test('model.save(ioHandler(p)) creates the missing parent directories, and `ckptio import` too', async () => {
  const { tf } = await loadTf('cpu');
  const root = tempDir();
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
  const file = path.join(root, 'out', 'deeper', 'm.safetensors');
  await model.save(ioHandler(file));
  assert.ok(fs.statSync(file).isFile(), 'written under directories that did not exist');
  const exported = path.join(root, 'exported');
  await model.save(`file://${exported}`).catch(() => null); // tfjs-node is not installed: export through ckptio instead
  execFileSync(process.execPath, [BIN, 'export', file, exported]);
  const imported = path.join(root, 'new', 'dir', 'imported.safetensors');
  execFileSync(process.execPath, [BIN, 'import', exported, imported]);
  assert.ok(fs.statSync(imported).isFile(), 'import created its parent directories');
});

test('a `dir` that names a file is ENOTDIR saying so, not EEXIST from mkdir', async () => {
  const root = tempDir();
  const file = path.join(root, 'a-file');
  fs.writeFileSync(file, 'x');
  const ckpt = new Checkpointer({ dir: file });
  await assert.rejects(
    ckpt.save(1, { tensors: { x: { dtype: 'float32', shape: [1], data: new Float32Array(1) } } }),
    (e: CheckpointError) => e instanceof CheckpointError && e.code === 'ENOTDIR' && /is not a directory/.test(e.message) && e.path === file,
  );
});

test('`ckptio ls DIR | head -1`: the CLI stops quietly (status 0, nothing on stderr) when its reader has gone', async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 50 });
  for (let s = 1; s <= 40; s++) await (await ckpt.save(s, { tensors: { x: { dtype: 'float32', shape: [1], data: new Float32Array([s]) } } })).durable;
  await ckpt.close();
  for (let round = 0; round < 3; round++) {
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${BIN}" ls "${dir}" | head -c 10 >/dev/null; echo "status \${PIPESTATUS[0]}"`], {
      encoding: 'utf8',
    });
    assert.match(r.stdout, /status 0/, r.stdout + r.stderr);
    assert.equal(r.stderr, '', 'nothing on stderr');
  }
});

test('a missing optional package exits with the documented status 5, and the message names the package', () => {
  // The package is hidden from the child's module resolution, as if it were not installed.
  const hide = path.join(tempDir(), 'hide-mnist.js');
  fs.writeFileSync(
    hide,
    `const M = require('node:module'); const r = M._resolveFilename;
M._resolveFilename = function (req, ...rest) { if (req === 'mnist' || req.startsWith('mnist/')) { const e = new Error("Cannot find module '" + req + "'"); e.code = 'MODULE_NOT_FOUND'; throw e; } return r.call(this, req, ...rest); };`,
  );
  const r = spawnSync(process.execPath, ['--require', hide, BIN, 'train', '--dir', tempDir()], { encoding: 'utf8' });
  assert.match(r.stderr, /ckptio: ECKPT_MISSING_PACKAGE: .*mnist/, r.stderr);
  assert.equal(r.status, 5, r.stderr);
});

test('errors name what was passed and what to pass instead: a tf.Tensor, a bare Float32Array, a tf.Tensor as the whole record', async () => {
  const { tf } = await loadTf('cpu');
  const ckpt = new Checkpointer({ dir: tempDir() });
  const w = tf.tensor1d([1, 2, 3]);
  await assert.rejects(
    ckpt.save(1, { tensors: { w } as never }),
    (e: CheckpointError) => e.code === 'ECKPT_ARGS' && /tensor "w" is a tf\.Tensor; pass snapshot\(tf/.test(e.message),
  );
  await assert.rejects(
    ckpt.save(1, { tensors: { w: new Float32Array(3) } as never }),
    (e: CheckpointError) => e.code === 'ECKPT_ARGS' && /tensor "w" is a bare Float32Array; pass \{ dtype: 'float32'/.test(e.message),
  );
  await assert.rejects(
    ckpt.save(1, { tensors: w as never }),
    (e: CheckpointError) => e.code === 'ECKPT_ARGS' && /tensors is a single tf\.Tensor/.test(e.message) && !/kept/.test(e.message),
  );
  await assert.rejects(writeCheckpoint(path.join(tempDir(), 'f'), { w } as never), (e: CheckpointError) => /tensor "w" is a tf\.Tensor/.test(e.message));
  await ckpt.close();
  w.dispose();
});

test('restoring Adam state into SGD says so on the first line, with bounded lists after', async () => {
  const { tf } = await loadTf('cpu');
  const make = () => tf.sequential({ layers: Array.from({ length: 6 }, (_, i) => tf.layers.dense({ units: 4, inputShape: i === 0 ? [4] : undefined })) });
  const a = make();
  const adam = tf.train.adam(0.01);
  a.compile({ optimizer: adam, loss: 'meanSquaredError' });
  await a.fit(tf.ones([2, 4]), tf.ones([2, 4]), { epochs: 1, verbose: 0 });
  const ckpt = new Checkpointer({ dir: tempDir() });
  const h = await ckpt.save(1, { tensors: modelState(a, adam, { tf }) });
  const loaded = await ckpt.load((await h.durable)!.path);
  await ckpt.close();
  const b = make();
  const sgd = tf.train.sgd(0.01);
  let message = '';
  try {
    restoreModelState(b, sgd, loaded, { tf });
  } catch (e) {
    message = (e as CheckpointError).message;
    assert.equal((e as CheckpointError).code, 'ECKPT_MISMATCH');
  }
  const first = message.split('\n')[0]!;
  assert.match(first, /does not match the model: .+/, message);
  assert.ok(message.split('\n').length <= 3 * 9 + 1, `bounded: ${message.split('\n').length} lines`);
});

test('a training checkpoint of a LayersModel becomes a model.json that tf.loadLayersModel loads, with the same predictions bit for bit; a model file given to Checkpointer.load says what to call instead', async () => {
  const { tf } = await loadTf('cpu');
  const { exportTfjsModel, modelJsonHandler } = await import('../src/tfjs/model-json');
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [6], units: 8, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.batchNormalization(),
      tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
  const x = tf.randomNormal([16, 6], 0, 1, 'float32', 3);
  await model.fit(x, tf.randomNormal([16, 3], 0, 1, 'float32', 4), { epochs: 2, verbose: 0 });
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir });
  const h = await ckpt.save(7, { tensors: modelState(model, undefined, { tf }) });
  const file = (await h.durable)!.path;
  await ckpt.close();
  const reader = new Checkpointer({ dir, lock: false });
  assert.deepEqual(await reader.pointer('latest'), { step: 7, path: file }, 'the latest pointer, as a path');
  assert.equal(await reader.pointer('best-val_acc'), null, 'no such pointer');
  await assert.rejects(reader.pointer('../x'), (e: CheckpointError) => e.code === 'ECKPT_ARGS');
  const out = path.join(tempDir(), 'exported');
  execFileSync(process.execPath, [BIN, 'export', file, out]); // the CLI, as a user would
  const loaded = await tf.loadLayersModel(modelJsonHandler(path.join(out, 'model.json')));
  const a = model.predict(x) as import('@tensorflow/tfjs').Tensor;
  const b = loaded.predict(x) as import('@tensorflow/tfjs').Tensor;
  assert.ok(Buffer.from((a.dataSync() as Float32Array).buffer).equals(Buffer.from((b.dataSync() as Float32Array).buffer)), 'same predictions bit for bit');
  const direct = await tf.loadLayersModel(ioHandler(file)); // the checkpoint itself, through the io handler
  assert.ok(Buffer.from(((direct.predict(x) as typeof a).dataSync() as Float32Array).buffer).equals(Buffer.from((a.dataSync() as Float32Array).buffer)));
  const again = await exportTfjsModel(file, path.join(tempDir(), 'lib'));
  assert.ok(fs.existsSync(again.modelJson));
  // The reverse: a model file given to a Checkpointer.
  const modelFile = path.join(tempDir(), 'm.safetensors');
  await model.save(ioHandler(modelFile));
  await assert.rejects(new Checkpointer({ dir: tempDir(), lock: false }).load(modelFile), (e: CheckpointError) =>
    /model file written by ioHandler.*tf\.loadLayersModel\(ioHandler\(path\)\)/.test(e.message),
  );
});

test('ckptio ls says what it checked and shows sizes on disk: a truncated file shows its real size and fails, a flipped data byte shows only with --verify', async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 5 });
  for (let s = 1; s <= 3; s++)
    await (
      await ckpt.save(s, { tensors: { w: { dtype: 'float32', shape: [4096], data: new Float32Array(4096).fill(s) } } })
    ).durable;
  await ckpt.close();
  const f1 = path.join(dir, 'ckpt-0000000001.safetensors');
  const f2 = path.join(dir, 'ckpt-0000000002.safetensors');
  fs.truncateSync(f1, 1000);
  const bytes = fs.readFileSync(f2);
  bytes[bytes.length - 5]! ^= 0xff;
  fs.writeFileSync(f2, bytes);
  const plain = execFileSync(process.execPath, [BIN, 'ls', dir], { encoding: 'utf8' }).split('\n');
  assert.match(plain[1]!, /^STEP\s+TIME\s+SIZE\s+HEADER\s/);
  assert.match(
    plain.find((l) => l.startsWith('1 '))!,
    /\s1000 B\s+NO \(ECKPT_FORMAT\)/,
    'the truncated file: its size on disk, and the header check fails',
  );
  assert.match(
    plain.find((l) => l.startsWith('2 '))!,
    /\s16(\.\d+)? KiB\s+ok\s/,
    'header ok: the data was not read',
  );
  const r = spawnSync(process.execPath, [BIN, 'ls', dir, '--verify'], { encoding: 'utf8' });
  const verified = r.stdout.split('\n');
  assert.match(verified[1]!, /^STEP\s+TIME\s+SIZE\s+VERIFIED\s/);
  assert.match(
    verified.find((l) => l.startsWith('2 '))!,
    /NO \(ECKPT_CHECKSUM\)/,
    'the flipped byte is found with --verify',
  );
});
