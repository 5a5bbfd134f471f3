/** Many tensors, same speed (issue 18): the same bytes in 100 / 1,000 / 10,000 / 30,000 tfjs tensors (cpu backend),
 * saved through snapshot() + Checkpointer, interleaved. Per save: the main thread's own CPU time from the snapshot()
 * call until `durable` settles (schedstat, read after a 1 ms sleep at both ends, so it includes every continuation
 * and completion the save causes); durable GB/s over that window; then loadLatest() of the directory holding one
 * such checkpoint. And the per-tensor cost of modelState on a LayersModel of many small layers with Adam. */
import '../src/platform/node';
import type * as tfType from '@tensorflow/tfjs';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { loadTf } from '../src/tfjs/backend';
import { modelState } from '../src/tfjs/model-state';
import { snapshot } from '../src/tfjs/snapshot';
import { BenchContext, MiB, settledMainThreadSched, stat } from './common';
import * as fs from 'node:fs';
import * as path from 'node:path';

type Tf = typeof tfType;

export const TENSORS_HEADING = '## Many tensors: the same bytes in 100 to 30,000 tensors (cpu backend)';

interface Config {
  count: number;
  vars: Record<string, tfType.Variable>;
  ckpt: Checkpointer;
  dir: string;
  cpuMs: number[];
  gbps: number[];
  loadMs: number[];
}

export async function tensorsBench(ctx: BenchContext): Promise<void> {
  const { tf } = await loadTf('cpu');
  const totalBytes = (ctx.quick ? 8 : 40) * MiB;
  const counts = ctx.quick ? [100, 10_000] : [100, 1_000, 10_000, 30_000];
  const reps = ctx.quick ? 3 : Math.max(ctx.reps, 7);
  const configs: Config[] = [];
  for (const count of counts) {
    const per = Math.floor(totalBytes / count / 4);
    const vars: Record<string, tfType.Variable> = {};
    for (let i = 0; i < count; i++) {
      const init = tf.randomUniform([per], -1, 1, 'float32', i);
      vars[`model/layer_${i}/kernel`] = tf.variable(init);
      init.dispose();
    }
    const dir = fs.mkdtempSync(path.join(ctx.workDir, `tensors-${count}-`));
    configs.push({ count, vars, dir, ckpt: new Checkpointer({ dir, keepLast: 1 }), cpuMs: [], gbps: [], loadMs: [] });
  }
  for (let r = -1; r < reps; r++) {
    // interleaved by count; round -1 warms up and is not counted
    for (const c of configs) {
      const s0 = await settledMainThreadSched();
      const t0 = performance.now();
      const h = await c.ckpt.save(r + 1, { tensors: snapshot(tf, c.vars) });
      const d = await h.durable;
      const t1 = performance.now();
      const s1 = await settledMainThreadSched();
      if (r < 0) continue;
      c.cpuMs.push(s1.cpuMs - s0.cpuMs);
      c.gbps.push(d!.bytes / 1e9 / ((t1 - t0) / 1000));
    }
    for (const c of configs) {
      const reader = new Checkpointer({ dir: c.dir, lock: false });
      const t0 = performance.now();
      const loaded = await reader.loadLatest();
      const ms = performance.now() - t0;
      if (Object.keys(loaded!.tensors).length !== c.count)
        throw new Error(`loadLatest returned ${Object.keys(loaded!.tensors).length} tensors, not ${c.count}`);
      if (r >= 0) c.loadMs.push(ms);
    }
  }
  const floor: number[] = [];
  for (let r = 0; r < reps; r++) {
    const s0 = await settledMainThreadSched();
    const s1 = await settledMainThreadSched();
    floor.push(s1.cpuMs - s0.cpuMs);
  }
  const ms = await modelStateCost(tf, ctx.workDir, ctx.quick ? 40 : 100, reps);
  for (const c of configs) {
    await c.ckpt.close();
    for (const v of Object.values(c.vars)) v.dispose();
    fs.rmSync(c.dir, { recursive: true, force: true });
  }

  const fmt = (xs: number[], digits = 2) => {
    const s = stat(xs);
    return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}..${s.max.toFixed(digits)})`;
  };
  const base = configs[0]!;
  const rows = ctx.rows;
  rows.push(TENSORS_HEADING, '');
  rows.push(
    `${(totalBytes / MiB).toFixed(0)} MiB of fp32 state as N tf.variables on the cpu backend; \`snapshot(tf, vars)\` + \`Checkpointer.save\` (keepLast 1), ${reps} interleaved repetitions, median (min..max).`,
    '',
  );
  rows.push('| tensors | bytes each | main-thread CPU per save, ms | durable GB/s | vs 100 tensors | loadLatest ms | vs 100 tensors |');
  rows.push('|---|---|---|---|---|---|---|');
  for (const c of configs) {
    const tput = stat(c.gbps).median / stat(base.gbps).median;
    const load = stat(c.loadMs).median / stat(base.loadMs).median;
    rows.push(
      `| ${c.count.toLocaleString('en-US')} | ${(totalBytes / c.count / 1024).toFixed(1)} KiB | ${fmt(c.cpuMs)} | ${fmt(c.gbps)} | ${tput.toFixed(2)}x | ${fmt(c.loadMs, 1)} | ${load.toFixed(2)}x |`,
    );
    ctx.results[`tensors:${c.count}`] = { cpuMs: stat(c.cpuMs), gbps: stat(c.gbps), loadMs: stat(c.loadMs), throughputVs100: tput, loadVs100: load };
  }
  rows.push('', `An empty window read the same way costs ${fmt(floor)} ms of main-thread CPU (the floor, not subtracted).`, '');
  rows.push(
    `modelState on a tf.sequential of ${ms.layers} dense(16) layers with Adam (${ms.tensors} tensors): ${ms.collectUs.toFixed(2)} µs per tensor for modelState() itself, ${ms.saveUs.toFixed(2)} µs per tensor of main-thread CPU for the whole save (modelState + save until durable).`,
    '',
  );
  const at10k = configs.find((c) => c.count === 10_000);
  if (at10k) {
    const cpu = stat(at10k.cpuMs).median;
    const tput = stat(at10k.gbps).median / stat(base.gbps).median;
    const load = stat(at10k.loadMs).median / stat(base.loadMs).median;
    rows.push('| target (issue 18) | figure | met? |', '|---|---|---|');
    rows.push(`| ≤ 2 ms of main-thread CPU per save at 10,000 tensors | ${cpu.toFixed(2)} ms | ${cpu <= 2 ? 'met' : 'NOT met'} |`);
    rows.push(`| durable throughput at 10,000 tensors ≥ 0.8x of the same bytes in 100 | ${tput.toFixed(2)}x | ${tput >= 0.8 ? 'met' : 'NOT met'} |`);
    rows.push(`| loadLatest at 10,000 tensors ≤ 2x of 100 | ${load.toFixed(2)}x | ${load <= 2 ? 'met' : 'NOT met'} |`, '');
    ctx.results['tensors:targets'] = { cpuMs10k: cpu, throughputVs100: tput, loadVs100: load };
  }
}

/** modelState() alone, and modelState + save until durable, per tensor, on a model of many small layers. */
async function modelStateCost(
  tf: Tf,
  workDir: string,
  layers: number,
  reps: number,
): Promise<{ layers: number; tensors: number; collectUs: number; saveUs: number }> {
  const model = tf.sequential();
  for (let i = 0; i < layers; i++) model.add(tf.layers.dense({ units: 16, inputShape: i === 0 ? [16] : undefined }));
  model.compile({ optimizer: tf.train.adam(1e-3), loss: 'meanSquaredError' });
  const x = tf.ones([2, 16]);
  const y = tf.zeros([2, 16]);
  await model.trainOnBatch(x, y);
  const dir = fs.mkdtempSync(path.join(workDir, 'model-state-'));
  const ckpt = new Checkpointer({ dir, keepLast: 1 });
  const collect: number[] = [];
  const save: number[] = [];
  let last = '';
  for (let r = -1; r < reps; r++) {
    const t0 = performance.now();
    const source = modelState(model);
    const t1 = performance.now();
    source.release();
    const s0 = await settledMainThreadSched();
    const h = await ckpt.save(r + 1, { tensors: modelState(model) });
    const d = await h.durable;
    const s1 = await settledMainThreadSched();
    last = d!.path;
    if (r < 0) continue;
    collect.push(t1 - t0);
    save.push(s1.cpuMs - s0.cpuMs);
  }
  const tensors = Object.keys((await ckpt.load(last)).tensors).length;
  await ckpt.close();
  fs.rmSync(dir, { recursive: true, force: true });
  x.dispose();
  y.dispose();
  model.dispose();
  return { layers, tensors, collectUs: (stat(collect).median * 1000) / tensors, saveUs: (stat(save).median * 1000) / tensors };
}
