/** Section `defaults` of npm run bench: what a user gets with default options on the loops users write.
 *
 * - A synchronous custom loop (optimizer.minimize each step; `await ckpt.save(step, { tensors: modelState(...) })`
 *   its only await): how long each save call holds the loop, and whether the checkpoint was durable by the next
 *   save (it is handed to the writer before save() returns).
 * - Main-thread CPU per save from the call until durable, deferred work included (the loop idle meanwhile, so the
 *   thread's CPU time over the window is the save's).
 * - fitCheckpoint: how long each saving batch's onBatchEnd holds model.fit.
 * Every figure with default options (no arena, maxInflight 1, no compression). */
import '../src/platform/node';
import * as path from 'node:path';
import type * as tfType from '@tensorflow/tfjs';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { loadTf, BackendName } from '../src/tfjs/backend';
import { fitCheckpoint } from '../src/tfjs/callback';
import { modelState } from '../src/tfjs/model-state';
import { BenchContext, MiB, settledMainThreadSched, stat } from './common';

type Tf = typeof tfType;

function model(tf: Tf, units: number): tfType.LayersModel {
  const m = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [1024], units, activation: 'relu' }), tf.layers.dense({ units: 10, activation: 'softmax' })],
  });
  m.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy' });
  return m;
}

const fmt = (s: { median: number; max: number }) => `${s.median.toFixed(2)} / ${s.max.toFixed(2)}`;

async function syncLoop(tf: Tf, units: number, saves: number, dir: string) {
  const m = model(tf, units);
  const opt = m.optimizer;
  const x = tf.randomNormal([32, 1024]);
  const y = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: 32 }, (_, i) => i % 10),
      'int32',
    ),
    10,
  );
  const step = () =>
    tf.tidy(() => {
      opt.minimize(() => tf.losses.softmaxCrossEntropy(y, m.predict(x) as tfType.Tensor) as tfType.Scalar);
    });
  const ckpt = new Checkpointer({ dir, onWarning: () => {} });
  step();
  const first = await ckpt.save(0, { tensors: modelState(m, opt, { tf }) });
  const bytes = (await first.durable)!.bytes;
  const callMs: number[] = [];
  let durableByNext = 0;
  for (let s = 1; s <= saves * 5; s++) {
    step();
    if (s % 5 !== 0) continue;
    if (s > 5 && ckpt.lastDurableStep === s - 5) durableByNext++;
    const t0 = performance.now();
    await ckpt.save(s, { tensors: modelState(m, opt, { tf }) });
    callMs.push(performance.now() - t0);
  }
  if (ckpt.lastDurableStep === saves * 5) durableByNext++; // checked after the loop's last steps
  // Main-thread CPU per save, call to durable, the loop idle meanwhile.
  const cpuMs: number[] = [];
  for (let i = 1; i <= Math.min(saves, 6); i++) {
    step();
    const c0 = (await settledMainThreadSched()).cpuMs;
    const h = await ckpt.save(saves * 5 + i, { tensors: modelState(m, opt, { tf }) });
    await h.durable;
    cpuMs.push((await settledMainThreadSched()).cpuMs - c0 - 0.2); // minus the settled read's own cost
  }
  await ckpt.close();
  m.dispose();
  x.dispose();
  y.dispose();
  return { bytes, call: stat(callMs), cpu: stat(cpuMs), durableByNext, saves };
}

async function fitHold(tf: Tf, units: number, batches: number, dir: string) {
  const m = model(tf, units);
  const x = tf.randomNormal([batches * 32, 1024]);
  const y = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: batches * 32 }, (_, i) => i % 10),
      'int32',
    ),
    10,
  );
  const cb = await fitCheckpoint(m, { tf, dir, everyBatches: 3, everyEpoch: false, onWarning: () => {} });
  const holds: number[] = [];
  const save = cb.checkpointer.save.bind(cb.checkpointer);
  let saving = false;
  cb.checkpointer.save = (step, payload) => {
    saving = true;
    return save(step, payload);
  };
  const onBatchEnd = cb.onBatchEnd.bind(cb);
  cb.onBatchEnd = async (batch, logs) => {
    saving = false;
    const t0 = performance.now();
    await onBatchEnd(batch, logs);
    if (saving) holds.push(performance.now() - t0);
  };
  await m.fit(x, y, { batchSize: 32, epochs: 1, shuffle: false, callbacks: [cb], verbose: 0 });
  await cb.close();
  m.dispose();
  x.dispose();
  y.dispose();
  return stat(holds.slice(1)); // the first save's open/lock is not a saving batch's cost
}

export async function defaultsBench(ctx: BenchContext): Promise<void> {
  const units = ctx.quick ? 512 : 4096; // weights 2 MiB / 16 MiB; with Adam's two slots 6 / 48 MiB per save
  const saves = ctx.quick ? 4 : 12;
  ctx.rows.push(
    '## Default options, the loops users write',
    '',
    `A dense 1024-${units}-10 model with Adam (each save about ${((units * 1034 * 4 * 3) / MiB).toFixed(0)} MiB: weights and both slots), \`new Checkpointer({ dir })\` / \`fitCheckpoint(model, { dir, everyBatches: 3 })\` with nothing else set. ` +
      'Synchronous loop: `optimizer.minimize` each step and `await ckpt.save(step, { tensors: modelState(model, optimizer) })` every 5 steps as its only await. ' +
      "CPU per save: the main thread's CPU time from the call until `durable` resolved, the loop idle meanwhile (so it is the save's, deferred work included). " +
      'fitCheckpoint hold: the time `model.fit` waits in onBatchEnd on a saving batch. Goals: <= 2 ms median and <= 10 ms worst for the call and the hold, <= 2 ms for the CPU.',
    '',
    '| backend | bytes per save | save call in a synchronous loop, median / worst ms | durable by the next save | main-thread CPU per save until durable, median / worst ms | fitCheckpoint hold per saving batch, median / worst ms | goals |',
    '|---|---|---|---|---|---|---|',
  );
  for (const backend of ['cpu', 'wasm', 'webgpu'] as BackendName[]) {
    let tf: Tf;
    try {
      ({ tf } = await loadTf(backend));
    } catch (err) {
      ctx.rows.push(`| ${backend} | not measured: ${String((err as Error).message).split('\n')[0]} | | | | | |`);
      continue;
    }
    const loop = await syncLoop(tf, units, saves, path.join(ctx.workDir, `defaults-${backend}-loop`));
    const hold = await fitHold(tf, units, ctx.quick ? 10 : 31, path.join(ctx.workDir, `defaults-${backend}-fit`));
    const met = loop.call.median <= 2 && loop.call.max <= 10 && hold.median <= 2 && hold.max <= 10 && loop.cpu.median <= 2;
    ctx.rows.push(
      `| ${backend} | ${(loop.bytes / MiB).toFixed(1)} MiB | ${fmt(loop.call)} | ${loop.durableByNext} of ${loop.saves} | ${fmt(loop.cpu)} | ${fmt(hold)} | ${met ? 'met' : 'NOT met'} |`,
    );
    ctx.results[`defaults:${backend}`] = {
      bytes: loop.bytes,
      callMs: loop.call,
      durableByNext: loop.durableByNext,
      saves: loop.saves,
      cpuMs: loop.cpu,
      fitHoldMs: hold,
      met,
    };
  }
  ctx.rows.push('');
}
