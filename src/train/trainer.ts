/** Trainer: the demo, a custom loop over a tf.LayersModel with a tf.train optimizer, written only against ckptio's
 * public tfjs API: the LR schedule applied per step (applySchedule), periodic validation, a checkpoint every N
 * steps (modelState + Checkpointer, written off-thread), and exact resume (restoreModelState). The full state a
 * byte-exact continuation needs is listed in docs/training-state.md. */
import '../platform/node';
import type * as tfType from '@tensorflow/tfjs';
import * as path from 'node:path';
import { argumentError, CheckpointError } from '../binding/errors';
import { Checkpointer, DurableInfo, LoadedCheckpoint } from '../checkpoint/checkpointer';
import { readPointer } from '../checkpoint/directory';
import { stepOf, tagFileName } from '../checkpoint/manifest';
import { readHeader } from '../format/file';
import { keepBest } from '../checkpoint/retention';
import type { Compression } from '../format/file';
import { BackendName, loadTf } from '../tfjs/backend';
import type { WebGpuAdapterReport } from '../tfjs/webgpu';
import { modelState } from '../tfjs/model-state';
import { restoreModelState } from '../tfjs/restore';
import { applySchedule, Schedule, schedules } from '../tfjs/schedules';
import { Dataset, EpochOrder, onlyClasses, splitMnist } from './data';
import { buildMlp, makeOptimizer, OptimizerName } from './model';
import { provenance, Provenance } from './provenance';
import { NAME_PATTERN } from '../checkpoint/names';

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
  /** Train on these digits only (default 0-9); the head has max(classes) + 1 outputs. */
  classes?: number[];
  /** Tag the final checkpoint (e.g. v1_baseline). */
  tag?: string;
  /** Store unchanged tensors (a frozen layer) by reference to the checkpoint that holds them. */
  dedup?: boolean;
  /** Start from another run's checkpoint (incremental fine-tuning); see finetune(). */
  finetune?: FinetuneConfig;
  /** Replicate checkpoints to s3://bucket/prefix; an empty --dir resumes from there. */
  remote?: string;
}

export interface FinetuneConfig {
  /** A run directory (its newest valid checkpoint), `DIR:TAG` (a tagged one), or a checkpoint file. */
  from: string;
  /** The parent run's learning rate times this (PaddlePaddle's incremental training uses 1/5 to 1/10). */
  lrScale: number;
  /** Start the optimizer afresh instead of continuing the parent's state. */
  resetOptimizer: boolean;
  /** false (default for fine-tuning): load what fits and report the rest (a head that changed size). */
  strict: boolean;
  /** Indices in model.layers whose weights stay fixed. */
  freeze: number[];
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
  | {
      event: 'start';
      totalSteps: number;
      stepsPerEpoch: number;
      backend: string;
      adapter?: WebGpuAdapterReport;
      resumedFrom: number | null;
      path: string | null;
    }
  | { event: 'step'; step: number; epoch: number; loss: number; lr: number }
  | { event: 'eval'; step: number; valAcc: number }
  | { event: 'save'; step: number; stallMs: number; waitedMs: number; skipped: boolean }
  | { event: 'durable'; step: number; path: string; bytes: number; msToDurable: number; dedupedBytes: number }
  | { event: 'replicated'; step: number; key: string; bytes: number; msToReplicated: number }
  | { event: 'upload'; step: number; sent: number; total: number }
  | { event: 'warning'; message: string }
  | { event: 'stopped'; step: number; signal: string }
  | { event: 'done'; step: number; valAcc: number | null; path: string | null }
  | { event: 'finetune'; parent: string; parentStep: number; restored: number; notLoaded: string[]; lr: number }
  | { event: 'classes'; phase: 'before' | 'after'; step: number; old: number[]; new: number[]; oldAcc: number | null; newAcc: number | null };

export async function train(config: TrainConfig, emit: (e: TrainEvent) => void): Promise<TrainState> {
  const { tf, backend, adapter, close: closeBackend } = await loadTf(config.backend);
  try {
    return await trainOn(tf, backend, adapter, config, emit);
  } finally {
    await closeBackend();
  }
}

async function trainOn(
  tf: typeof tfType,
  backend: BackendName,
  adapter: WebGpuAdapterReport | undefined,
  config: TrainConfig,
  emit: (e: TrainEvent) => void,
): Promise<TrainState> {
  const classes = config.classes ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const all = splitMnist(config.seed, 1000, config.trainLimit);
  const data = { ...all, train: onlyClasses(all.train, classes), val: onlyClasses(all.val, classes) };
  const parent = config.finetune ? await loadParent(config.finetune.from) : null;
  const stepsPerEpoch = Math.floor(data.train.n / config.batch);
  if (stepsPerEpoch < 1) throw new Error(`batch ${config.batch} is larger than the training set (${data.train.n})`);
  // The schedule spans the planned run (--epochs); --steps only says where this invocation stops, so a run
  // stopped early and resumed follows exactly the same learning rates as one that never stopped.
  const plannedSteps = config.epochs * stepsPerEpoch;
  const totalSteps = config.steps ?? plannedSteps;
  const parentState = parent?.loaded.state as TrainState | undefined;
  const lr = config.finetune ? (parentState?.config.lr ?? config.lr) * config.finetune.lrScale : config.lr;
  const schedule = lrSchedule({ ...config, lr, startLr: Math.min(config.startLr, lr), minLr: Math.min(config.minLr, lr) }, plannedSteps);
  const optimizerName = config.optimizer ?? 'adam';
  const model = buildMlp(tf, [784, ...config.layers, Math.max(...classes) + 1], config.seed);
  for (const i of config.finetune?.freeze ?? []) {
    if (!model.layers[i]) throw argumentError(`--freeze ${i}: the model has ${model.layers.length} layers (0-${model.layers.length - 1})`);
    model.layers[i]!.trainable = false;
  }
  const optimizer = makeOptimizer(tf, optimizerName, lr);
  const ckpt = new Checkpointer({
    dir: config.dir,
    keepLast: config.keepLast,
    maxInflight: 1,
    onFull: 'wait',
    ...(parent ? { parent: { run: parent.run, step: parent.loaded.step, ...(parent.contentId ? { contentId: parent.contentId } : {}) } } : {}),
    retention: [keepBest({ metric: 'val_acc', mode: 'max' })],
    compression: config.compression ?? 'none',
    dedup: config.dedup ?? false,
    ...(config.remote
      ? { remote: { url: config.remote, onProgress: (p: { step: number; sent: number; total: number }) => emit({ event: 'upload', ...p }) } }
      : {}),
    onWarning: (message) => emit({ event: 'warning', message }),
  });
  // Where the run is stored is not part of it: a run moved or resumed elsewhere is the same run.
  const { resume, dir: _dir, compression: _compression, remote: _remote, ...runConfig } = config;
  void _dir;
  void _compression;
  void _remote;
  const state: TrainState = {
    step: 0,
    epoch: 0,
    posInEpoch: 0,
    optimizer: optimizerName,
    schedule,
    bestValAcc: null,
    lastValAcc: null,
    lastLoss: null,
    seed: config.seed,
    config: runConfig,
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
      if (JSON.stringify(saved.config.layers) !== JSON.stringify(config.layers))
        throw new Error(`checkpoint ${loaded.path} has layers ${saved.config.layers}, not ${config.layers}`);
      if (JSON.stringify(saved.config.classes ?? null) !== JSON.stringify(config.classes ?? null))
        throw new CheckpointError(
          `checkpoint ${loaded.path} was trained on classes ${saved.config.classes ?? '0-9'}, not ${config.classes ?? '0-9'} (use finetune --from to start a new run from it)`,
          { code: 'ECKPT_MISMATCH', path: loaded.path },
        );
      if ((saved.optimizer ?? 'adam') !== optimizerName)
        throw new CheckpointError(`checkpoint ${loaded.path} was trained with --optimizer ${saved.optimizer}, not ${optimizerName}`, {
          code: 'ECKPT_MISMATCH',
          path: loaded.path,
        });
      restoreModelState(model, optimizer, loaded, { tf });
      Object.assign(state, {
        step: saved.step,
        epoch: saved.epoch,
        posInEpoch: saved.posInEpoch,
        bestValAcc: saved.bestValAcc,
        lastValAcc: saved.lastValAcc,
        lastLoss: saved.lastLoss,
      });
      resumedFrom = saved.step;
      resumedPath = loaded.path;
    }
  }
  const vars = () => model.trainableWeights.map((w) => w.read() as tfType.Variable);
  if (parent && resumedFrom === null) {
    const ft = config.finetune!;
    const report = restoreModelState(model, ft.resetOptimizer ? null : optimizer, parent.loaded, {
      tf,
      strict: ft.strict,
      learningRate: 'keep',
      variableOrder: vars(),
    });
    emit({
      event: 'finetune',
      parent: parent.loaded.path,
      parentStep: parent.loaded.step,
      restored: report.restored.length,
      notLoaded: [...report.missing, ...report.mismatched, ...report.unexpected],
      lr,
    });
  }
  emit({ event: 'start', totalSteps, stepsPerEpoch, backend, ...(adapter ? { adapter } : {}), resumedFrom, path: resumedPath });
  const oldClasses = parentState?.config.classes ?? (config.finetune ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] : classes);
  const newClasses = classes.filter((c) => !oldClasses.includes(c));
  const byClass = async (phase: 'before' | 'after', judged: tfType.LayersModel) => {
    const acc = async (cs: number[]) => {
      if (!cs.length) return null;
      const set = onlyClasses(all.val, cs);
      const x = tf.tensor2d(set.xs, [set.n, 784]);
      try {
        return await accuracy(tf, judged, x, set.labels);
      } finally {
        x.dispose();
      }
    };
    emit({ event: 'classes', phase, step: state.step, old: oldClasses, new: newClasses, oldAcc: await acc(oldClasses), newAcc: await acc(newClasses) });
  };
  if (parent && resumedFrom === null) {
    // "Before" is the parent as it was trained (its own head), so forgetting shows as the old classes' drop.
    const p = parentState!.config;
    const parentModel = buildMlp(tf, [784, ...p.layers, Math.max(...(p.classes ?? [9])) + 1], config.seed);
    try {
      restoreModelState(parentModel, null, parent.loaded, { tf });
      await byClass('before', parentModel);
    } finally {
      parentModel.dispose();
    }
  }

  let stopSignal: string | null = null;
  const onSignal = (sig: string) => () => {
    stopSignal = sig;
  };
  const handlers = { SIGINT: onSignal('SIGINT'), SIGTERM: onSignal('SIGTERM') };
  process.on('SIGINT', handlers.SIGINT);
  process.on('SIGTERM', handlers.SIGTERM);

  const val = tf.tensor2d(data.val.xs, [data.val.n, 784]);
  const trained = vars();
  const order = new EpochOrder(data.train.n, config.seed);
  let lastSaved = state.step;
  let lastDurable: DurableInfo | null = null;

  const save = async (): Promise<void> => {
    const source = modelState(model, optimizer, { tf });
    const metrics: Record<string, number> = {};
    if (state.lastLoss !== null) metrics.loss = state.lastLoss;
    if (state.lastValAcc !== null) metrics.val_acc = state.lastValAcc;
    const handle = await ckpt.save(state.step, { tensors: source, state, metrics });
    emit({ event: 'save', step: state.step, stallMs: handle.stallMs, waitedMs: handle.waitedMs, skipped: handle.skipped });
    handle.durable.then(
      (d) => {
        if (!d) return;
        lastDurable = d;
        emit({ event: 'durable', step: d.step, path: d.path, bytes: d.bytes, msToDurable: d.msToDurable, dedupedBytes: d.dedupedBytes });
      },
      (err: unknown) => {
        // Reported now; ckpt.close() rethrows it at the end so the run exits non-zero.
        const e = err as { code?: string; message?: string };
        emit({ event: 'warning', message: `save of step ${handle.step} failed: ${e.code ?? ''} ${e.message ?? String(err)}`.trim() });
      },
    );
    // A failed upload is reported by the checkpointer as a warning; the run goes on with its local checkpoints.
    handle.replicated.then(
      (r) => {
        if (r) emit({ event: 'replicated', step: r.step, key: r.key, bytes: r.bytes, msToReplicated: r.msToReplicated });
      },
      () => {},
    );
    lastSaved = state.step;
  };

  try {
    while (state.step < totalSteps && !stopSignal) {
      const epoch = Math.floor(state.step / stepsPerEpoch);
      const pos = state.step % stepsPerEpoch;
      const lr = applySchedule(optimizer, schedule, state.step);
      const lossTensor = tf.tidy(() => {
        const [x, y] = batchTensors(tf, data.train, order.slice(epoch, pos * config.batch, (pos + 1) * config.batch), Math.max(...classes) + 1);
        return optimizer.minimize(
          () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tfType.Tensor2D) as tfType.Scalar,
          true,
          trained,
        )!;
      });
      // data(), never dataSync(): on webgpu in Node the synchronous read needs OffscreenCanvas.
      const loss = (await lossTensor.data())[0]!;
      lossTensor.dispose();
      state.step++;
      state.epoch = Math.floor(state.step / stepsPerEpoch);
      state.posInEpoch = state.step % stepsPerEpoch;
      state.lastLoss = loss;
      emit({ event: 'step', step: state.step, epoch: state.epoch, loss, lr });
      if (state.step % config.evalEvery === 0 || state.step === totalSteps) {
        state.lastValAcc = await accuracy(tf, model, val, data.val.labels);
        state.bestValAcc = Math.max(state.bestValAcc ?? 0, state.lastValAcc);
        emit({ event: 'eval', step: state.step, valAcc: state.lastValAcc });
      }
      if (state.step % config.saveEvery === 0 || state.step === totalSteps) await save();
      // Let completions and snapshot slices run between steps.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (stopSignal && state.step !== lastSaved) await save();
    if (config.finetune) await byClass('after', model);
    if (config.tag && !stopSignal) await ckpt.tag(state.step, config.tag);
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
  const after =
    config.schedule === 'constant'
      ? schedules.constant({ lr: config.lr })
      : config.schedule === 'step'
        ? schedules.step({ lr: config.lr, stepSize: Math.max(1, Math.floor(plannedSteps / 3)), gamma: 0.1 })
        : schedules.cosine({ lr: config.lr, decaySteps: Math.max(1, plannedSteps - config.warmup), minLr: Math.min(config.minLr, config.lr) });
  return config.warmup > 0 ? schedules.warmup({ mode: 'linear', startLr: config.startLr, warmupSteps: config.warmup }, after) : after;
}

export async function accuracy(tf: typeof tfType, model: tfType.LayersModel, x: tfType.Tensor2D, labels: Uint8Array): Promise<number> {
  const predicted = tf.tidy(() => tf.argMax(model.predict(x) as tfType.Tensor2D, 1));
  const pred = await predicted.data();
  predicted.dispose();
  let hit = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) hit++;
  return hit / labels.length;
}

export function batchTensors(tf: typeof tfType, set: Dataset, idx: Uint32Array, outputs: number): [tfType.Tensor2D, tfType.Tensor2D] {
  const x = new Float32Array(idx.length * 784);
  const y = new Float32Array(idx.length * outputs);
  idx.forEach((j, k) => {
    x.set(set.xs.subarray(j * 784, (j + 1) * 784), k * 784);
    y[k * outputs + set.labels[j]!] = 1;
  });
  return [tf.tensor2d(x, [idx.length, 784]), tf.tensor2d(y, [idx.length, outputs])];
}

/** The checkpoint a fine-tune starts from: `DIR` (its newest valid checkpoint), `DIR:TAG`, or a file. Read-only:
 * the parent run may still be training. */
async function loadParent(from: string): Promise<{ loaded: LoadedCheckpoint; run: string; contentId: string | null }> {
  const [dir, tag] = new RegExp(`^(.*):(${NAME_PATTERN})$`).exec(from)?.slice(1) ?? [from, undefined];
  let loaded: LoadedCheckpoint | null;
  let run: string;
  if (stepOf(path.basename(dir!)) !== null) {
    run = path.resolve(path.dirname(dir!));
    loaded = await new Checkpointer({ dir: run, lock: false }).load(path.resolve(dir!));
  } else {
    run = path.resolve(dir!);
    const reader = new Checkpointer({ dir: run, lock: false });
    if (tag) {
      const p = await readPointer(run, tagFileName(tag));
      if (!p) throw new CheckpointError(`${run} has no tag ${tag}`, { code: 'ENOENT', path: path.join(run, tagFileName(tag)) });
      loaded = await reader.load(path.join(run, p.file));
    } else {
      loaded = await reader.loadLatest();
    }
  }
  if (!loaded) throw new CheckpointError(`${from} holds no valid checkpoint to fine-tune from`, { code: 'ENOENT', path: run });
  const header = await readHeader(loaded.path);
  return { loaded, run, contentId: header.contentId ?? null };
}
