/** Figures 1 (tfjs paths) and 3 (step-time overhead) of the benchmark suite: main-thread time per save of
 * tfjs variables through ckptio's snapshot on the wasm and cpu backends vs `model.save` through
 * `tf.io.withSaveHandler` + `fs.writeFileSync`, and the step time of a synthetic loop and of the demo
 * trainer with saves every 1, 10 and 100 steps vs without. */
import '../src/platform/node';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tfType from '@tensorflow/tfjs';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { testing } from '../src/binding/native';
import { loadTf, BackendName } from '../src/tfjs/backend';
import { snapshot, StagingArena } from '../src/tfjs/snapshot';
import { train, TrainEvent } from '../src/train/trainer';
import { BenchContext, MiB, stat, Stat } from './common';

type Tf = typeof tfType;

/** A dense model whose weights total about `bytes` (square layers of width d). */
function denseModel(tf: Tf, bytes: number): tfType.LayersModel {
  const d = bytes >= 128 * MiB ? 2048 : 1024;
  const layers = Math.max(1, Math.round(bytes / 4 / (d * d + d)));
  const model = tf.sequential();
  for (let i = 0; i < layers; i++)
    model.add(tf.layers.dense({ units: d, inputShape: i === 0 ? [d] : undefined, kernelInitializer: 'zeros', biasInitializer: 'ones' }));
  return model;
}

interface Stall {
  totalMs: number;
  longestMs: number;
}

/** One ckptio save of the model's variables: every main-thread stretch it causes, timed. */
async function ckptioSave(tf: Tf, ckpt: Checkpointer, vars: Record<string, tfType.Tensor>, step: number, arena: StagingArena): Promise<Stall> {
  testing().writerStats(true);
  let copy = { totalMs: 0, longestMs: 0 };
  const t0 = performance.now();
  const source = snapshot(tf, vars, { arena, onCopyStats: (s) => (copy = s) });
  const pending = ckpt.save(step, { tensors: source });
  const syncMs = performance.now() - t0;
  const handle = await pending;
  await handle.durable;
  const done = testing().writerStats(true);
  return { totalMs: syncMs + copy.totalMs + done.completionMsTotal, longestMs: Math.max(syncMs, copy.longestMs, done.completionMsMax) };
}

/** What a tfjs user without tfjs-node does: model.save through a save handler that writes synchronously. */
async function modelSave(tf: Tf, model: tfType.LayersModel, file: string): Promise<Stall> {
  const t0 = performance.now();
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = artifacts.weightData as ArrayBuffer;
      fs.writeFileSync(file + '.bin', Buffer.from(weights));
      fs.writeFileSync(file + '.json', JSON.stringify({ modelTopology: artifacts.modelTopology, weightSpecs: artifacts.weightSpecs }));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength } };
    }),
  );
  const ms = performance.now() - t0; // all of it runs on the main thread: the weights are read and written synchronously
  return { totalMs: ms, longestMs: ms };
}

export async function memcpyMs(bytes: number, reps: number): Promise<number> {
  const src = new Uint8Array(bytes).fill(1);
  const dst = new Uint8Array(bytes).fill(0); // warm pages
  const xs: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    dst.set(src);
    xs.push(performance.now() - t0);
  }
  return stat(xs).median;
}

export async function tfjsStall(ctx: BenchContext): Promise<void> {
  const sizes = ctx.quick ? [16] : [16, 128];
  ctx.rows.push(
    '## Main-thread stall per save on the tfjs paths',
    '',
    '| state | backend | path | main-thread ms total (median, min..max) | longest stretch ms (median, max) | model.save / ckptio (total) |',
    '|---|---|---|---|---|---|',
  );
  for (const backend of ['wasm', 'cpu'] as BackendName[]) {
    const { tf } = await loadTf(backend);
    for (const mib of sizes) {
      const model = denseModel(tf, mib * MiB);
      const vars: Record<string, tfType.Tensor> = {};
      model.weights.forEach((w, i) => (vars[`w${i}.${w.name}`] = w.read()));
      const bytes = Object.values(vars).reduce((n, t) => n + t.size * 4, 0);
      const dir = path.join(ctx.workDir, `tfjs-${backend}-${mib}`);
      const ckpt = new Checkpointer({ dir, keepLast: 1, onWarning: () => {} });
      const arena = new StagingArena();
      const ck: Stall[] = [];
      const ms: Stall[] = [];
      await ckptioSave(tf, ckpt, vars, 0, arena); // warm the arena and the writer's staging
      for (let r = 0; r < ctx.reps; r++) {
        // interleaved
        ck.push(await ckptioSave(tf, ckpt, vars, r + 1, arena));
        ms.push(await modelSave(tf, model, path.join(ctx.workDir, 'model-save')));
      }
      await ckpt.close();
      const memcpy = await memcpyMs(bytes, ctx.reps);
      const tot = (xs: Stall[]) => stat(xs.map((x) => x.totalMs));
      const long = (xs: Stall[]) => stat(xs.map((x) => x.longestMs));
      const fmt = (s: Stat) => `${s.median.toFixed(2)} (${s.min.toFixed(2)}..${s.max.toFixed(2)})`;
      const ratio = tot(ms).median / tot(ck).median;
      const label = `${(bytes / MiB).toFixed(0)} MiB`;
      ctx.rows.push(
        `| ${label} | ${backend} | ckptio snapshot + Checkpointer.save | ${fmt(tot(ck))} | ${long(ck).median.toFixed(2)}, ${long(ck).max.toFixed(2)} | ${ratio.toFixed(1)}x |`,
      );
      ctx.rows.push(
        `| ${label} | ${backend} | model.save via tf.io.withSaveHandler + writeFileSync | ${fmt(tot(ms))} | ${long(ms).median.toFixed(2)}, ${long(ms).max.toFixed(2)} | |`,
      );
      ctx.results[`${mib}MiB:tfjs-${backend}`] = {
        bytes,
        ckptio: { total: tot(ck), longest: long(ck) },
        modelSave: { total: tot(ms), longest: long(ms) },
        warmMemcpyMs: memcpy,
      };
      model.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  ctx.rows.push(
    '',
    'ckptio main-thread ms = the time inside snapshot() and the synchronous part of Checkpointer.save(), plus the wasm heap copies (timed slice by slice; the loop yields once a turn has copied for 1 ms, in slices of at most 1 MiB), plus the completion callbacks the addon runs on the main thread (timed inside the addon). The promise glue between those pieces is not timed. model.save: the whole call, which reads every weight and writes the file synchronously.',
    '',
  );
}

/** A step of fixed compute: a tight loop calibrated to `ms`, standing in for work done elsewhere (a GPU). */
function calibrate(ms: number): (() => void) & { spins: number } {
  const spin = (n: number) => {
    let x = 0;
    for (let i = 0; i < n; i++) x = (x * 1664525 + 1013904223) % 4294967296;
    return x;
  };
  let n = 1e5;
  for (;;) {
    const t0 = performance.now();
    spin(n);
    const took = performance.now() - t0;
    if (took > 20) {
      n = Math.round((n * ms) / took);
      break;
    }
    n *= 2;
  }
  return Object.assign(() => void spin(n), { spins: n });
}

/** The same loop without saves in a process that never loads ckptio (benches/bare-loop-child.ts). */
function bareLoop(backend: BackendName, tensors: number, steps: number, spins: number, yields: boolean): { mean: number; p99: number } {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'bare-loop-child.js'), JSON.stringify({ backend, tensors, steps, spin: spins, yields })], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`bare loop failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { mean: number; p99: number };
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))]!;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function schedCell(s: Record<'none' | 'every', { cpu: number[]; queued: number[] }>): string {
  if (!s.none.cpu.length || !s.every.cpu.length) return 'n/a';
  return `${mean(s.none.cpu).toFixed(2)}, ${mean(s.none.queued).toFixed(2)} -> ${mean(s.every.cpu).toFixed(2)}, ${mean(s.every.queued).toFixed(2)}`;
}

/** The main thread's own CPU time and its time runnable but waiting for a core (/proc/thread-self/schedstat). */
function schedstat(): { runNs: number; waitNs: number } | null {
  try {
    const [run, wait] = fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
    return { runNs: run!, waitNs: wait! };
  } catch {
    return null;
  }
}

/** Minor page faults of the calling thread so far (/proc/thread-self/stat, field 10). */
function minorFaults(): number {
  const stat = fs.readFileSync('/proc/thread-self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}

async function syntheticRun(
  tf: Tf,
  vars: tfType.Variable[],
  alt: tfType.Tensor[][],
  steps: number,
  saveEvery: number | null,
  work: () => void,
  dir: string,
  stats?: { skipped: number; durableMs: number[]; waitedMs?: number[]; stallMs?: number[]; cpuMs?: number[]; queuedMs?: number[]; faults?: number[] },
  yields = true,
): Promise<number[]> {
  const ckpt = new Checkpointer({ dir, keepLast: 2, onWarning: () => {} });
  const times: number[] = [];
  const sched0 = schedstat();
  const faults0 = minorFaults();
  for (let s = 1; s <= steps; s++) {
    const t0 = performance.now();
    work();
    // The update swaps each variable's buffer (O(1)), as an optimizer step on an accelerator would; the synchronous
    // loop instead computes new state each step (new buffers, as optimizer.minimize makes on cpu and wasm).
    if (yields) vars.forEach((v, i) => v.assign(alt[i]![s % 2]!));
    else tf.tidy(() => vars.forEach((v, i) => v.assign(v.add(alt[i]![s % 2]!))));
    if (saveEvery && s % saveEvery === 0) {
      const named: Record<string, tfType.Tensor> = {};
      vars.forEach((v, i) => (named[`v${i}`] = v));
      const h = await ckpt.save(s, { tensors: snapshot(tf, named) });
      stats?.waitedMs?.push(h.waitedMs);
      stats?.stallMs?.push(h.stallMs);
      if (stats)
        void h.durable.then(
          (d) => {
            if (d) stats.durableMs.push(d.msToDurable);
          },
          () => {},
        );
    }
    if (yields) await new Promise<void>((resolve) => setImmediate(resolve)); // a loop that yields (data loading, logging)
    times.push(performance.now() - t0);
  }
  stats?.faults?.push((minorFaults() - faults0) / steps);
  if (stats) stats.skipped = ckpt.stats.skipped;
  const sched1 = schedstat();
  if (stats?.cpuMs && sched0 && sched1) {
    stats.cpuMs.push((sched1.runNs - sched0.runNs) / 1e6 / steps);
    stats.queuedMs!.push((sched1.waitNs - sched0.waitNs) / 1e6 / steps);
  }
  await ckpt.close();
  return times.slice(1);
}

export async function stepOverhead(ctx: BenchContext): Promise<void> {
  const stepMs = 20;
  const mib = ctx.quick ? 16 : 64;
  const steps = ctx.quick ? 60 : 300;
  const configs: [string, number | null][] = [
    ['no saves', null],
    ['every 100', 100],
    ['every 10', 10],
    ['every 1', 1],
  ];
  ctx.rows.push(
    `## Step-time overhead`,
    '',
    `Synthetic loop: ${stepMs} ms of fixed compute per step, ${mib} MiB of fp32 state swapped every step (an accelerator's regime: short steps, large state), ${steps} steps per configuration, configurations interleaved, twice.`,
    '',
    '| loop | backend | saves | mean step ms | p99 step ms | mean ratio | p99 ratio |',
    '|---|---|---|---|---|---|---|',
  );
  const work = calibrate(stepMs);
  for (const backend of ['wasm', 'cpu'] as BackendName[]) {
    const { tf } = await loadTf(backend);
    const per = (4 * MiB) / 4;
    const n = (mib * MiB) / 4 / per;
    const vars = Array.from({ length: n }, (_, i) => tf.variable(tf.fill([per], i), true, `syn${backend}${i}`));
    const alt = vars.map((_, i) => [tf.fill([per], i + 0.5), tf.fill([per], i + 0.25)]);
    const times = new Map<string, number[]>();
    for (let round = 0; round < 2; round++) {
      for (const [name, every] of configs) {
        // A fresh directory per run: a run starting at step 1 where another left step 300 would keep its own
        // saves below the newest (retention never removes a save in its own job) and prune each at the next.
        const runDir = path.join(ctx.workDir, `syn-${backend}-${round}-${name.replace(/\s+/g, '')}`);
        const t = await syntheticRun(tf, vars, alt, steps, every, work, runDir);
        fs.rmSync(runDir, { recursive: true, force: true });
        times.set(name, [...(times.get(name) ?? []), ...t]);
      }
    }
    const base = times.get('no saves')!;
    for (const [name] of configs) {
      const t = times.get(name)!;
      ctx.rows.push(
        `| synthetic | ${backend} | ${name} | ${mean(t).toFixed(2)} | ${p99(t).toFixed(2)} | ${(mean(t) / mean(base)).toFixed(3)}x | ${(p99(t) / p99(base)).toFixed(3)}x |`,
      );
      ctx.results[`steps:synthetic-${backend}:${name}`] = { meanMs: mean(t), p99Ms: p99(t), meanRatio: mean(t) / mean(base), p99Ratio: p99(t) / p99(base) };
    }
    vars.forEach((v) => v.dispose());
    alt.flat().forEach((t) => t.dispose());
  }
  // The demo trainer (MNIST MLP, wasm), in process, step times from its own step events.
  const trainerSteps = ctx.quick ? 80 : 400;
  const trainerTimes = new Map<string, number[]>();
  for (let round = 0; round < 2; round++) {
    for (const [name, every] of configs) {
      const stamps: number[] = [];
      const dir = path.join(ctx.workDir, `trainer-${round}-${name.replace(/ /g, '')}`);
      await train(
        {
          dir,
          steps: trainerSteps,
          epochs: 6,
          batch: 64,
          layers: [256, 128],
          lr: 2e-3,
          warmup: 100,
          startLr: 0,
          minLr: 1e-5,
          schedule: 'cosine',
          seed: 1,
          saveEvery: every ?? 1e9,
          keepLast: 2,
          resume: 'never',
          backend: 'wasm',
          evalEvery: 1e9,
        },
        (e: TrainEvent) => {
          if (e.event === 'step') stamps.push(performance.now());
        },
      );
      const t = stamps
        .slice(1)
        .map((s, i) => s - stamps[i]!)
        .slice(1, -1); // the last step's final save is not a step cost
      trainerTimes.set(name, [...(trainerTimes.get(name) ?? []), ...t]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const base = trainerTimes.get('no saves')!;
  for (const [name] of configs) {
    const t = trainerTimes.get(name)!;
    ctx.rows.push(
      `| demo trainer (MNIST MLP 784-256-128-10, 0.9 MiB state + Adam) | wasm | ${name} | ${mean(t).toFixed(2)} | ${p99(t).toFixed(2)} | ${(mean(t) / mean(base)).toFixed(3)}x | ${(p99(t) / p99(base)).toFixed(3)}x |`,
    );
    ctx.results[`steps:trainer:${name}`] = { meanMs: mean(t), p99Ms: p99(t), meanRatio: mean(t) / mean(base), p99Ratio: p99(t) / p99(base) };
  }
  ctx.rows.push('');
}

/** The every-step regime (issue 15): a save at every step of state sized so its bytes per step are 0.25x and 0.5x
 * of the disk's measured raw O_DIRECT bandwidth, vs no saves, interleaved. Goal: mean <= 1.02x, p99 <= 1.10x. */
async function everyStepRegime(ctx: BenchContext, work: (() => void) & { spins: number }, stepMs: number): Promise<void> {
  const probe = (ctx.quick ? 64 : 256) * MiB;
  const bw: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    await testing().rawWrite(path.join(ctx.workDir, 'every-step-bw'), probe, true);
    bw.push(probe / ((performance.now() - t0) / 1000));
  }
  fs.rmSync(path.join(ctx.workDir, 'every-step-bw'), { force: true });
  const bandwidth = stat(bw).median; // bytes/s
  const steps = ctx.quick ? 40 : 200;
  const fractions = [0.25, 0.5];
  ctx.rows.push(
    `## Saving at every step`,
    '',
    `Synthetic loop (${stepMs} ms steps; disk's raw O_DIRECT bandwidth measured here: ${(bandwidth / 1e9).toFixed(2)} GB/s; state sized to 0.25x and 0.5x of what the disk writes in one step; ${steps} steps per run, runs interleaved, twice). With one save in flight (the default maxInflight 1, onFull 'wait'), a save whose time to durable exceeds the step delays the next step (its snapshot is released earlier, once the writer has read its bytes). Default options (no arena). Two loops: one that yields to the event loop every step and swaps each variable's buffer (as an accelerator's step would), and a synchronous one (no yield; the save's await is its only one) that computes new state into new buffers every step, as optimizer.minimize does on cpu and wasm. Minor faults are the training thread's (/proc/thread-self/stat); the last columns run the same loop without saves in a separate process that never loads ckptio.`,
    '',
    '| backend | loop | state | bytes per step / disk per step | mean step ms (no saves -> every step) | p99 step ms | mean ratio | p99 ratio | save to durable, median ms | save call, mean ms (waiting for room + the call itself) | main thread per step: on-CPU ms, runnable-but-waiting ms (no saves -> every step) | saves skipped | minor faults per step on the training thread (no saves -> every step) | mean / p99 step ms, no saves, in a process that never loads ckptio | goal (mean <= 1.02x, p99 <= 1.10x) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const backend of ['wasm', 'cpu'] as BackendName[]) {
    const { tf } = await loadTf(backend);
    for (const yields of [true, false])
      for (const f of fractions) {
        const bytes = f * bandwidth * (stepMs / 1000);
        const per = 1 << 18; // 1 MiB fp32 tensors
        const n = Math.max(1, Math.round(bytes / (4 * per)));
        const vars = Array.from({ length: n }, (_, i) => tf.variable(tf.fill([per], i), true, `every${backend}${f}${i}`));
        const alt = vars.map((_, i) => [tf.fill([per], i + 0.5), tf.fill([per], i + 0.25)]);
        const times = { none: [] as number[], every: [] as number[] };
        const durableMs: number[] = [];
        const waitedMs: number[] = [];
        const stallMs: number[] = [];
        const sched = { none: { cpu: [] as number[], queued: [] as number[] }, every: { cpu: [] as number[], queued: [] as number[] } };
        let skipped = 0;
        const faults = { none: [] as number[], every: [] as number[] };
        for (let round = 0; round < 2; round++) {
          for (const mode of ['none', 'every'] as const) {
            const runDir = path.join(ctx.workDir, `every-${backend}-${f}-${round}-${mode}`);
            const ckptStats = { skipped: 0, durableMs, waitedMs, stallMs, cpuMs: sched[mode].cpu, queuedMs: sched[mode].queued, faults: faults[mode] };
            const t = await syntheticRun(tf, vars, alt, steps, mode === 'every' ? 1 : null, work, runDir, ckptStats, yields);
            skipped += ckptStats.skipped;
            fs.rmSync(runDir, { recursive: true, force: true });
            times[mode].push(...t);
          }
        }
        const bare = bareLoop(backend, n, steps, work.spins, yields);
        const meanRatio = mean(times.every) / mean(times.none);
        const p99Ratio = p99(times.every) / p99(times.none);
        const met = meanRatio <= 1.02 && p99Ratio <= 1.1;
        const toDurable = durableMs.length ? stat(durableMs).median : NaN;
        const loop = yields ? 'yields each step, swaps buffers' : 'synchronous, new buffers each step';
        ctx.rows.push(
          `| ${backend} | ${loop} | ${n} x 1 MiB | ${((n * MiB) / ((bandwidth * stepMs) / 1000)).toFixed(2)}x | ${mean(times.none).toFixed(2)} -> ${mean(times.every).toFixed(2)} | ${p99(times.none).toFixed(2)} -> ${p99(times.every).toFixed(2)} | ${meanRatio.toFixed(3)}x | ${p99Ratio.toFixed(3)}x | ${toDurable.toFixed(1)} | ${mean(waitedMs).toFixed(2)} + ${mean(stallMs).toFixed(2)} | ${schedCell(sched)} | ${skipped} | ${mean(faults.none).toFixed(0)} -> ${mean(faults.every).toFixed(0)} | ${bare.mean.toFixed(2)} / ${bare.p99.toFixed(2)} | ${met ? 'met' : 'NOT met'} |`,
        );
        ctx.results[`everystep:${backend}:${yields ? 'yields' : 'sync'}:${f}`] = {
          faultsPerStep: { none: mean(faults.none), every: mean(faults.every) },
          bareProcess: bare,
          stateBytes: n * MiB,
          bandwidthBps: bandwidth,
          meanRatio,
          p99Ratio,
          msToDurable: toDurable,
          waitedMs: mean(waitedMs),
          stallMs: mean(stallMs),
          skipped,
          met,
        };
        vars.forEach((v) => v.dispose());
        alt.flat().forEach((t) => t.dispose());
      }
  }
  ctx.rows.push('');
}

/** Section `everystep` of npm run bench: the every-step regime (issue 15), apart from the step-time section so
 * either can be rerun alone. */
export async function everyStepBench(ctx: BenchContext): Promise<void> {
  await everyStepRegime(ctx, calibrate(20), 20);
}
