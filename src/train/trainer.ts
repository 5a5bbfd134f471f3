/** Trainer: the demo, a custom loop over a tf.LayersModel with a tf.train optimizer, written only against ckptio's
 * public tfjs API: the LR schedule applied per step (applySchedule), periodic validation, a checkpoint every N
 * steps (modelState + Checkpointer, written off-thread), and exact resume (restoreModelState). The full state a
 * byte-exact continuation needs is listed in docs/training-state.md. */
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError } from '../binding/errors';
import { Checkpointer, DurableInfo } from '../checkpoint/checkpointer';
import { keepBest } from '../checkpoint/retention';
import type { Compression } from '../format/file';
import { BackendName, loadTf } from '../tfjs/backend';
import { modelState } from '../tfjs/model-state';
import { restoreModelState } from '../tfjs/restore';
import { permutation, Rng, STREAM } from '../tfjs/rng';
import { applySchedule, Schedule, schedules } from '../tfjs/schedules';
import { StagingArena } from '../tfjs/snapshot';
import { Dataset, splitMnist } from './data';
import { buildMlp, makeOptimizer, OptimizerName } from './model';
import { provenance, Provenance } from './provenance';

export type ScheduleKind = 'cosine' | 'constant' | 'step';

export interface TrainConfig {
  dir: string;
  steps?: number;
  epochs: number;
  batch: number;
  layers: number[];
  lr: number;
  warmup: number;
  startLr: number;
  minLr: number;
  schedule: ScheduleKind;
  optimizer?: OptimizerName;
  seed: number;
  saveEvery: number;
  keepLast: number;
  resume: 'auto' | 'never' | string;
  backend: BackendName;
  evalEvery: number;
  trainLimit?: number;
  /** Checkpoint compression (default 'none'); it does not change training. */
  compression?: Compression;
}

export interface TrainState {
  step: number; // steps completed
  epoch: number;
  posInEpoch: number;
  optimizer: OptimizerName;
  schedule: Schedule;
  bestValAcc: number | null;
  lastValAcc: number | null;
  lastLoss: number | null;
  seed: number;
  config: Omit<TrainConfig, 'resume' | 'dir' | 'compression'>;
  dataset: { name: 'mnist'; train: number; val: number; fingerprint: string };
  provenance: Provenance;
}

export type TrainEvent =
  | { event: 'start'; totalSteps: number; stepsPerEpoch: number; backend: string; resumedFrom: number | null; path: string | null }
  | { event: 'step'; step: number; epoch: number; loss: number; lr: number }
  | { event: 'eval'; step: number; valAcc: number }
  | { event: 'save'; step: number; stallMs: number; waitedMs: number; skipped: boolean }
  | { event: 'durable'; step: number; path: string; bytes: number; msToDurable: number }
  | { event: 'warning'; message: string }
  | { event: 'stopped'; step: number; signal: string }
  | { event: 'done'; step: number; valAcc: number | null; path: string | null };

export async function train(config: TrainConfig, emit: (e: TrainEvent) => void): Promise<TrainState> {
  const { tf, backend } = await loadTf(config.backend);
  const data = splitMnist(config.seed, 1000, config.trainLimit);
  const stepsPerEpoch = Math.floor(data.train.n / config.batch);
  if (stepsPerEpoch < 1) throw new Error(`batch ${config.batch} is larger than the training set (${data.train.n})`);
  // The schedule spans the planned run (--epochs); --steps only says where this invocation stops, so a run
  // stopped early and resumed follows exactly the same learning rates as one that never stopped.
  const plannedSteps = config.epochs * stepsPerEpoch;
  const totalSteps = config.steps ?? plannedSteps;
  const schedule = lrSchedule(config, plannedSteps);
  const optimizerName = config.optimizer ?? 'adam';
  const model = buildMlp(tf, [784, ...config.layers, 10], config.seed);
  const optimizer = makeOptimizer(tf, optimizerName, config.lr);
  const ckpt = new Checkpointer({ dir: config.dir, keepLast: config.keepLast, maxInflight: 1, onFull: 'wait',
    retention: [keepBest({ metric: 'val_acc', mode: 'max' })],
    compression: config.compression ?? 'none',
    onWarning: (message) => emit({ event: 'warning', message }) });
  const { resume, dir: _dir, compression: _compression, ...runConfig } = config;
  void _dir;
  void _compression;
  const state: TrainState = {
    step: 0, epoch: 0, posInEpoch: 0, optimizer: optimizerName, schedule, bestValAcc: null, lastValAcc: null, lastLoss: null,
    seed: config.seed, config: runConfig,
    dataset: { name: 'mnist', train: data.train.n, val: data.val.n, fingerprint: data.fingerprint },
    provenance: provenance(backend),
  };

  let resumedFrom: number | null = null;
  let resumedPath: string | null = null;
  if (resume !== 'never') {
    const loaded = resume === 'auto' ? await ckpt.loadLatest() : await ckpt.load(resume);
    if (loaded) {
      const saved = loaded.state as TrainState;
      if (saved.dataset?.fingerprint !== data.fingerprint) throw new Error(`checkpoint ${loaded.path} was trained on different data (seed or split differ)`);
      if (JSON.stringify(saved.config.layers) !== JSON.stringify(config.layers)) throw new Error(`checkpoint ${loaded.path} has layers ${saved.config.layers}, not ${config.layers}`);
      if ((saved.optimizer ?? 'adam') !== optimizerName) throw new CheckpointError(`checkpoint ${loaded.path} was trained with --optimizer ${saved.optimizer}, not ${optimizerName}`, { code: 'ECKPT_MISMATCH', path: loaded.path });
      restoreModelState(model, optimizer, loaded, { tf });
      Object.assign(state, { step: saved.step, epoch: saved.epoch, posInEpoch: saved.posInEpoch, bestValAcc: saved.bestValAcc, lastValAcc: saved.lastValAcc, lastLoss: saved.lastLoss });
      resumedFrom = saved.step;
      resumedPath = loaded.path;
    }
  }
  emit({ event: 'start', totalSteps, stepsPerEpoch, backend, resumedFrom, path: resumedPath });

  let stopSignal: string | null = null;
  const onSignal = (sig: string) => () => { stopSignal = sig; };
  const handlers = { SIGINT: onSignal('SIGINT'), SIGTERM: onSignal('SIGTERM') };
  process.on('SIGINT', handlers.SIGINT);
  process.on('SIGTERM', handlers.SIGTERM);

  const val = tf.tensor2d(data.val.xs, [data.val.n, 784]);
  const vars = model.trainableWeights.map((w) => w.read() as tfType.Variable);
  const arena = new StagingArena();
  let order: Uint32Array | null = null;
  let orderEpoch = -1;
  let lastSaved = state.step;
  let lastDurable: DurableInfo | null = null;

  const save = async (): Promise<void> => {
    const source = modelState(model, optimizer, { tf, arena });
    const metrics: Record<string, number> = {};
    if (state.lastLoss !== null) metrics.loss = state.lastLoss;
    if (state.lastValAcc !== null) metrics.val_acc = state.lastValAcc;
    const handle = await ckpt.save(state.step, { tensors: source, state, metrics });
    emit({ event: 'save', step: state.step, stallMs: handle.stallMs, waitedMs: handle.waitedMs, skipped: handle.skipped });
    handle.durable.then((d) => {
      if (!d) return;
      lastDurable = d;
      emit({ event: 'durable', step: d.step, path: d.path, bytes: d.bytes, msToDurable: d.msToDurable });
    }, (err: unknown) => {
      // Reported now; ckpt.close() rethrows it at the end so the run exits non-zero.
      const e = err as { code?: string; message?: string };
      emit({ event: 'warning', message: `save of step ${handle.step} failed: ${e.code ?? ''} ${e.message ?? String(err)}`.trim() });
    });
    lastSaved = state.step;
  };

  try {
    while (state.step < totalSteps && !stopSignal) {
      const epoch = Math.floor(state.step / stepsPerEpoch);
      const pos = state.step % stepsPerEpoch;
      if (epoch !== orderEpoch) {
        order = permutation(data.train.n, new Rng(config.seed, STREAM.shuffle, epoch));
        orderEpoch = epoch;
      }
      const lr = applySchedule(optimizer, schedule, state.step);
      const loss = tf.tidy(() => {
        const [x, y] = batchTensors(tf, data.train, order!.subarray(pos * config.batch, (pos + 1) * config.batch));
        const value = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tfType.Tensor2D) as tfType.Scalar, true, vars);
        return value!.dataSync()[0]!;
      });
      state.step++;
      state.epoch = Math.floor(state.step / stepsPerEpoch);
      state.posInEpoch = state.step % stepsPerEpoch;
      state.lastLoss = loss;
      emit({ event: 'step', step: state.step, epoch: state.epoch, loss, lr });
      if (state.step % config.evalEvery === 0 || state.step === totalSteps) {
        state.lastValAcc = accuracy(tf, model, val, data.val.labels);
        state.bestValAcc = Math.max(state.bestValAcc ?? 0, state.lastValAcc);
        emit({ event: 'eval', step: state.step, valAcc: state.lastValAcc });
      }
      if (state.step % config.saveEvery === 0 || state.step === totalSteps) await save();
      // Let completions and snapshot slices run between steps.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (stopSignal && state.step !== lastSaved) await save();
    await ckpt.close();
  } finally {
    process.off('SIGINT', handlers.SIGINT);
    process.off('SIGTERM', handlers.SIGTERM);
    val.dispose();
    model.dispose();
    optimizer.dispose();
  }
  if (stopSignal) emit({ event: 'stopped', step: state.step, signal: stopSignal });
  else emit({ event: 'done', step: state.step, valAcc: state.lastValAcc, path: (lastDurable as DurableInfo | null)?.path ?? null });
  return state;
}

/** The demo's schedule flags as a ckptio schedule: linear warmup from --start-lr into cosine / constant / step
 * decay. It spans the planned run (--epochs), so a run stopped early follows the same rates. */
export function lrSchedule(config: Pick<TrainConfig, 'schedule' | 'lr' | 'warmup' | 'startLr' | 'minLr'>, plannedSteps: number): Schedule {
  const after = config.schedule === 'constant' ? schedules.constant({ lr: config.lr })
    : config.schedule === 'step' ? schedules.step({ lr: config.lr, stepSize: Math.max(1, Math.floor(plannedSteps / 3)), gamma: 0.1 })
      : schedules.cosine({ lr: config.lr, decaySteps: Math.max(1, plannedSteps - config.warmup), minLr: Math.min(config.minLr, config.lr) });
  return config.warmup > 0 ? schedules.warmup({ mode: 'linear', startLr: config.startLr, warmupSteps: config.warmup }, after) : after;
}

function accuracy(tf: typeof tfType, model: tfType.LayersModel, x: tfType.Tensor2D, labels: Uint8Array): number {
  const pred = tf.tidy(() => tf.argMax(model.predict(x) as tfType.Tensor2D, 1).dataSync());
  let hit = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) hit++;
  return hit / labels.length;
}

function batchTensors(tf: typeof tfType, set: Dataset, idx: Uint32Array): [tfType.Tensor2D, tfType.Tensor2D] {
  const x = new Float32Array(idx.length * 784);
  const y = new Float32Array(idx.length * 10);
  idx.forEach((j, k) => {
    x.set(set.xs.subarray(j * 784, (j + 1) * 784), k * 784);
    y[k * 10 + set.labels[j]!] = 1;
  });
  return [tf.tensor2d(x, [idx.length, 784]), tf.tensor2d(y, [idx.length, 10])];
}
