/** Figure 6 of the benchmark suite: opt-in lz4 compression on real trained MNIST weights + Adam state and on
 * random fp32. Ratio, compression throughput on the libuv pool, durable save and load with vs without
 * (interleaved), and the main thread's CPU time per save from the kernel's per-thread accounting (so the lz4
 * promise callbacks count as well as the addon's). */
import '../src/platform/node';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCheckpoint, TensorEntry, writeCheckpoint, WriteResult } from '../src/format/file';
import { compressTensors } from '../src/format/compression';
import { TensorList } from '../src/format/tensor-list';
import { train } from '../src/train/trainer';
import { BenchContext, MiB, stat } from './common';

/** Trains the demo MLP (wider than the default, so the state is not tiny) and returns its last checkpoint:
 * weights, biases and Adam's first and second moments. */
async function trainedState(ctx: BenchContext): Promise<{ tensors: Record<string, TensorEntry>; label: string }> {
  const dir = path.join(ctx.workDir, 'compression-train');
  const steps = ctx.quick ? 60 : 280;
  await train(
    {
      dir,
      steps,
      epochs: 2,
      batch: 64,
      layers: [1024, 512],
      lr: 2e-3,
      warmup: 50,
      startLr: 0,
      minLr: 1e-5,
      schedule: 'cosine',
      seed: 1,
      saveEvery: steps,
      keepLast: 1,
      resume: 'never',
      backend: 'wasm',
      evalEvery: 1e9,
    },
    () => {},
  );
  const file = fs.readdirSync(dir).find((f) => f.endsWith('.safetensors'))!;
  const r = await readCheckpoint(path.join(dir, file));
  const bytes = Object.values(r.tensors).reduce((n, t) => n + t.data.byteLength, 0);
  return { tensors: r.tensors, label: `MNIST MLP 784-1024-512-10 after ${steps} Adam steps, weights + m + v (${(bytes / MiB).toFixed(1)} MiB)` };
}

function randomState(mib: number): Record<string, TensorEntry> {
  const out: Record<string, TensorEntry> = {};
  const perTensor = (4 * MiB) / 4;
  for (let i = 0; i * perTensor * 4 < mib * MiB; i++) {
    const data = new Float32Array(perTensor);
    for (let j = 0; j < data.length; j++) data[j] = (Math.random() * 2 - 1) * 0.05;
    out[`w${i}`] = { dtype: 'float32', shape: [data.length], data };
  }
  return out;
}

/** CPU time of the main thread so far, ms: the first field of /proc/self/task/<pid>/schedstat (ns on CPU). */
function mainThreadCpuMs(): number {
  return Number(fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

/** Main-thread CPU ms and wall ms of one awaited operation. */
async function busy<T>(run: () => Promise<T>): Promise<{ value: T; activeMs: number; wallMs: number }> {
  const c0 = mainThreadCpuMs();
  const t0 = performance.now();
  const value = await run();
  const wallMs = performance.now() - t0;
  return { value, activeMs: mainThreadCpuMs() - c0, wallMs };
}

export async function compressionBench(ctx: BenchContext): Promise<void> {
  ctx.rows.push(
    "## Compression (opt-in `compression: 'lz4'`)",
    '',
    '| state | raw / stored | lz4 alone GB/s (thread pool) | durable save ms, none → lz4 (median) | save time lz4 / none | main-thread CPU ms per save, none → lz4 | load + verify GB/s, none → lz4 | pays? |',
    '|---|---|---|---|---|---|---|---|',
  );
  const trained = await trainedState(ctx);
  const sets: [string, string, Record<string, TensorEntry>][] = [['trained', trained.label, trained.tensors]];
  for (const mib of ctx.quick ? [16] : [16, 128]) sets.push([`random-${mib}MiB`, `random fp32 (uniform ±0.05), ${mib} MiB`, randomState(mib)]);
  for (const [key, label, tensors] of sets) {
    const rawBytes = Object.values(tensors).reduce((n, t) => n + t.data.byteLength, 0);
    const file = path.join(ctx.workDir, `compression-${key}.safetensors`);
    const fileLz4 = path.join(ctx.workDir, `compression-${key}.lz4.safetensors`);
    const times = { none: [] as number[], lz4: [] as number[] };
    const active = { none: [] as number[], lz4: [] as number[] };
    const load = { none: [] as number[], lz4: [] as number[] };
    const alone: number[] = [];
    let report: WriteResult['compression'];
    // Saves first, then loads: a load leaves large buffers for the collector, which would otherwise run inside
    // the next save's window and be counted as that save's main-thread time.
    for (let r = -1; r < ctx.reps; r++) {
      // interleaved: none, lz4, none, lz4, ...; round -1 warms up, not counted
      for (const mode of ['none', 'lz4'] as const) {
        const w = await busy(() => writeCheckpoint(mode === 'none' ? file : fileLz4, tensors, { compression: mode }));
        if (r < 0) continue;
        times[mode].push(w.wallMs);
        active[mode].push(w.activeMs);
        if (mode === 'lz4') report = w.value.compression;
      }
      if (r < 0) continue;
      const t0 = performance.now();
      await compressTensors(TensorList.fromRecord(tensors), false);
      alone.push(rawBytes / 1e9 / ((performance.now() - t0) / 1000));
    }
    for (let r = -1; r < ctx.reps; r++) {
      // round -1 reads the O_DIRECT-written files into the page cache
      for (const mode of ['none', 'lz4'] as const) {
        const l = await busy(() => readCheckpoint(mode === 'none' ? file : fileLz4));
        if (r >= 0) load[mode].push(rawBytes / 1e9 / (l.wallMs / 1000));
      }
    }
    const ratio = report!.rawBytes / report!.storedBytes;
    const saveRatio = stat(times.lz4).median / stat(times.none).median;
    const saved = `${((1 - 1 / ratio) * 100).toFixed(1)}% less disk`;
    const pays =
      ratio < 1.02
        ? `no: nothing compresses (${ratio.toFixed(3)}x); lz4 only spends CPU`
        : saveRatio < 0.97
          ? `yes: ${saved} and ${((1 - saveRatio) * 100).toFixed(0)}% faster saves`
          : `not for speed (saves ${saveRatio.toFixed(2)}x as long); ${saved}`;
    ctx.rows.push(
      `| ${label} | ${ratio.toFixed(3)}x (${report!.compressedTensors} tensors compressed, ${report!.rawTensors} stored raw) | ${stat(alone).median.toFixed(2)} | ${stat(times.none).median.toFixed(1)} → ${stat(times.lz4).median.toFixed(1)} | ${saveRatio.toFixed(2)}x | ${stat(active.none).median.toFixed(2)} → ${stat(active.lz4).median.toFixed(2)} | ${stat(load.none).median.toFixed(2)} → ${stat(load.lz4).median.toFixed(2)} | ${pays} |`,
    );
    ctx.results[`compression:${key}`] = {
      label,
      rawBytes,
      storedBytes: report!.storedBytes,
      ratio,
      lz4AloneGBps: stat(alone),
      saveMs: { none: stat(times.none), lz4: stat(times.lz4) },
      saveRatio,
      mainThreadMs: { none: stat(active.none), lz4: stat(active.lz4) },
      loadGBps: { none: stat(load.none), lz4: stat(load.lz4) },
      pays,
    };
    fs.rmSync(file, { force: true });
    fs.rmSync(fileLz4, { force: true });
  }
  ctx.rows.push(
    '',
    'lz4 is lz4-napi (lz4_flex, prebuilt for npm) on the libuv thread pool, 4 MiB chunks so both cores work; the writer then writes the compressed chunks with the same commit protocol and checksums. Main-thread CPU ms here is the main thread’s own CPU time during the save as the kernel counts it (/proc/self/task/<pid>/schedstat): every callback the save causes, the lz4 promises included, and any garbage collection that falls in the window; it is not the same measure as the stall table above. Load GB/s counts the uncompressed bytes delivered. A tensor whose chunks do not shrink is stored raw.',
    '',
  );
}
