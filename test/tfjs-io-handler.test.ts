/** ioHandler (one ckptio file per tfjs model) and model.json export/import (docs/io-handler.md). cpu backend. */
import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError, readCheckpoint, writeCheckpoint } from '../src';
import { testing } from '../src/binding/native';
import { loadTf } from '../src/tfjs/backend';
import { IO_HANDLER_METADATA_KEYS as K, TFJS_DTYPES, ioHandler } from '../src/tfjs/io-handler';
import { EXPORTED_WEIGHTS_RE, exportTfjsModel, importTfjsModel, importTfjsModelToFile, modelJsonHandler } from '../src/tfjs/model-json';
import { commandExists, listDir, pattern, straceNode, tempDir } from './helpers';

const { faults } = testing();

type Tf = typeof tfType;
let tf: Tf;
let x: tfType.Tensor;
let y: tfType.Tensor;

before(async () => {
  tf = (await loadTf('cpu')).tf;
  x = tf.tensor4d(pattern(8 * 6 * 6 * 2, 11), [8, 6, 6, 2]);
  y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32'), 4);
});
after(() => tf.dispose([x, y]));
afterEach(() => faults.disable());

/** dense + conv2d + batchNormalization, adam, trained `steps` steps on fixed data. */
async function trainedModel(steps = 3, seed = 1): Promise<tfType.LayersModel> {
  const init = (s: number) => tf.initializers.glorotUniform({ seed: seed * 100 + s });
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, activation: 'relu', kernelInitializer: init(1) }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init(2) }));
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  for (let i = 0; i < steps; i++) await model.trainOnBatch(x, y);
  return model;
}

function bytes(t: tfType.Tensor): Buffer {
  const d = t.dataSync() as unknown as ArrayBufferView;
  return Buffer.from(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)); // a copy
}

function predictBytes(model: tfType.LayersModel): Buffer {
  const out = model.predict(x) as tfType.Tensor;
  const b = bytes(out);
  out.dispose();
  return b;
}

function assertSameWeights(a: tfType.Tensor[], b: tfType.Tensor[], what: string): void {
  assert.equal(a.length, b.length, `${what}: count`);
  a.forEach((t, i) => {
    assert.equal(t.dtype, b[i]!.dtype, `${what} #${i}: dtype`);
    assert.deepEqual(t.shape, b[i]!.shape, `${what} #${i}: shape`);
    assert.ok(bytes(t).equals(bytes(b[i]!)), `${what} #${i}: bytes`);
  });
}

async function assertSameOptimizer(a: tfType.Optimizer, b: tfType.Optimizer): Promise<void> {
  const wa = await a.getWeights();
  const wb = await b.getWeights();
  assert.deepEqual(
    wb.map((w) => w.name),
    wa.map((w) => w.name),
    'optimizer weight names',
  );
  assertSameWeights(
    wa.map((w) => w.tensor),
    wb.map((w) => w.tensor),
    'optimizer weight',
  );
}

/** What tfjs itself hands a save handler for this model. */
async function tfjsArtifacts(model: tfType.LayersModel, includeOptimizer: boolean): Promise<tfType.io.ModelArtifacts> {
  let captured: tfType.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      captured = a;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }),
    { includeOptimizer },
  );
  return captured!;
}

function isFormatError(pathPart: string, message: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `not a CheckpointError: ${String(e)}`);
    assert.equal(e.code, 'ECKPT_FORMAT', e.message);
    assert.match(e.message, message);
    assert.ok(e.path?.includes(pathPart), `path ${e.path} names ${pathPart}`);
    return true;
  };
}

for (const includeOptimizer of [false, true]) {
  test(`model.save(ioHandler) → tf.loadLayersModel(ioHandler): identical predictions (includeOptimizer ${includeOptimizer})`, async () => {
    const model = await trainedModel();
    const file = path.join(tempDir(), 'model.safetensors');
    const result = await model.save(ioHandler(file), { includeOptimizer });

    // SaveResult: what tfjs's own handlers report for the same artifacts.
    const expected = tf.io.getModelArtifactsInfoForJSON(await tfjsArtifacts(model, includeOptimizer));
    const { dateSaved, ...info } = result.modelArtifactsInfo;
    assert.ok(dateSaved instanceof Date);
    const { dateSaved: _tfjsDate, ...expectedInfo } = expected;
    assert.deepEqual(info, expectedInfo);

    // One checksummed safetensors file: a tensor per weight spec, the JSON fields in the metadata.
    const onDisk = await readCheckpoint(file);
    assert.equal(onDisk.verified, true);
    const specs = JSON.parse(onDisk.metadata[K.weightSpecs]!) as tfType.io.WeightsManifestEntry[];
    assert.deepEqual(Object.keys(onDisk.tensors).sort(), specs.map((s) => s.name).sort());
    for (const s of specs) {
      assert.equal(onDisk.tensors[s.name]!.dtype, TFJS_DTYPES[s.dtype as 'float32'].dtype);
      assert.deepEqual(onDisk.tensors[s.name]!.shape, s.shape);
    }
    assert.equal(onDisk.metadata[K.version], '1');
    assert.equal((JSON.parse(onDisk.metadata[K.modelTopology]!) as { class_name: string }).class_name, 'Sequential');
    assert.equal((JSON.parse(onDisk.metadata[K.formatInfo]!) as { format: string }).format, 'layers-model');
    const optimizerSpecs = specs.filter((s) => s.group === 'optimizer');
    assert.equal(K.trainingConfig in onDisk.metadata, includeOptimizer);
    // Adam: iter, then m and v for each of the 6 trainable weights.
    assert.equal(optimizerSpecs.length, includeOptimizer ? 1 + 2 * model.trainableWeights.length : 0);
    assert.equal(specs.length - optimizerSpecs.length, model.weights.length, 'every model weight, batch-norm moving stats included');

    const loaded = await tf.loadLayersModel(ioHandler(file));
    assert.ok(predictBytes(loaded).equals(predictBytes(model)), 'predictions bit for bit');
    assertSameWeights(loaded.getWeights(), model.getWeights(), 'model weight');
    if (includeOptimizer) {
      assert.ok(loaded.optimizer, 'the optimizer is restored from the training config');
      assert.equal(loaded.optimizer.getClassName(), 'Adam');
      await assertSameOptimizer(loaded.optimizer, model.optimizer);
      // What tfjs's own round trip gives (fromMemory of the same artifacts): one more step lands on the same
      // bytes, so ours is at least (and exactly) what tfjs gives. Neither is byte-exact vs. the uninterrupted
      // run for Adam (accBeta is recomputed); that is modelState/restoreModelState's job.
      const viaTfjs = await tf.loadLayersModel(tf.io.fromMemory(await tfjsArtifacts(model, true)));
      await loaded.trainOnBatch(x, y);
      await viaTfjs.trainOnBatch(x, y);
      assertSameWeights(loaded.getWeights(), viaTfjs.getWeights(), 'after one more step, ours vs tfjs fromMemory');
      viaTfjs.dispose();
    } else {
      assert.equal(loaded.optimizer, undefined);
    }
    loaded.dispose();
    model.dispose();
  });
}

test(
  'a save writes through the commit protocol onto the target name (strace)',
  { skip: !commandExists('strace') && 'strace not installed (.ci/run installs it)' },
  () => {
    const dir = tempDir();
    const target = path.join(dir, 'model.safetensors');
    const out = path.join(dir, 'trace.txt');
    const src = path.resolve(__dirname, '..', 'src');
    const child = `
const fs = require('fs');
const { loadTf } = require(${JSON.stringify(path.join(src, 'tfjs', 'backend'))});
const { ioHandler } = require(${JSON.stringify(path.join(src, 'tfjs', 'io-handler'))});
(async () => {
  const { tf } = await loadTf('cpu');
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [64], units: 256 }));
  m.add(tf.layers.batchNormalization());
  m.compile({ optimizer: tf.train.adam(), loss: 'meanSquaredError' });
  for (const round of [1, 2]) {
    await m.save(ioHandler(process.argv[1]), { includeOptimizer: true });
    fs.writeSync(1, 'RESOLVED ' + round + '\\n');
  }
})();
`;
    const calls = straceNode(child, [target], ['openat', 'open', 'pwrite64', 'fdatasync', 'fsync', 'close', 'rename', 'renameat', 'renameat2', 'write'], out, {
      ...process.env,
      TF_CPP_MIN_LOG_LEVEL: '3',
    });
    const resolved = calls.filter((c) => c.name === 'write' && c.args.startsWith('1, "RESOLVED'));
    assert.equal(resolved.length, 2, 'both saves resolved');
    let from = 0;
    for (const [round, mark] of resolved.entries()) {
      const window = calls.filter((c) => c.line > from && c.line < mark.line);
      const dirOpen = window.find((c) => (c.name === 'openat' || c.name === 'open') && c.args.includes(`"${dir}"`) && c.args.includes('O_DIRECTORY'));
      assert.ok(dirOpen, `round ${round}: directory opened`);
      const create = window.find(
        (c) => c.name === 'openat' && /model\.safetensors\.tmp\.\d+\.[0-9a-f]{8}"/.test(c.args) && c.args.includes('O_EXCL') && Number(c.result) >= 0,
      );
      assert.ok(create, `round ${round}: tmp created with O_EXCL`);
      const fd = create.result;
      const tmpName = /"([^"]*\.tmp\.[^"]*)"/.exec(create.args)![1]!;
      const writes = window.filter((c) => c.name === 'pwrite64' && c.args.startsWith(`${fd},`) && c.line > create.line);
      assert.ok(writes.length >= 1, `round ${round}: writes to the tmp fd`);
      const sync = window.find((c) => c.name === 'fdatasync' && c.args === fd && c.line > create.line);
      assert.ok(sync && sync.result === '0', `round ${round}: fdatasync(tmp)`);
      assert.ok(
        writes.every((w) => w.line < sync.line),
        `round ${round}: every write before fdatasync`,
      );
      const close = window.find((c) => c.name === 'close' && c.args === fd && c.line > sync.line);
      assert.ok(close, `round ${round}: close after fdatasync`);
      const rename = window.find(
        (c) => /^rename/.test(c.name) && c.result === '0' && c.args.includes(`"${tmpName}"`) && c.args.includes('"model.safetensors"'),
      );
      assert.ok(rename && rename.line > close.line, `round ${round}: rename onto the target after close`);
      const dirSync = window.find((c) => c.name === 'fsync' && c.args === dirOpen.result && c.line > rename.line);
      assert.ok(dirSync && dirSync.result === '0', `round ${round}: fsync(dir) after the rename, before model.save resolved`);
      from = mark.line;
    }
    const openedFinal = calls.filter(
      (c) =>
        (c.name === 'openat' || c.name === 'open') &&
        c.args.includes('model.safetensors"') &&
        !c.args.includes('.tmp.') &&
        /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(c.args),
    );
    assert.deepEqual(openedFinal, [], 'the target name is never opened for writing');
  },
);

test('a crash at every I/O step of model.save(ioHandler) over an existing file leaves the old model or the new one, loadable (fault twin)', async (t) => {
  const oldModel = await trainedModel(3, 1);
  const newModel = await trainedModel(5, 2);
  const oldPred = predictBytes(oldModel);
  const newPred = predictBytes(newModel);
  assert.ok(!oldPred.equals(newPred));
  const file = path.join(tempDir(), 'model.safetensors');
  await oldModel.save(ioHandler(file));
  faults.configure({});
  await newModel.save(ioHandler(file));
  const total = faults.stats().total;
  faults.disable();
  assert.ok(total >= 8, `a save has at least 8 I/O operations (saw ${total})`);
  const seen = { old: 0, new: 0 };
  for (let k = 1; k <= total; k++) {
    await oldModel.save(ioHandler(file));
    faults.configure({ crashAfter: k });
    let resolved = false;
    try {
      await newModel.save(ioHandler(file));
      resolved = true;
    } catch (err) {
      assert.ok(err instanceof CheckpointError, String(err));
    }
    assert.equal(faults.stats().crashed, true, `crash ${k} happened`);
    faults.disable();
    // A power cut can leave a temporary file of the writer behind (a Checkpointer removes those at start-up);
    // nothing else appears, and the target name holds a whole, verified model.
    const left = listDir(path.dirname(file)).filter((n) => n !== 'model.safetensors');
    assert.ok(
      left.every((n) => /^model\.safetensors\.tmp\.\d+\.[0-9a-f]{8}$/.test(n)),
      `crash ${k}: ${left.join(', ')}`,
    );
    for (const n of left) fs.rmSync(path.join(path.dirname(file), n));
    const loaded = await tf.loadLayersModel(ioHandler(file)); // checksums verified
    const pred = predictBytes(loaded);
    loaded.dispose();
    const which = pred.equals(oldPred) ? 'old' : pred.equals(newPred) ? 'new' : 'neither';
    assert.notEqual(which, 'neither', `crash after op ${k}: a model that is neither`);
    if (resolved) assert.equal(which, 'new', `crash after op ${k}: an acknowledged save was lost`);
    seen[which as 'old' | 'new']++;
  }
  assert.ok(seen.old > 0 && seen.new > 0, `both outcomes across crash points: ${JSON.stringify(seen)}`);
  assert.ok(seen.old >= 3, `the early crash points leave the old file: ${JSON.stringify(seen)}`);
  t.diagnostic(`${total} crash points: ${JSON.stringify(seen)}`);
  oldModel.dispose();
  newModel.dispose();
});

/** tf.loadLayersModel over tfjs's own http loader (the path browsers take), served from a directory. */
function httpFromDir(dir: string): tfType.io.IOHandler {
  const fetchFunc = async (url: string | URL | Request): Promise<Response> => {
    const name = decodeURIComponent(new URL(String(url)).pathname.split('/').pop()!);
    const body = fs.readFileSync(path.join(dir, name));
    return new Response(body, { status: 200, headers: { 'content-type': name.endsWith('.json') ? 'application/json' : 'application/octet-stream' } });
  };
  return tf.io.http('http://models.invalid/m/model.json', { fetchFunc: fetchFunc as typeof fetch });
}

test('export → tf.loadLayersModel from the written model.json (tfjs http loader, fromMemory, modelJsonHandler): identical predictions', async () => {
  const model = await trainedModel();
  const root = tempDir();
  const file = path.join(root, 'model.safetensors');
  await model.save(ioHandler(file), { includeOptimizer: true });
  const dir = path.join(root, 'export', 'web'); // created, parents fsynced
  const exported = await exportTfjsModel(file, dir);
  assert.match(exported.weightsFile, EXPORTED_WEIGHTS_RE);
  assert.deepEqual(listDir(dir), [exported.weightsFile, 'model.json'].sort());
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as tfType.io.ModelJSON;
  assert.deepEqual(json.weightsManifest[0]!.paths, [exported.weightsFile]);
  assert.equal(fs.statSync(path.join(dir, exported.weightsFile)).size, exported.weightBytes);

  const want = predictBytes(model);
  for (const [how, handler] of [
    ['tf.io.http (browser path)', httpFromDir(dir)],
    ['modelJsonHandler', modelJsonHandler(dir)],
    ['fromMemory(importTfjsModel)', tf.io.fromMemory(await importTfjsModel(dir))],
    ['file:// url of model.json', { load: () => importTfjsModel(`file://${path.join(dir, 'model.json')}`) }],
  ] as const) {
    const loaded = await tf.loadLayersModel(handler);
    assert.ok(predictBytes(loaded).equals(want), `${how}: predictions bit for bit`);
    assert.ok(loaded.optimizer, `${how}: training config restored`);
    await assertSameOptimizer(loaded.optimizer, model.optimizer);
    loaded.dispose();
  }

  // From ModelArtifacts, over the previous export: the old weights file goes once model.json points elsewhere.
  await model.trainOnBatch(x, y);
  const again = await exportTfjsModel(await tfjsArtifacts(model, false), dir);
  assert.notEqual(again.weightsFile, exported.weightsFile);
  assert.deepEqual(again.removed, [exported.weightsFile]);
  assert.deepEqual(listDir(dir), [again.weightsFile, 'model.json'].sort());
  const reloaded = await tf.loadLayersModel(httpFromDir(dir));
  assert.ok(predictBytes(reloaded).equals(predictBytes(model)));
  reloaded.dispose();
  model.dispose();
});

test('a crash at every I/O step of an export over an older one leaves the old pair or the new pair loadable (fault twin)', async (t) => {
  const oldModel = await trainedModel(3, 1);
  const newModel = await trainedModel(5, 2);
  const oldArt = await tfjsArtifacts(oldModel, false);
  const newArt = await tfjsArtifacts(newModel, true);
  const oldBytes = Buffer.from(oldArt.weightData as ArrayBuffer);
  const newBytes = Buffer.from(newArt.weightData as ArrayBuffer);
  const dir = path.join(tempDir(), 'web');
  await exportTfjsModel(oldArt, dir);
  faults.configure({});
  await exportTfjsModel(newArt, dir);
  const total = faults.stats().total;
  faults.disable();
  assert.ok(total >= 16, `two commits and a removal (saw ${total} operations)`);
  const seen = { old: 0, new: 0 };
  for (let k = 1; k <= total; k++) {
    await exportTfjsModel(oldArt, dir);
    faults.configure({ crashAfter: k });
    let resolved = false;
    try {
      await exportTfjsModel(newArt, dir);
      resolved = true;
    } catch (err) {
      assert.ok(err instanceof CheckpointError, String(err));
    }
    assert.equal(faults.stats().crashed, true, `crash ${k} happened`);
    faults.disable();
    const got = await importTfjsModel(dir); // every check: names, sizes, dtypes
    const data = Buffer.from(got.weightData as ArrayBuffer);
    const which = data.equals(oldBytes) ? 'old' : data.equals(newBytes) ? 'new' : 'neither';
    assert.notEqual(which, 'neither', `crash after op ${k}`);
    assert.equal(
      got.weightSpecs!.some((s) => s.group === 'optimizer'),
      which === 'new',
      `crash after op ${k}: model.json and weights of one pair`,
    );
    if (resolved) assert.equal(which, 'new', `crash after op ${k}: an acknowledged export was lost`);
    seen[which as 'old' | 'new']++;
  }
  assert.ok(seen.old > 0 && seen.new > 0, `both outcomes across crash points: ${JSON.stringify(seen)}`);
  t.diagnostic(`${total} crash points: ${JSON.stringify(seen)}`);
  // The next export cleans whatever a crash left behind.
  await exportTfjsModel(newArt, dir);
  assert.equal(listDir(dir).filter((n) => EXPORTED_WEIGHTS_RE.test(n)).length, 1);
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(await importTfjsModel(dir)));
  assert.ok(predictBytes(loaded).equals(predictBytes(newModel)));
  loaded.dispose();
  oldModel.dispose();
  newModel.dispose();
});

test("import of a model.json directory written from tfjs's own withSaveHandler artifacts (sharded, ./ paths) round trips", async () => {
  const model = await trainedModel();
  const dir = tempDir();
  let artifacts: tfType.io.ModelArtifacts | undefined;
  // Written the way tfjs's file and browser handlers lay it out; two shards to exercise concatenation.
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      const data = Buffer.from(a.weightData as ArrayBuffer);
      const cut = 1001; // not on a weight boundary
      fs.writeFileSync(path.join(dir, 'group1-shard1of2.bin'), data.subarray(0, cut));
      fs.writeFileSync(path.join(dir, 'group1-shard2of2.bin'), data.subarray(cut));
      const json = {
        modelTopology: a.modelTopology,
        format: a.format,
        generatedBy: a.generatedBy,
        convertedBy: a.convertedBy,
        weightsManifest: [{ paths: ['./group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: a.weightSpecs }],
        trainingConfig: a.trainingConfig,
      };
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }),
    { includeOptimizer: true },
  );
  const imported = await importTfjsModel(dir);
  assert.ok(Buffer.from(imported.weightData as ArrayBuffer).equals(Buffer.from(artifacts!.weightData as ArrayBuffer)), 'weight bytes');
  assert.deepEqual(imported.weightSpecs, artifacts!.weightSpecs);
  assert.deepEqual(imported.modelTopology, artifacts!.modelTopology);
  assert.deepEqual(imported.trainingConfig, artifacts!.trainingConfig);
  const want = predictBytes(model);
  const viaMemory = await tf.loadLayersModel(tf.io.fromMemory(imported));
  assert.ok(predictBytes(viaMemory).equals(want));
  viaMemory.dispose();

  // ...and into one ckptio file, loaded through ioHandler.
  const file = path.join(tempDir(), 'converted.safetensors');
  await importTfjsModelToFile(dir, file);
  const viaFile = await tf.loadLayersModel(ioHandler(file));
  assert.ok(predictBytes(viaFile).equals(want));
  await assertSameOptimizer(viaFile.optimizer, model.optimizer);
  viaFile.dispose();
  model.dispose();
});

test('hostile model.json directories are each rejected with a CheckpointError naming the path', async () => {
  const model = await trainedModel(1);
  const outside = tempDir('ckptio-outside-');
  const dir = path.join(tempDir(), 'web');
  const exported = await exportTfjsModel(await tfjsArtifacts(model, false), dir);
  model.dispose();
  const jsonPath = path.join(dir, 'model.json');
  const good = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as tfType.io.ModelJSON & Record<string, unknown>;
  const size = exported.weightBytes;
  // A file of exactly the right size outside the directory, so only the path rule can reject it.
  fs.copyFileSync(path.join(dir, exported.weightsFile), path.join(outside, 'x'));
  fs.copyFileSync(path.join(dir, exported.weightsFile), path.join(path.dirname(dir), 'x'));
  fs.symlinkSync(path.join(outside, 'x'), path.join(dir, 'escape.bin'));
  fs.symlinkSync(exported.weightsFile, path.join(dir, 'alias.bin')); // inside: allowed
  fs.writeFileSync(path.join(dir, 'long.bin'), Buffer.alloc(size + 4));

  const withPaths = (paths: unknown) => ({ ...good, weightsManifest: [{ ...good.weightsManifest[0]!, paths }] });
  const withWeight = (patch: Record<string, unknown>) => ({
    ...good,
    weightsManifest: [{ ...good.weightsManifest[0]!, weights: good.weightsManifest[0]!.weights.map((w, i) => (i === 0 ? { ...w, ...patch } : w)) }],
  });
  const cases: [string, string | object, RegExp][] = [
    ['path traversal ../x', withPaths(['../x']), /leaves the directory/],
    ['traversal after ./', withPaths(['./../x']), /leaves the directory/],
    ['absolute path', withPaths([path.join(outside, 'x')]), /absolute path/],
    ['sub-path with /', withPaths(['sub/x']), /plain file name/],
    ['backslash', withPaths(['..\\x']), /leaves the directory/],
    ['NUL byte', withPaths(['weights\0.bin']), /NUL/],
    ['symlink out of the directory', withPaths(['escape.bin']), /outside the directory/],
    ['missing weights file', withPaths(['nope.bin']), /does not exist/],
    ['byte-count mismatch (file too long)', withPaths(['long.bin']), /need \d+ bytes but the files hold \d+/],
    ['byte-count mismatch (shape)', withWeight({ shape: [1] }), /need \d+ bytes but the files hold/],
    ['unknown dtype', withWeight({ dtype: 'float64' }), /dtype "float64" is not supported/],
    ['string dtype', withWeight({ dtype: 'string' }), /dtype "string" is not supported/],
    ['complex64 dtype', withWeight({ dtype: 'complex64' }), /dtype "complex64" is not supported/],
    ['negative dimension', withWeight({ shape: [-1, 3] }), /shape must be an array of non-negative integers/],
    ['fractional dimension', withWeight({ shape: [1.5] }), /shape must be/],
    ['quantized', withWeight({ quantization: { dtype: 'uint8', scale: 1, min: 0 } }), /quantized weights are not supported/],
    ['duplicate weight name', withWeight({ name: good.weightsManifest[0]!.weights[1]!.name }), /appears twice/],
    ['paths not an array', withPaths('weights.bin'), /paths must be an array/],
    ['manifest not an array', { ...good, weightsManifest: {} }, /weightsManifest must be an array/],
    ['topology missing', { ...good, modelTopology: undefined }, /modelTopology must be a JSON object/],
    ['training config wrong type', { ...good, trainingConfig: 'adam' }, /trainingConfig must be a JSON object/],
    ['non-JSON', '{"modelTopology": {', /not valid JSON/],
    ['JSON but not an object', '[1, 2]', /must hold a JSON object/],
  ];
  for (const [what, content, message] of cases) {
    fs.writeFileSync(jsonPath, typeof content === 'string' ? content : JSON.stringify(content));
    await assert.rejects(importTfjsModel(dir), isFormatError(jsonPath, message), what);
  }
  // Controls: the same directory with the good model.json, and a symlink that stays inside, load.
  fs.writeFileSync(jsonPath, JSON.stringify(withPaths(['alias.bin'])));
  await importTfjsModel(dir);
  fs.writeFileSync(jsonPath, JSON.stringify(good));
  await importTfjsModel(dir);
  // model.json itself a symlink out of the directory.
  fs.copyFileSync(jsonPath, path.join(outside, 'model.json'));
  fs.rmSync(jsonPath);
  fs.symlinkSync(path.join(outside, 'model.json'), jsonPath);
  await assert.rejects(importTfjsModel(dir), isFormatError(jsonPath, /outside the directory/), 'model.json symlink');
});

test('hostile ioHandler files (metadata that does not match the tensors) are rejected with ECKPT_FORMAT naming the field', async () => {
  const model = await trainedModel(1);
  const dir = tempDir();
  const good = path.join(dir, 'good.safetensors');
  await model.save(ioHandler(good));
  model.dispose();
  const read = await readCheckpoint(good);
  const specs = JSON.parse(read.metadata[K.weightSpecs]!) as tfType.io.WeightsManifestEntry[];
  const variant = async (name: string, patch: (md: Record<string, string>, t: typeof read.tensors) => void): Promise<string> => {
    const md = { ...read.metadata };
    const tensors = { ...read.tensors };
    patch(md, tensors);
    const file = path.join(dir, `${name}.safetensors`);
    await writeCheckpoint(file, tensors, { metadata: md });
    return file;
  };
  const first = specs[0]!;
  const cases: [string, (md: Record<string, string>, t: typeof read.tensors) => void, RegExp][] = [
    ['no-version', (md) => delete md[K.version], /ckptio\.tfjs\.handler is missing/],
    ['future-version', (md) => (md[K.version] = '9'), /ckptio\.tfjs\.handler is "9"/],
    ['specs-not-json', (md) => (md[K.weightSpecs] = '[{'), /ckptio\.tfjs\.weight_specs is not valid JSON/],
    ['topology-missing', (md) => delete md[K.modelTopology], /ckptio\.tfjs\.topology is missing/],
    ['topology-array', (md) => (md[K.modelTopology] = '[]'), /ckptio\.tfjs\.topology must be a JSON object/],
    ['training-config', (md) => (md[K.trainingConfig] = '{"loss": 3, "optimizer_config": {}}'), /ckptio\.tfjs\.training_config\.loss/],
    ['converted-by', (md) => (md[K.formatInfo] = '{"convertedBy": 7}'), /ckptio\.tfjs\.format\.convertedBy/],
    [
      'shape',
      (md) => (md[K.weightSpecs] = JSON.stringify(specs.map((s, i) => (i === 0 ? { ...s, shape: [...s.shape].reverse().concat([1]) } : s)))),
      /has shape .* but ckptio\.tfjs\.weight_specs says/,
    ],
    [
      'dtype',
      (md) => (md[K.weightSpecs] = JSON.stringify(specs.map((s, i) => (i === 0 ? { ...s, dtype: 'int32' } : s)))),
      /the tensor is float32 but ckptio\.tfjs\.weight_specs says int32/,
    ],
    [
      'bad-dtype',
      (md) => (md[K.weightSpecs] = JSON.stringify(specs.map((s, i) => (i === 0 ? { ...s, dtype: 'string' } : s)))),
      /dtype "string" is not supported/,
    ],
    ['missing-tensor', (_md, t) => delete t[first.name], /has no tensor in the file/],
    ['extra-tensor', (_md, t) => (t.stray = { dtype: 'float32', shape: [1], data: new Float32Array(1) }), /tensors without a weight spec.*"stray"/],
  ];
  for (const [name, patch, message] of cases) {
    const file = await variant(name, patch);
    await assert.rejects(tf.loadLayersModel(ioHandler(file)), isFormatError(file, message), name);
  }
  // A plain checkpoint (not written by ioHandler).
  const plain = path.join(dir, 'plain.safetensors');
  await writeCheckpoint(plain, { w: { dtype: 'float32', shape: [2], data: new Float32Array(2) } });
  await assert.rejects(ioHandler(plain).load(), isFormatError(plain, /not a ckptio tfjs model file/));
  // The good file still loads.
  (await tf.loadLayersModel(ioHandler(good))).dispose();
});

test('bad input to save is an ECKPT_ARGS CheckpointError and writes nothing', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'm.safetensors');
  const base: tfType.io.ModelArtifacts = {
    modelTopology: { class_name: 'Sequential' },
    weightSpecs: [{ name: 'w', shape: [2], dtype: 'float32' }],
    weightData: new ArrayBuffer(8),
  };
  const cases: [string, tfType.io.ModelArtifacts, RegExp][] = [
    ['string dtype', { ...base, weightSpecs: [{ name: 'w', shape: [2], dtype: 'string' }] }, /dtype "string" is not supported/],
    ['complex64', { ...base, weightSpecs: [{ name: 'w', shape: [1], dtype: 'complex64' }] }, /dtype "complex64" is not supported/],
    ['bytes', { ...base, weightData: new ArrayBuffer(12) }, /holds 12 bytes but the weight specs need 8/],
    ['graph topology', { ...base, modelTopology: new ArrayBuffer(4) }, /binary \(GraphDef\)/],
    ['reserved name', { ...base, weightSpecs: [{ name: '__metadata__', shape: [2], dtype: 'float32' }] }, /reserved/],
    ['specs without data', { modelTopology: {}, weightSpecs: [] }, /given together/],
  ];
  for (const [what, a, message] of cases) {
    await assert.rejects(ioHandler(file).save(a), (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_ARGS' && message.test(e.message), what);
  }
  assert.throws(
    () => ioHandler(file, { metadata: { 'ckptio.step': '1' } }),
    (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_ARGS',
  );
  assert.deepEqual(listDir(dir), []);
  // Sharded weightData (an array of buffers) is accepted; the caller's metadata is kept.
  const sharded = { ...base, weightData: [new Float32Array([1]).buffer, new Float32Array([2]).buffer] };
  await ioHandler(file, { metadata: { run: 'a' } }).save(sharded);
  const back = await ioHandler(file).load();
  assert.deepEqual([...new Float32Array(back.weightData as ArrayBuffer)], [1, 2]);
  assert.equal((await readCheckpoint(file)).metadata.run, 'a');
  // lz4 is passed through to writeCheckpoint and undone by the load.
  await ioHandler(file, { compression: 'lz4' }).save(sharded);
  assert.equal((await readCheckpoint(file)).compression, 'lz4');
  assert.deepEqual([...new Float32Array((await ioHandler(file).load()).weightData as ArrayBuffer)], [1, 2]);
});
