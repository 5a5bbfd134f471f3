/** Figure 8 of the benchmark suite (issue 10): a tf.LayersModel trained with tf.train.adam, checkpointed through
 * `modelState` + `Checkpointer.save` vs what tfjs users do today, `model.save(tf.io.withSaveHandler(...))`
 * writing with fs.promises, and vs `model.save(ioHandler(p))`; restore through `loadLatest` +
 * `restoreModelState` vs `tf.loadLayersModel(ioHandler(p))`; and the per-save cost of a model of many small
 * layers (~600 tensors with Adam), which is per-tensor cost, not bytes. cpu and wasm backends. */
import '../src/platform/node';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tfType from '@tensorflow/tfjs';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { testing } from '../src/binding/native';
import { loadTf, BackendName } from '../src/tfjs/backend';
import { ioHandler } from '../src/tfjs/io-handler';
import { collectModelState, modelState } from '../src/tfjs/model-state';
import { restoreModelState } from '../src/tfjs/restore';
import { StagingArena } from '../src/tfjs/snapshot';
import { BenchContext, MiB, settledMainThreadSched, stat, Stat } from './common';
import { memcpyMs } from './tfjs';

type Tf = typeof tfType;

export const LAYERS_HEADING = '## tfjs LayersModel + Adam: modelState + Checkpointer.save vs model.save';

/** A compiled tf.sequential of dense layers whose weights + Adam slots total about `stateBytes`, trained one
 * step so every slot exists. `width` x `width` kernels; `layers` given or derived from the size. */
async function adamModel(tf: Tf, width: number, layers: number): Promise<tfType.LayersModel> {
  const model = tf.sequential();
  for (let i = 0; i < layers; i++) model.add(tf.layers.dense({ units: width, inputShape: i === 0 ? [width] : undefined, activation: 'relu' }));
  model.compile({ optimizer: tf.train.adam(1e-3), loss: 'meanSquaredError' });
  const x = tf.ones([4, width]);
  const y = tf.zeros([4, width]);
  await model.trainOnBatch(x, y);
  x.dispose();
  y.dispose();
  return model;
}

function sizedModel(tf: Tf, stateBytes: number): Promise<tfType.LayersModel> {
  const width = stateBytes >= 64 * MiB ? 1024 : 512;
  const perLayer = 3 * 4 * (width * width + width); // kernel + bias, and Adam's m and v of each
  return adamModel(tf, width, Math.max(1, Math.round(stateBytes / perLayer)));
}

interface Sample {
  /** Synchronous part of the call(s). */
  callMs: number;
  /** Until the caller's `await` returns (ckptio: the handle; model.save: the whole save). */
  stallMs: number;
  /** ckptio only: what benches/tfjs.ts counts (synchronous parts + wasm heap copies + the addon's completions). */
  mainMs: number;
  /** Main-thread CPU time from the call until durable (until done for model.save), kernel per-thread figure. */
  cpuMs: number;
  /** Until durable (model.save + fs.promises: until written, not durable). */
  doneMs: number;
  /** ckptio only: main-thread CPU time within the stall, and time the thread was runnable but waiting for a core. */
  stallCpuMs: number;
  stallWaitMs: number;
}

/** modelState(model) + Checkpointer.save, timed piece by piece. */
async function ckptioSave(tf: Tf, model: tfType.LayersModel, ckpt: Checkpointer, step: number, arena: StagingArena): Promise<Sample> {
  testing().writerStats(true);
  let copyMs = 0;
  const s0 = await settledMainThreadSched();
  const t0 = performance.now();
  const pending = ckpt.save(step, { tensors: modelState(model, undefined, { tf, arena, onCopyStats: (s) => (copyMs = s.totalMs) }) });
  const callMs = performance.now() - t0;
  const handle = await pending;
  const stallMs = performance.now() - t0;
  const s1 = await settledMainThreadSched(); // 1 ms while the write runs on the writer thread
  await handle.durable;
  const doneMs = performance.now() - t0;
  const cpuMs = (await settledMainThreadSched()).cpuMs - s0.cpuMs;
  return {
    callMs,
    stallMs,
    mainMs: callMs + copyMs + testing().writerStats(true).completionMsTotal,
    cpuMs,
    doneMs,
    stallCpuMs: s1.cpuMs - s0.cpuMs,
    stallWaitMs: s1.waitMs - s0.waitMs,
  };
}

/** Any awaited model.save (or load): the call's synchronous part, wall time and the main thread's CPU time. */
async function awaited(run: () => Promise<unknown>): Promise<Sample> {
  const c0 = (await settledMainThreadSched()).cpuMs;
  const t0 = performance.now();
  const p = run();
  const callMs = performance.now() - t0;
  await p;
  const doneMs = performance.now() - t0;
  const cpuMs = (await settledMainThreadSched()).cpuMs - c0;
  return { callMs, stallMs: doneMs, mainMs: NaN, cpuMs, doneMs, stallCpuMs: NaN, stallWaitMs: NaN };
}

/** What tfjs users without tfjs-node write: model.json + weights.bin through fs.promises (no fsync, no rename). */
export function fsPromisesHandler(tf: Tf, file: string): tfType.io.IOHandler {
  return tf.io.withSaveHandler(async (artifacts) => {
    const data = artifacts.weightData!;
    const parts = (Array.isArray(data) ? data : [data]).map((b) => new Uint8Array(b));
    const fh = await fs.promises.open(file + '.weights.bin', 'w');
    await fh.writev(parts);
    await fh.close();
    const { weightData: _, ...json } = artifacts;
    await fs.promises.writeFile(file + '.model.json', JSON.stringify(json));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: parts.reduce((n, p) => n + p.byteLength, 0) } };
  });
}

const fmt = (s: Stat, digits = 2) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}..${s.max.toFixed(digits)})`;

function stats(xs: Sample[]): Record<keyof Sample, Stat> {
  const pick = (k: keyof Sample) => stat(xs.map((x) => x[k]));
  return {
    callMs: pick('callMs'),
    stallMs: pick('stallMs'),
    mainMs: pick('mainMs'),
    cpuMs: pick('cpuMs'),
    doneMs: pick('doneMs'),
    stallCpuMs: pick('stallCpuMs'),
    stallWaitMs: pick('stallWaitMs'),
  };
}

/** The repetition with the longest stall, split into CPU and waiting for a core. */
function worst(xs: Sample[]): { stallMs: number; stallCpuMs: number; stallWaitMs: number } {
  const w = xs.reduce((a, b) => (b.stallMs > a.stallMs ? b : a));
  return { stallMs: w.stallMs, stallCpuMs: w.stallCpuMs, stallWaitMs: w.stallWaitMs };
}

export async function layersBench(ctx: BenchContext): Promise<void> {
  const reps = ctx.quick ? 2 : 5;
  const mib = ctx.quick ? 16 : 128;
  const floor: number[] = [];
  ctx.rows.push(
    LAYERS_HEADING,
    '',
    `A tf.sequential of dense layers compiled with tf.train.adam and trained one step (so every slot exists); state = weights + Adam m and v + scalars. ${reps} interleaved repetitions (a b c, a b c, ...) after one warm-up of each.`,
    '',
    '| state | backend | path | stall ms: until the caller continues (median, min..max) | main-thread CPU ms, call → durable (median, min..max) | ms to durable (median) | model.save / ckptio: stall, CPU |',
    '|---|---|---|---|---|---|---|',
  );
  const restoreRows: string[] = [];
  const manyRows: string[] = [];
  const anchors: string[] = [];
  for (const backend of ['cpu', 'wasm'] as BackendName[]) {
    const { tf } = await loadTf(backend);
    const model = await sizedModel(tf, mib * MiB);
    const collected = collectModelState(model, undefined).tensors;
    const nTensors = Object.keys(collected).length;
    const bytes = Object.values(collected).reduce((n, t) => n + t.size * 4, 0);
    const dir = path.join(ctx.workDir, `layers-${backend}`);
    const ckpt = new Checkpointer({ dir, keepLast: 1, onWarning: () => {} });
    const arena = new StagingArena();
    const fsFile = path.join(ctx.workDir, `layers-${backend}-fsp`);
    const ioFile = path.join(ctx.workDir, `layers-${backend}.safetensors`);
    const paths: Record<string, () => Promise<Sample>> = {
      a: () => ckptioSave(tf, model, ckpt, step++, arena),
      b: () => awaited(() => model.save(fsPromisesHandler(tf, fsFile), { includeOptimizer: true })),
      c: () => awaited(() => model.save(ioHandler(ioFile), { includeOptimizer: true })),
    };
    let step = 0;
    const samples: Record<string, Sample[]> = { a: [], b: [], c: [] };
    for (let r = -1; r < reps; r++) {
      for (const [k, run] of Object.entries(paths)) {
        const s = await run();
        if (r >= 0) samples[k]!.push(s);
      }
      if (backend === 'cpu' && r >= 0) {
        // the measurement's own floor: an empty window read the same way
        const c0 = (await settledMainThreadSched()).cpuMs;
        floor.push((await settledMainThreadSched()).cpuMs - c0);
      }
    }
    // Restore: loadLatest + restoreModelState into the live model vs tf.loadLayersModel of the ioHandler file.
    const restore: Record<string, Sample[]> = { ckptio: [], loadLayersModel: [] };
    for (let r = -1; r < reps; r++) {
      const a = await awaited(async () => restoreModelState(model, undefined, (await ckpt.loadLatest())!, { tf }));
      let loaded: tfType.LayersModel | null = null;
      const b = await awaited(async () => {
        loaded = await tf.loadLayersModel(ioHandler(ioFile));
      });
      (loaded as tfType.LayersModel | null)?.dispose();
      if (r >= 0) {
        restore.ckptio!.push(a);
        restore.loadLayersModel!.push(b);
      }
    }
    await ckpt.close();
    model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
    for (const f of [fsFile + '.weights.bin', fsFile + '.model.json', ioFile]) fs.rmSync(f, { force: true });

    const a = stats(samples.a!),
      b = stats(samples.b!),
      c = stats(samples.c!);
    const label = `${(bytes / MiB).toFixed(0)} MiB (${nTensors} tensors)`;
    const w = worst(samples.a!);
    const memcpy = await memcpyMs(bytes, reps);
    anchors.push(
      `${backend}: the worst ckptio stall (${w.stallMs.toFixed(2)} ms) was ${w.stallCpuMs.toFixed(2)} ms on a CPU and ${w.stallWaitMs.toFixed(2)} ms runnable but waiting for a core; synchronous call median ${a.callMs.median.toFixed(2)} ms; main-thread ms as benches/tfjs.ts counts them (call + wasm heap copies + completions) ${fmt(a.mainMs)}; a warm memcpy of the same ${(bytes / MiB).toFixed(0)} MiB takes ${memcpy.toFixed(2)} ms in this run.`,
    );
    const ratio = (x: ReturnType<typeof stats>) => `${(x.stallMs.median / a.stallMs.median).toFixed(0)}x, ${(x.cpuMs.median / a.cpuMs.median).toFixed(1)}x`;
    ctx.rows.push(
      `| ${label} | ${backend} | ckptio modelState(model) + Checkpointer.save | ${fmt(a.stallMs)} | ${fmt(a.cpuMs)} | ${a.doneMs.median.toFixed(1)} | |`,
    );
    ctx.rows.push(
      `| ${label} | ${backend} | model.save(tf.io.withSaveHandler(fs.promises writes), { includeOptimizer: true }) | ${fmt(b.stallMs)} | ${fmt(b.cpuMs)} | ${b.doneMs.median.toFixed(1)} (written, not durable) | ${ratio(b)} |`,
    );
    ctx.rows.push(
      `| ${label} | ${backend} | model.save(ioHandler(p), { includeOptimizer: true }) | ${fmt(c.stallMs)} | ${fmt(c.cpuMs)} | ${c.doneMs.median.toFixed(1)} | ${ratio(c)} |`,
    );
    const ra = stats(restore.ckptio!),
      rb = stats(restore.loadLayersModel!);
    restoreRows.push(
      `| ${label} | ${backend} | ${fmt(ra.doneMs, 1)} | ${fmt(ra.cpuMs, 1)} | ${fmt(rb.doneMs, 1)} | ${fmt(rb.cpuMs, 1)} | ${(rb.doneMs.median / ra.doneMs.median).toFixed(2)}x |`,
    );
    ctx.results[`layers:${mib}MiB:${backend}`] = {
      bytes,
      tensors: nTensors,
      ckptio: { ...a, worst: w },
      warmMemcpyMs: memcpy,
      modelSaveFsPromises: { stallMs: b.stallMs, cpuMs: b.cpuMs, doneMs: b.doneMs },
      modelSaveIoHandler: { stallMs: c.stallMs, cpuMs: c.cpuMs, doneMs: c.doneMs },
      stallRatio: { fsPromises: b.stallMs.median / a.stallMs.median, ioHandler: c.stallMs.median / a.stallMs.median },
      cpuRatio: { fsPromises: b.cpuMs.median / a.cpuMs.median, ioHandler: c.cpuMs.median / a.cpuMs.median },
      restore: { ckptio: { ms: ra.doneMs, cpuMs: ra.cpuMs }, loadLayersModel: { ms: rb.doneMs, cpuMs: rb.cpuMs }, ratio: rb.doneMs.median / ra.doneMs.median },
    };

    // Many layers: 100 dense layers of width 32 (~600 tensors with Adam), a per-tensor cost figure.
    const many = await adamModel(tf, 32, 100);
    const manyDir = path.join(ctx.workDir, `layers-many-${backend}`);
    const manyCkpt = new Checkpointer({ dir: manyDir, keepLast: 1, onWarning: () => {} });
    const manyArena = new StagingArena();
    const manySamples: Sample[] = [];
    const manyReps = ctx.quick ? 3 : 10;
    for (let r = -1; r < manyReps; r++) {
      const s = await ckptioSave(tf, many, manyCkpt, r + 1, manyArena);
      if (r >= 0) manySamples.push(s);
    }
    const manyTensors = (await manyCkpt.loadLatest())!.tensors;
    const nMany = Object.keys(manyTensors).length;
    const manyBytes = Object.values(manyTensors).reduce((n, t) => n + t.data.byteLength, 0);
    await manyCkpt.close();
    many.dispose();
    fs.rmSync(manyDir, { recursive: true, force: true });
    const m = stats(manySamples);
    manyRows.push(
      `| 100 dense layers of 32 units, ${(manyBytes / MiB).toFixed(2)} MiB (${nMany} tensors) | ${backend} | ${fmt(m.stallMs)} | ${fmt(m.callMs)} | ${fmt(m.mainMs)} | ${fmt(m.cpuMs)} | ${((m.stallMs.median / nMany) * 1000).toFixed(1)} | ${m.doneMs.median.toFixed(1)} |`,
    );
    ctx.results[`layers:many:${backend}`] = { bytes: manyBytes, tensors: nMany, ...m, stallUsPerTensor: (m.stallMs.median / nMany) * 1000 };
  }
  const fl = stat(floor);
  ctx.results['layers:cpuFloorMs'] = fl;
  ctx.rows.push(
    '',
    ...anchors.map((l) => `- ${l}`),
    '',
    `Stall = wall time from the call until the caller's \`await\` returns: for ckptio, \`await ckpt.save(step, { tensors: modelState(model) })\` (the write continues on the writer thread; on wasm the heap copy continues in ≤ 1 ms turns after it); for model.save, the whole awaited save (tfjs gathers every weight and optimizer weight into one ArrayBuffer on the main thread first). Main-thread CPU = the main thread's own CPU time from the call until \`durable\` settles (model.save: until it resolves), from /proc/self/task/<pid>/schedstat read after a 1 ms sleep at both ends (the kernel only adds a running thread's time at a switch or tick); it counts every callback and any garbage collection in the window. An empty window read the same way measures ${fmt(fl)} ms (the floor, not subtracted). The fs.promises handler writes model.json + weights.bin with no fsync and no rename, so its "ms to durable" is only "written".`,
    '',
  );
  ctx.rows.push(
    '### Restore: Checkpointer.loadLatest + restoreModelState vs tf.loadLayersModel(ioHandler(p))',
    '',
    '| state | backend | ckptio ms (median, min..max) | ckptio main-thread CPU ms | tf.loadLayersModel ms | tf.loadLayersModel CPU ms | loadLayersModel / ckptio |',
    '|---|---|---|---|---|---|---|',
    ...restoreRows,
    '',
    'ckptio restores in place into the live model (file read + checksum verify, then assign); tf.loadLayersModel builds a new model from the topology (initializing every weight), then sets weights and the optimizer weights (includeOptimizer). Files are in the page cache (just written).',
    '',
  );
  ctx.rows.push(
    '### Many layers: per-save cost that scales with tensors, not bytes',
    '',
    '| model | backend | stall ms (median, min..max) | synchronous call ms | main-thread ms as benches/tfjs.ts counts | main-thread CPU ms → durable | stall µs per tensor | ms to durable |',
    '|---|---|---|---|---|---|---|---|',
    ...manyRows,
    '',
  );
}
