import '../src/platform/node';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError } from '../src/binding/errors';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { loadTf } from '../src/tfjs/backend';
import { fitCheckpoint } from '../src/tfjs/callback';
import { collectModelState, modelState } from '../src/tfjs/model-state';
import { restoreModelState } from '../src/tfjs/restore';
import { tempDir } from './helpers';
import { buildModel, ChildConfig, data, OPTIMIZERS, stateHashes } from './tfjs/resume-child';

const child = path.join(__dirname, 'tfjs', 'resume-child.js');
const ALL = Object.keys(OPTIMIZERS);

interface ChildResult {
  done?: Record<string, ReturnType<typeof stateHashes>>;
  durable?: number;
  warning?: string;
}

function runChild(cfg: ChildConfig): ChildResult[] {
  const r = spawnSync(process.execPath, [child, JSON.stringify(cfg)], { encoding: 'utf8', timeout: 240_000 });
  assert.equal(r.status, 0, `child ${cfg.mode}/${cfg.phase} failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ChildResult);
}

function final(lines: ChildResult[]): Record<string, ReturnType<typeof stateHashes>> {
  const done = lines.find((l) => l.done)?.done;
  assert.ok(done, 'the child printed its final state');
  return done;
}

for (const backend of ['cpu', 'wasm'] as const) {
  for (const mode of ['loop', 'fit', 'fitDataset'] as const) {
    test(`${mode} on ${backend}: every optimizer resumes byte-identically in a new process (${ALL.join(', ')})`, () => {
      const dir = tempDir();
      const base = { backend, mode, optimizers: ALL, exitAtStep: 5 };
      const full = final(runChild({ ...base, phase: 'full', dir: path.join(dir, 'full') }));
      const first = runChild({ ...base, phase: 'first', dir: path.join(dir, 'resumed') });
      if (mode === 'fitDataset')
        assert.ok(
          first.some((l) => l.durable === 5),
          'the first process exited after the mid-epoch save',
        );
      const resumed = final(runChild({ ...base, phase: 'resume', dir: path.join(dir, 'resumed') }));
      for (const name of ALL) {
        const f = full[name]!,
          r = resumed[name]!;
        assert.ok(Object.keys(f.tensors).some((k) => k.startsWith('optimizer/')) || name === 'sgd', `${name}: optimizer slots are compared`);
        assert.deepEqual(r.tensors, f.tensors, `${name}: every weight and optimizer slot byte-identical`);
        assert.deepEqual(r.optimizer, f.optimizer, `${name}: iterations, learning rate and slot order identical`);
      }
    });
  }
}

test('kill -9 loop through fitCheckpoint (fitDataset, adam, a save every batch): 10 kills, final state byte-identical', async () => {
  const dir = tempDir();
  const base = { backend: 'cpu' as const, mode: 'fitDataset' as const, optimizers: ['adam'], everyBatches: 1 };
  const full = final(runChild({ ...base, phase: 'full', dir: path.join(dir, 'full') }));
  const killed = path.join(dir, 'killed');
  let kills = 0;
  let last: ChildResult[] = [];
  for (let round = 0; round < 40; round++) {
    const lines: ChildResult[] = [];
    const status = await new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, [child, JSON.stringify({ ...base, phase: 'resume-or-start', dir: killed, slowMs: 40 })], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let buf = '';
      let seen = 0;
      // Kill 0-30 ms after the first new durable save: at varying points of a 40 ms batch, with a save queued
      // or in flight. Each round makes progress, and 18 batches leave room for more than 10 kills.
      const target = 1;
      p.stdout.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line.startsWith('{')) continue;
          const parsed = JSON.parse(line) as ChildResult;
          lines.push(parsed);
          if (parsed.durable !== undefined && ++seen === target && kills < 10) setTimeout(() => p.kill('SIGKILL'), (round * 7) % 30);
        }
      });
      p.on('exit', (code) => resolve(code));
    });
    if (status === null) {
      kills++;
      continue;
    }
    assert.equal(status, 0, 'an unkilled run exits cleanly');
    last = lines;
    break;
  }
  assert.ok(kills >= 10, `at least 10 kills landed (${kills})`);
  assert.deepEqual(final(last).adam, full.adam, 'after the kills the final weights and Adam state are byte-identical');
});

async function trainedAdam(tf: typeof tfType, steps: number): Promise<{ model: tfType.Sequential; x: tfType.Tensor; y: tfType.Tensor }> {
  const { x, y } = data(tf);
  const model = buildModel(tf, 'cpu');
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  for (let i = 0; i < steps; i++) await model.trainOnBatch(x.slice([0], [8]), y.slice([0], [8]));
  return { model, x, y };
}

test("tfjs's own includeOptimizer round trip is not byte-exact for Adam; restoreModelState is", async () => {
  const { tf } = await loadTf('cpu');
  const { model: a, x, y } = await trainedAdam(tf, 20); // at 20 steps pow(0.999, 21) != the running product in float32
  let artifacts: tfType.io.ModelArtifacts | null = null;
  await a.save(
    tf.io.withSaveHandler(async (art) => {
      artifacts = art;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer: true },
  );
  const viaTfjs = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir });
  await (
    await ckpt.save(20, { tensors: modelState(a) })
  ).durable;
  const viaCkptio = buildModel(tf, 'cpu');
  viaCkptio.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  restoreModelState(viaCkptio, undefined, (await ckpt.loadLatest())!);
  for (const m of [a, viaTfjs, viaCkptio]) for (let i = 0; i < 5; i++) await m.trainOnBatch(x.slice([8], [8]), y.slice([8], [8]));
  const ref = stateHashes(a).tensors;
  const ours = stateHashes(viaCkptio).tensors;
  assert.deepEqual(ours, ref, 'ckptio: identical after 5 more steps');
  const theirs = collectModelState(viaTfjs, undefined).tensors;
  const kernel = (m: tfType.LayersModel) => Buffer.from((collectModelState(m, undefined).tensors['model/4-dense/kernel']!.dataSync() as Float32Array).buffer);
  assert.ok(theirs['optimizer/accBeta1'], 'the tfjs-restored model has Adam state');
  assert.notDeepEqual(kernel(viaTfjs), kernel(a), "tfjs's includeOptimizer round trip drifts (accBeta recomputed with pow)");
  await ckpt.close();
});

test('strict restore names every missing, unexpected and mismatched tensor and changes nothing; strict: false loads a changed head and reports exactly it', async () => {
  const { tf } = await loadTf('cpu');
  const { model: a } = await trainedAdam(tf, 2);
  const ckpt = new Checkpointer({ dir: tempDir() });
  await (
    await ckpt.save(2, { tensors: modelState(a) })
  ).durable;
  const loaded = (await ckpt.loadLatest())!;

  const build12 = () => {
    const m = tf.sequential();
    m.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3 }));
    m.add(tf.layers.batchNormalization());
    m.add(tf.layers.flatten());
    m.add(tf.layers.dropout({ rate: 0.25, seed: 3 }));
    m.add(tf.layers.dense({ units: 12, activation: 'softmax' }));
    m.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    return m;
  };
  const b = build12();
  const before = stateHashes(b).tensors;
  const err = (() => {
    try {
      restoreModelState(b, undefined, loaded);
    } catch (e) {
      return e;
    }
    return null;
  })();
  assert.ok(err instanceof CheckpointError && err.code === 'ECKPT_MISMATCH', 'strict: a CheckpointError ECKPT_MISMATCH');
  for (const name of ['model/4-dense/kernel', 'model/4-dense/bias', 'optimizer/m/model/4-dense/kernel', 'optimizer/v/model/4-dense/bias']) {
    assert.ok((err as Error).message.includes(name), `the error names ${name}`);
  }
  assert.deepEqual(stateHashes(b).tensors, before, 'a failed strict restore changes nothing');

  const report = restoreModelState(b, undefined, loaded, { strict: false });
  assert.deepEqual(report.mismatched.map((m) => m.split(':')[0]).sort(), [
    'model/4-dense/bias',
    'model/4-dense/kernel',
    'optimizer/m/model/4-dense/bias',
    'optimizer/m/model/4-dense/kernel',
    'optimizer/v/model/4-dense/bias',
    'optimizer/v/model/4-dense/kernel',
  ]);
  assert.deepEqual(report.missing, []);
  assert.deepEqual(report.unexpected, []);
  assert.equal(report.optimizer, 'partial');
  const kernelBytes = (m: tfType.LayersModel) => stateHashes(m).tensors['model/0-conv2d/kernel'];
  assert.equal(kernelBytes(b), kernelBytes(a), 'the unchanged layers were loaded');
  await b.trainOnBatch(tf.zeros([8, 8, 8, 1]), tf.zeros([8, 12])); // the new head's slots are created by tfjs

  // Missing and unexpected: a model with one more and one fewer layer than the checkpoint.
  const c = tf.sequential();
  c.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3 }));
  c.add(tf.layers.flatten());
  c.add(tf.layers.dense({ units: 10, name: 'extra' }));
  c.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  const r2 = restoreModelState(c, undefined, loaded, { strict: false });
  assert.deepEqual(r2.missing.sort(), ['model/extra/bias', 'model/extra/kernel']);
  assert.ok(r2.unexpected.includes('model/1-batch_normalization/moving_mean'), 'batch-norm statistics the model lacks are unexpected');
  assert.ok(r2.unexpected.includes('model/4-dense/kernel'));
  await ckpt.close();
});

test('no tensor leak over 100 saves and restores (cpu); unseeded random layers are recorded and warned about on resume', async () => {
  const { tf } = await loadTf('cpu');
  const { model, x, y } = await trainedAdam(tf, 1);
  const ckpt = new Checkpointer({ dir: tempDir(), keepLast: 2 });
  const before = tf.memory();
  for (let s = 0; s < 100; s++) {
    await (
      await ckpt.save(s, { tensors: modelState(model) })
    ).durable;
    restoreModelState(model, undefined, (await ckpt.loadLatest())!);
  }
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors, 'tensor count unchanged');
  assert.equal(after.numBytes, before.numBytes, 'bytes held unchanged');
  assert.equal(after.numDataBuffers, before.numDataBuffers, 'backend data buffers unchanged');
  await ckpt.close();

  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [8 * 8], units: 4 }));
  m.add(tf.layers.dropout({ rate: 0.5 })); // no seed
  m.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
  const dir = tempDir();
  const cb1 = await fitCheckpoint(m, { dir, tf, onWarning: () => {} });
  await m.fit(x.reshape([48, 64]), tf.zeros([48, 4]), { epochs: 1, batchSize: 16, verbose: 0, callbacks: [cb1] });
  await cb1.close();
  const warnings: string[] = [];
  const cb2 = await fitCheckpoint(m, { dir, tf, onWarning: (w) => warnings.push(w) });
  assert.deepEqual(cb2.resumed?.unseededRandomLayers, ['1-dropout']);
  assert.ok(
    warnings.some((w) => w.includes('unseeded random layers (1-dropout)')),
    'resume warns about the unseeded dropout',
  );
  assert.equal(cb2.initialEpoch, 1);
  await cb2.close();
  void y;
});

test('fitCheckpoint keeps the best checkpoint by a logged validation metric (val_loss: min)', async () => {
  const { tf } = await loadTf('cpu');
  const { x, y } = data(tf);
  const model = buildModel(tf, 'cpu');
  model.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' }); // a large step: val_loss moves both ways
  const dir = tempDir();
  const seen: { step: number; val: number }[] = [];
  const probe = new tf.CustomCallback({
    onEpochEnd: async (_e, logs) => {
      seen.push({ step: (_e + 1) * 5, val: logs!.val_loss as number });
    },
  });
  const ckpt = await fitCheckpoint(model, { dir, tf, monitor: 'val_loss', keepLast: 1 });
  await model.fit(x, y, { epochs: 6, batchSize: 8, shuffle: false, verbose: 0, validationSplit: 1 / 6, callbacks: [ckpt, probe] });
  await ckpt.close();
  const best = seen.reduce((a, b) => (b.val < a.val ? b : a));
  const pointer = JSON.parse(require('node:fs').readFileSync(path.join(dir, 'best-val_loss'), 'utf8')) as { step: number; metric: number };
  assert.equal(pointer.step, best.step, `best points at the epoch with the lowest val_loss (${JSON.stringify(seen)})`);
  assert.equal(pointer.metric, best.val);
});
