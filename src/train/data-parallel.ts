/** The demo's data-parallel mode (`ckptio train --workers N`): N local processes train the same MLP, each on its
 * slice of every batch; their gradients are averaged by the parent process in rank order (a fixed order, so a run is
 * reproducible bit for bit) and every rank applies the same average. It demonstrates sharded checkpointing, not a
 * distributed training engine: the channel is Node's IPC to the parent.
 *
 * Checkpoints are sharded (ZeRO-1 style): rank 0's shard holds the weights, the optimizer's slots are dealt out
 * round-robin over the ranks, each rank's shard holds its own position in the data. A step is durable only once
 * every rank's shard is (checkpoint/shards.ts). On resume every rank reads every shard of the newest complete step,
 * so a run also resumes with another --workers. */
import '../platform/node';
import type * as tfType from '@tensorflow/tfjs';
import { ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';
import { argumentError, CheckpointError } from '../binding/errors';
import { Checkpointer, TensorSource } from '../checkpoint/checkpointer';
import { TensorList } from '../format/tensor-list';
import { loadTf } from '../tfjs/backend';
import { modelState } from '../tfjs/model-state';
import { OPTIMIZER_PREFIX } from '../tfjs/optimizers';
import { restoreModelState } from '../tfjs/restore';
import { applySchedule } from '../tfjs/schedules';
import { EpochOrder, onlyClasses, splitMnist } from './data';
import { buildMlp, makeOptimizer } from './model';
import { accuracy, batchTensors, lrSchedule, TrainConfig, TrainEvent } from './trainer';

/** Parent -> rank: the run (once), then each step's averaged gradient. Rank -> parent: its gradient, its events. */
export type ToRank = { type: 'config'; config: TrainConfig; rank: number; worldSize: number } | { type: 'mean'; step: number; data: Float32Array };
export type FromRank = { type: 'grads'; step: number; data: Float32Array } | { type: 'event'; event: TrainEvent & { rank: number } };

/** What each rank's shard holds besides tensors: where it is in the data. */
interface RankState {
  step: number;
  epoch: number;
  posInEpoch: number;
  rank: number;
  worldSize: number;
  seed: number;
  fingerprint: string;
  layers: number[];
}

/** The parent: starts the ranks, averages their gradients in rank order, passes their events on. Resolves when
 * every rank has exited; rejects naming the first rank that failed (the others are stopped). */
export async function trainWorkers(config: TrainConfig, workers: number, emit: (e: TrainEvent & { rank?: number }) => void): Promise<void> {
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw argumentError('--workers must be an integer from 1 to 64');
  if (config.batch % workers !== 0) throw argumentError(`--batch ${config.batch} must be a multiple of --workers ${workers} (each rank takes an equal slice)`);
  for (const [flag, set] of [
    ['--remote', config.remote],
    ['--dedup', config.dedup],
    ['--tag', config.tag],
    ['--compression lz4', config.compression === 'lz4' ? true : undefined],
    ['finetune', config.finetune],
  ] as const) {
    if (set) throw argumentError(`${flag} is not available with --workers`);
  }
  const entry = path.join(__dirname, 'rank-process.js');
  const ranks: ChildProcess[] = [];
  const pending = new Map<number, (Float32Array | undefined)[]>();
  const exits: Promise<void>[] = [];
  let failed: Error | null = null;
  const resumed: (number | null)[] = [];
  const stopAll = () => {
    for (const c of ranks) if (c.exitCode === null) c.kill('SIGTERM');
  };
  for (let rank = 0; rank < workers; rank++) {
    const child = fork(entry, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    ranks.push(child);
    child.on('message', (m: FromRank) => {
      if (m.type === 'event') {
        // Every rank must resume the same step (the same newest complete step): otherwise their gradients are for
        // different steps, and the run stops naming the ranks' steps.
        if (m.event.event === 'start') {
          resumed.push(m.event.resumedFrom);
          if (new Set(resumed).size > 1 && !failed) {
            failed = new CheckpointError(`the ranks resumed from different steps (${resumed.join(', ')}); the run is stopped`, { code: 'ECKPT_PEER' });
            stopAll();
          }
        }
        return emit(m.event);
      }
      const got = pending.get(m.step) ?? new Array<Float32Array | undefined>(workers).fill(undefined);
      got[rank] = m.data;
      pending.set(m.step, got);
      if (got.some((g) => g === undefined)) return;
      pending.delete(m.step);
      // Summed in rank order, then scaled: the same bits on every run.
      const mean = Float32Array.from(got[0]!);
      for (let r = 1; r < workers; r++) {
        const g = got[r]!;
        for (let i = 0; i < mean.length; i++) mean[i] = mean[i]! + g[i]!;
      }
      for (let i = 0; i < mean.length; i++) mean[i] = mean[i]! / workers;
      for (const c of ranks) c.send({ type: 'mean', step: m.step, data: mean } satisfies ToRank);
    });
    exits.push(
      new Promise<void>((resolve) =>
        child.on('exit', (code, signal) => {
          if ((code !== 0 || signal) && !failed) {
            failed = new CheckpointError(`rank ${rank} exited with ${signal ?? `status ${code}`}; the other ranks were stopped`, { code: 'ECKPT_PEER' });
            stopAll();
          }
          resolve();
        }),
      ),
    );
    child.send({ type: 'config', config, rank, worldSize: workers } satisfies ToRank);
  }
  const onSignal = () => stopAll();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await Promise.all(exits);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (failed) throw failed;
}

/** This rank's shard of a model's state: the weights on rank 0, every `worldSize`-th optimizer tensor from `rank`. */
function shardOfState(source: TensorSource, rank: number, worldSize: number): TensorSource {
  const pick = (list: TensorList): TensorList => {
    const keep: number[] = [];
    let slot = 0;
    for (let i = 0; i < list.length; i++) {
      const mine = list.name(i).startsWith(OPTIMIZER_PREFIX) ? slot++ % worldSize === rank : rank === 0;
      if (mine) keep.push(i);
    }
    return list.select(keep);
  };
  const now = source.materializeNow;
  return {
    bytes: source.bytes,
    ...(source.metadata ? { metadata: source.metadata } : {}),
    materialize: async () => pick(TensorList.from(await source.materialize())),
    ...(now ? { materializeNow: () => ((list) => list && pick(list))(now.call(source)) } : {}),
    release: () => source.release(),
  };
}

/** One rank: the loop of trainer.ts with the gradient averaged over the ranks, and a sharded Checkpointer. */
export async function trainRank(
  config: TrainConfig,
  rank: number,
  worldSize: number,
  exchange: (step: number, grads: Float32Array) => Promise<Float32Array>,
  emit: (e: TrainEvent) => void,
): Promise<void> {
  const { tf, backend, close } = await loadTf(config.backend);
  try {
    const classes = config.classes ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    const all = splitMnist(config.seed, 1000, config.trainLimit);
    const data = { ...all, train: onlyClasses(all.train, classes), val: onlyClasses(all.val, classes) };
    const stepsPerEpoch = Math.floor(data.train.n / config.batch);
    if (stepsPerEpoch < 1) throw argumentError(`batch ${config.batch} is larger than the training set (${data.train.n})`);
    const plannedSteps = config.epochs * stepsPerEpoch;
    const totalSteps = config.steps ?? plannedSteps;
    const schedule = lrSchedule(config, plannedSteps);
    const outputs = Math.max(...classes) + 1;
    const model = buildMlp(tf, [784, ...config.layers, outputs], config.seed);
    const optimizer = makeOptimizer(tf, config.optimizer ?? 'adam', config.lr);
    const ckpt = new Checkpointer({ dir: config.dir, rank, worldSize, keepLast: config.keepLast, onWarning: (message) => emit({ event: 'warning', message }) });
    const state: RankState = { step: 0, epoch: 0, posInEpoch: 0, rank, worldSize, seed: config.seed, fingerprint: data.fingerprint, layers: config.layers };
    let resumedFrom: number | null = null;
    let resumedPath: string | null = null;
    if (config.resume === 'auto') {
      const saved = await ckpt.loadLatestStep();
      if (saved) {
        const own = saved.shards[Math.min(rank, saved.worldSize - 1)]!.state as RankState;
        if (own.fingerprint !== data.fingerprint || JSON.stringify(own.layers) !== JSON.stringify(config.layers))
          throw new CheckpointError(`step ${saved.step} in ${config.dir} was trained on other data or layers`, { code: 'ECKPT_MISMATCH', path: saved.path });
        // Every tensor is whole in exactly one shard: the merged shards are the whole state, whatever the world size.
        restoreModelState(model, optimizer, { ...saved.shards[0]!, tensors: Object.assign({}, ...saved.shards.map((s) => s.tensors)) }, { tf });
        Object.assign(state, { step: own.step, epoch: own.epoch, posInEpoch: own.posInEpoch });
        resumedFrom = own.step;
        resumedPath = saved.path;
      }
    } else if (config.resume !== 'never') {
      throw argumentError('--resume with --workers is auto or never');
    }
    emit({ event: 'start', totalSteps, stepsPerEpoch, backend, resumedFrom, path: resumedPath });
    const trained = model.trainableWeights.map((w) => w.read() as tfType.Variable);
    const slice = config.batch / worldSize;
    const failures: Promise<unknown>[] = [];
    const order = new EpochOrder(data.train.n, config.seed);
    let lastPath: string | null = null;
    const save = async () => {
      const handle = await ckpt.save(state.step, { tensors: shardOfState(modelState(model, optimizer, { tf }), rank, worldSize), state });
      emit({ event: 'save', step: state.step, stallMs: handle.stallMs, waitedMs: handle.waitedMs, skipped: handle.skipped });
      failures.push(
        handle.durable.then(
          (d) => {
            if (!d) return;
            lastPath = d.path;
            emit({ event: 'durable', step: d.step, path: d.path, bytes: d.bytes, msToDurable: d.msToDurable, dedupedBytes: 0 });
          },
          (err: { code?: string; message?: string }) =>
            emit({ event: 'warning', message: `save of step ${handle.step} failed: ${err.code ?? ''} ${err.message ?? String(err)}` }),
        ),
      );
    };
    while (state.step < totalSteps) {
      const epoch = Math.floor(state.step / stepsPerEpoch);
      const pos = state.step % stepsPerEpoch;
      const lr = applySchedule(optimizer, schedule, state.step);
      const start = pos * config.batch + rank * slice;
      const { value, grads } = tf.tidy(() => {
        const [x, y] = batchTensors(tf, data.train, order.slice(epoch, start, start + slice), outputs);
        return tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tfType.Tensor2D) as tfType.Scalar, trained);
      });
      const flat = new Float32Array(trained.reduce((n, v) => n + v.size, 0));
      let at = 0;
      for (const v of trained) {
        flat.set(grads[v.name]!.dataSync() as Float32Array, at);
        at += v.size;
      }
      const loss = (await value.data())[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      const mean = await exchange(state.step, flat);
      at = 0;
      const averaged: Record<string, tfType.Tensor> = {};
      for (const v of trained) {
        averaged[v.name] = tf.tensor(mean.subarray(at, at + v.size), v.shape, 'float32');
        at += v.size;
      }
      optimizer.applyGradients(averaged);
      tf.dispose(Object.values(averaged));
      state.step++;
      state.epoch = Math.floor(state.step / stepsPerEpoch);
      state.posInEpoch = state.step % stepsPerEpoch;
      emit({ event: 'step', step: state.step, epoch: state.epoch, loss, lr });
      if (state.step % config.saveEvery === 0 || state.step === totalSteps) await save();
    }
    let valAcc: number | null = null;
    if (rank === 0) {
      const val = tf.tensor2d(data.val.xs, [data.val.n, 784]);
      valAcc = await accuracy(tf, model, val, data.val.labels);
      val.dispose();
    }
    await Promise.all(failures);
    await ckpt.close();
    emit({ event: 'done', step: state.step, valAcc, path: lastPath });
    model.dispose();
    optimizer.dispose();
  } finally {
    await close();
  }
}
