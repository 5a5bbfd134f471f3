/** Child process for the tfjs resume tests: trains a small LayersModel (conv2d, batch norm, seeded dropout,
 * dense) with each tf.train optimizer, either uninterrupted ('full'), or up to a checkpoint and then exiting
 * ('first'), or restoring that checkpoint in this fresh process and finishing ('resume'). Prints one JSON line
 * per durable save and, at the end, the bytes (as hashes) of every weight and optimizer tensor.
 *
 *   node resume-child.js <json config> */
import '../../src/platform/node';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type * as tfType from '@tensorflow/tfjs';
import { Checkpointer } from '../../src/checkpoint/checkpointer';
import { METADATA_KEYS } from '../../src/format/metadata-keys';
import { loadTf } from '../../src/tfjs/backend';
import { fitCheckpoint } from '../../src/tfjs/callback';
import { seededDataset } from '../../src/tfjs/dataset';
import { collectModelState, modelState } from '../../src/tfjs/model-state';
import { restoreModelState } from '../../src/tfjs/restore';
import { schedules } from '../../src/tfjs/schedules';

/** Linear warmup over 8 steps into a cosine decay: the fitDataset run is interrupted at step 5, mid-warmup. */
const SCHEDULE = schedules.warmup({ mode: 'linear', startLr: 0.001, warmupSteps: 8 }, schedules.cosine({ lr: 0.01, decaySteps: 20, minLr: 0.0005 }));

export interface ChildConfig {
  backend: 'cpu' | 'wasm';
  mode: 'loop' | 'fit' | 'fitDataset';
  phase: 'full' | 'first' | 'resume' | 'resume-or-start';
  dir: string;
  optimizers: string[];
  /** fitDataset: save every N batches. */
  everyBatches?: number;
  /** 'first' with fitDataset: exit as soon as the save of this step is durable. */
  exitAtStep?: number;
  /** Milliseconds of sleep after each batch (the kill loop needs time to land a kill mid-run). */
  slowMs?: number;
}

type Tf = typeof tfType;
const out = (o: unknown) => fs.writeSync(1, JSON.stringify(o) + '\n');

export const OPTIMIZERS: Record<string, (tf: Tf) => tfType.Optimizer> = {
  sgd: (tf) => tf.train.sgd(0.05),
  momentum: (tf) => tf.train.momentum(0.02, 0.9),
  nesterov: (tf) => tf.train.momentum(0.02, 0.9, true),
  rmsprop: (tf) => tf.train.rmsprop(0.005, 0.9, 0.3),
  'rmsprop-centered': (tf) => tf.train.rmsprop(0.005, 0.9, 0.3, 1e-7, true),
  adagrad: (tf) => tf.train.adagrad(0.05),
  adadelta: (tf) => tf.train.adadelta(1.0),
  adam: (tf) => tf.train.adam(0.01),
  adamax: (tf) => tf.train.adamax(0.01),
};

export function buildModel(tf: Tf, backend: string): tfType.Sequential {
  const m = tf.sequential();
  // tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel: on wasm the conv layer is frozen (still saved).
  m.add(
    tf.layers.conv2d({
      inputShape: [8, 8, 1],
      filters: 4,
      kernelSize: 3,
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      trainable: backend !== 'wasm',
    }),
  );
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.flatten());
  m.add(tf.layers.dropout({ rate: 0.25, seed: 3 }));
  m.add(tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  return m;
}

export function data(tf: Tf): { x: tfType.Tensor; y: tfType.Tensor } {
  const x = tf.randomNormal([48, 8, 8, 1], 0, 1, 'float32', 5);
  const labels = tf.tensor1d(
    Array.from({ length: 48 }, (_, i) => (i * 7) % 10),
    'int32',
  );
  const y = tf.oneHot(labels, 10).toFloat();
  labels.dispose();
  return { x, y };
}

export function stateHashes(model: tfType.LayersModel): { tensors: Record<string, string>; optimizer: unknown } {
  const { tensors, metadata } = collectModelState(model, undefined);
  const hashes: Record<string, string> = {};
  for (const [k, t] of Object.entries(tensors)) {
    const v = t.dataSync() as Float32Array;
    hashes[k] = createHash('sha256')
      .update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
      .digest('hex')
      .slice(0, 16);
  }
  return { tensors: hashes, optimizer: JSON.parse(metadata[METADATA_KEYS.tfjsOptimizer] ?? 'null') };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runLoop(tf: Tf, cfg: ChildConfig, name: string, model: tfType.Sequential, x: tfType.Tensor, y: tfType.Tensor): Promise<void> {
  const total = 10,
    first = 4;
  const optimizer = model.optimizer;
  const ckpt = new Checkpointer({ dir: `${cfg.dir}/${name}` });
  let step = 0;
  if (cfg.phase === 'resume') {
    const loaded = await ckpt.loadLatest();
    if (!loaded) throw new Error('nothing to resume');
    restoreModelState(model, optimizer, loaded);
    step = loaded.step;
  }
  const vars = model.trainableWeights.map((w) => w.read() as tfType.Variable);
  const end = cfg.phase === 'first' ? first : total;
  for (; step < end; step++) {
    const b = step % 6;
    tf.tidy(() => {
      const xb = x.slice([b * 8], [8]);
      const yb = y.slice([b * 8], [8]);
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(yb, model.apply(xb, { training: true }) as tfType.Tensor) as tfType.Scalar, false, vars);
    });
  }
  if (cfg.phase === 'first') {
    const h = await ckpt.save(step, { tensors: modelState(model) });
    await h.durable;
  }
  await ckpt.close();
}

async function runFit(tf: Tf, cfg: ChildConfig, name: string, model: tfType.Sequential, x: tfType.Tensor, y: tfType.Tensor): Promise<void> {
  const cb = await fitCheckpoint(model, { dir: `${cfg.dir}/${name}`, tf, schedule: SCHEDULE, onWarning: (m) => out({ warning: m }) });
  const epochs = cfg.phase === 'first' ? 1 : 3;
  await model.fit(x, y, { epochs, batchSize: 8, shuffle: false, verbose: 0, initialEpoch: cb.initialEpoch, callbacks: [cb] });
  await cb.close();
}

async function runFitDataset(tf: Tf, cfg: ChildConfig, name: string, model: tfType.Sequential, x: tfType.Tensor, y: tfType.Tensor): Promise<void> {
  const ds = seededDataset({ xs: x, ys: y, batchSize: 8, seed: 11, tf });
  const cb = await fitCheckpoint(model, {
    dir: `${cfg.dir}/${name}`,
    tf,
    dataset: ds,
    everyBatches: cfg.everyBatches ?? 5,
    keepLast: 2,
    schedule: SCHEDULE,
    onWarning: (m) => out({ warning: m }),
    onDurable: (d) => {
      out({ durable: d.step, optimizer: name });
      if (cfg.phase === 'first' && d.step === cfg.exitAtStep) process.exit(0);
    },
  });
  const slow = cfg.slowMs
    ? [
        new tf.CustomCallback({
          onBatchEnd: async () => {
            await sleep(cfg.slowMs!);
          },
        }),
      ]
    : [];
  await model.fitDataset(ds.dataset, { epochs: 3, verbose: 0, initialEpoch: cb.initialEpoch, callbacks: [cb, ...slow] as tfType.Callback[] });
  await cb.close();
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2]!) as ChildConfig;
  const { tf } = await loadTf(cfg.backend);
  // A model built first shifts tfjs's global layer counters, so names differ from the run that saved.
  if (cfg.phase.startsWith('resume')) buildModel(tf, cfg.backend).dispose();
  const { x, y } = data(tf);
  const result: Record<string, unknown> = {};
  for (const name of cfg.optimizers) {
    const model = buildModel(tf, cfg.backend);
    model.compile({ optimizer: OPTIMIZERS[name]!(tf), loss: 'categoricalCrossentropy' });
    if (cfg.mode === 'loop') await runLoop(tf, cfg, name, model, x, y);
    else if (cfg.mode === 'fit') await runFit(tf, cfg, name, model, x, y);
    else await runFitDataset(tf, cfg, name, model, x, y);
    result[name] = stateHashes(model);
  }
  out({ done: result });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
