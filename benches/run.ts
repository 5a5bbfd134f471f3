/** npm run bench [-- --quick] [--out DIR] [--only SECTION,...]: side-by-side, interleaved measurements (A B A B ...)
 * reported as medians with min..max and as ratios within one run. Writes RESULTS.md and results.json.
 * --only runs the named sections (stall, load, tfjs, steps, memory, compression, layers, webgpu, tensors, everystep, defaults, remote, sharding, portable, browser) and splices them into
 * the RESULTS.md / results.json already in the output directory (same mode, quick or full): their blocks and
 * figures are replaced, the targets table is regenerated from the merged figures, and the header says which
 * sections were rerun on which machine and when. */
import '../test/testing-addon'; // first: the testing build (same code and flags, plus writerStats and rawWrite) is the addon
import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Bench } from 'tinybench';
import { readCheckpoint, writeCheckpoint } from '../src';
import { testing } from '../src/binding/native';
import { BenchContext, concat, MiB, stat, Stat, state } from './common';
import { compressionBench } from './compression';
import { layersBench } from './layers';
import { everyStepBench, stepOverhead, tfjsStall } from './tfjs';
import { defaultsBench } from './defaults';
import { remoteBench } from './remote';
import { shardingBench } from './sharding';
import { portableBench } from './portable';
import { browserBench } from './browser';
import { webgpuBench } from './webgpu';
import { tensorsBench } from './tensors';

const quick = process.argv.includes('--quick');
const outArg = process.argv.indexOf('--out');
const outDir = outArg > 0 ? path.resolve(process.argv[outArg + 1]!) : __dirname.replace(`${path.sep}dist${path.sep}`, path.sep);
const benchRoot = process.env.CKPTIO_BENCH_DIR ?? path.join(os.homedir(), '.ckptio-bench');
// mkdtemp makes only the last component: on a fresh machine ~/.ckptio-bench does not exist yet.
fs.mkdirSync(benchRoot, { recursive: true });
const workDir = fs.mkdtempSync(path.join(benchRoot, 'run-'));
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg > 0 ? new Set(process.argv[onlyArg + 1]!.split(',')) : null;
const sizes = quick ? [16] : [16, 128, 512, 1024];
const reps = quick ? 3 : 5;

/** Times a save: the synchronous part of the call plus every main-thread callback it causes is what the
 * caller's thread spends; for ckptio that is the call itself and the completion callback. */
async function measure(run: () => Promise<unknown> | unknown): Promise<{ syncMs: number; totalMs: number }> {
  const t0 = performance.now();
  const p = run();
  const syncMs = performance.now() - t0;
  await p;
  return { syncMs, totalMs: performance.now() - t0 };
}

const results: Record<string, unknown> = {};
/** Main-thread time a writer spends after its synchronous part (added by writers that can time it). */
let laterMainMs = 0;
const rows: string[] = [];

async function stallAndThroughput(): Promise<void> {
  rows.push(
    '## Main-thread stall per save and durable throughput',
    '',
    '| state | writer | main-thread ms (median, min..max) | durable GiB/s (median) | vs raw O_DIRECT | ckptio vs this |',
    '|---|---|---|---|---|---|',
  );
  for (const mib of sizes) {
    const tensors = state(mib * MiB);
    const bytes = mib * MiB;
    const file = path.join(workDir, 'ckpt.safetensors');
    const flat = concat(tensors);
    const writers: Record<string, () => Promise<unknown> | unknown> = {
      'ckptio writeCheckpoint (caller-owned buffers)': () => writeCheckpoint(file, tensors),
      'ckptio writeCheckpoint, checksum: false': () => writeCheckpoint(file + '.nock', tensors, { checksum: false }),
      'raw O_DIRECT 4 MiB blocks + fsync (disk limit)': () => testing().rawWrite(path.join(workDir, 'raw'), bytes, true),
      'raw buffered + fsync': () => testing().rawWrite(path.join(workDir, 'rawb'), bytes, false),
      'fs.promises writeFile + fdatasync + rename': async () => {
        const tmp = file + '.fsp';
        const fh = await fs.promises.open(tmp, 'w');
        const c0 = performance.now();
        const whole = concat(tensors); // main-thread work after the first await: counted explicitly
        laterMainMs += performance.now() - c0;
        await fh.writeFile(whole);
        await fh.datasync();
        await fh.close();
        await fs.promises.rename(tmp, file + '.fsp.final');
      },
      'writeFileSync of the concatenated buffer (tfjs model.save style, no fsync)': () => fs.writeFileSync(file + '.sync', flat),
    };
    const stall: Record<string, number[]> = {};
    const total: Record<string, number[]> = {};
    for (let r = 0; r < reps; r++) {
      for (const [name, run] of Object.entries(writers)) {
        // interleaved: A B C D E A B C D E ...
        laterMainMs = 0;
        testing().writerStats(true);
        const m = await measure(run);
        // The addon's completion callbacks run on the main thread; the addon times them.
        laterMainMs += testing().writerStats(true).completionMsTotal;
        (stall[name] ??= []).push(m.syncMs + laterMainMs);
        (total[name] ??= []).push(m.totalMs);
      }
    }
    const gibs = (name: string) => bytes / 2 ** 30 / (stat(total[name]!).median / 1000);
    const raw = gibs('raw O_DIRECT 4 MiB blocks + fsync (disk limit)');
    const ck = gibs('ckptio writeCheckpoint (caller-owned buffers)');
    for (const name of Object.keys(writers)) {
      const s = stat(stall[name]!);
      const g = gibs(name);
      const durable = !name.startsWith('writeFileSync');
      rows.push(
        `| ${mib} MiB | ${name} | ${s.median.toFixed(2)} (${s.min.toFixed(2)}..${s.max.toFixed(2)}) | ${durable ? g.toFixed(2) : 'n/a (not durable)'} | ${durable ? (g / raw).toFixed(2) + 'x' : 'n/a'} | ${durable ? (ck / g).toFixed(2) + 'x' : 'n/a'} |`,
      );
      results[`${mib}MiB:${name}`] = { stallMs: s, durableMs: stat(total[name]!), gibPerS: g };
    }
  }
  rows.push(
    '',
    'Checksum cost: ckptio with `checksum: false` (no XXH3 over the data, a plain safetensors file) is in the same table; the targets section gives the on/off throughput ratio.',
    '',
  );
  rows.push(
    'Main-thread ms: for ckptio and the raw writers, the synchronous part of the call (the work runs on the writer thread) plus the completion callback that settles the promise on the main thread (timed inside the addon). For fs.promises: the synchronous part plus the concatenation copy it does on the main thread; its I/O runs on the libuv pool. For writeFileSync (no fsync, so not durable): the whole write.',
    '',
  );
}

async function load(): Promise<void> {
  rows.push(
    '## Load: read + validate + checksum from page cache vs fs.readFile',
    '',
    '| state | ckptio readCheckpoint (verify) GB/s | fs.readFile GB/s | ratio |',
    '|---|---|---|---|',
  );
  for (const mib of sizes) {
    const file = path.join(workDir, `load-${mib}.safetensors`);
    await writeCheckpoint(file, state(mib * MiB));
    const bench = new Bench({ iterations: reps, time: 0, warmupIterations: 1 });
    bench.add('ckptio', async () => {
      await readCheckpoint(file);
    });
    bench.add('fs.readFile', async () => {
      await fs.promises.readFile(file);
    });
    await bench.run();
    const bytes = fs.statSync(file).size;
    const rate = (name: string) => {
      const task = bench.tasks.find((t) => t.name === name)!;
      const r = task.result as unknown as { latency?: { p50?: number }; p50?: number; mean?: number };
      const ms = r.latency?.p50 ?? r.p50 ?? r.mean ?? NaN;
      return bytes / 1e9 / (ms / 1000);
    };
    const a = rate('ckptio'),
      b = rate('fs.readFile');
    rows.push(`| ${mib} MiB | ${a.toFixed(2)} | ${b.toFixed(2)} | ${(a / b).toFixed(2)}x |`);
    results[`${mib}MiB:load`] = { ckptioGBps: a, readFileGBps: b };
    fs.rmSync(file);
  }
  rows.push('');
}

async function memory(): Promise<void> {
  const mibs = quick ? [16] : [128, 512];
  rows.push(
    '## Extra peak RSS during a save',
    '',
    '| state | path | saves in flight | extra peak RSS MiB | extra / checkpoint bytes |',
    '|---|---|---|---|---|',
  );
  for (const mib of mibs) {
    for (const mode of ['raw', 'raw-copy', 'tfjs-wasm']) {
      for (const inflight of [1, 2]) {
        const dir = fs.mkdtempSync(path.join(workDir, 'mem-'));
        const r = spawnSync(process.execPath, [path.join(__dirname, 'memory-child.js'), mode, String(mib), String(inflight), dir], { encoding: 'utf8' });
        fs.rmSync(dir, { recursive: true, force: true });
        if (r.status !== 0) throw new Error(`memory-child ${mode} failed: ${r.stderr}`);
        const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { baselineRss: number; peakRss: number; bytes: number };
        const extra = Math.max(0, m.peakRss - m.baselineRss);
        const label =
          mode === 'raw' ? 'writeCheckpoint, caller-owned buffers' : mode === 'raw-copy' ? 'writeCheckpoint copy: true' : 'tfjs wasm snapshot + Checkpointer';
        rows.push(`| ${mib} MiB | ${label} | ${inflight} | ${(extra / MiB).toFixed(1)} | ${(extra / m.bytes).toFixed(2)}x |`);
        results[`${mib}MiB:memory:${mode}:${inflight}`] = { extraBytes: extra, ratio: extra / m.bytes };
      }
    }
  }
  rows.push(
    '',
    'Each line is a fresh process: state allocated and touched, the writer warmed, then the peak-RSS mark is reset (/proc/self/clear_refs) and the saves run; extra = VmHWM after - VmRSS before. Page cache is not RSS. Warm-up saves run before the baseline, so memory that ckptio allocates once and reuses is in the baseline, not in these figures: the writer’s 12 MiB of O_DIRECT staging, the copy pool of `copy: true` (up to 4 buffers kept), and on wasm the snapshot’s staging arena (1x the state per arena, one arena per save in flight).',
    '',
  );
}

function machine(): string {
  const fsType = (() => {
    try {
      return execSync(`df -T ${workDir} | tail -1 | awk '{print $2}'`).toString().trim();
    } catch {
      return 'unknown';
    }
  })();
  return `${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${fsType} at ${path.dirname(workDir)}, kernel ${os.release()}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

function targets(): string[] {
  const get = (k: string) => results[k] as { stallMs: Stat; gibPerS: number } | undefined;
  const out = ['## Targets (issues 4 and 10)', '', '| target | size | figure | met? |', '|---|---|---|---|'];
  for (const mib of sizes) {
    const ck = get(`${mib}MiB:ckptio writeCheckpoint (caller-owned buffers)`)!;
    const raw = get(`${mib}MiB:raw O_DIRECT 4 MiB blocks + fsync (disk limit)`)!;
    const fsp = get(`${mib}MiB:fs.promises writeFile + fdatasync + rename`)!;
    const load = results[`${mib}MiB:load`] as { ckptioGBps: number };
    out.push(
      `| main-thread ms per save ≤ 2 (raw-buffer path), worst repetition | ${mib} MiB | ${ck.stallMs.max.toFixed(2)} ms | ${ck.stallMs.max <= 2 ? 'met' : 'NOT met'} |`,
    );
    out.push(
      `| durable throughput ≥ 0.9x raw O_DIRECT | ${mib} MiB | ${(ck.gibPerS / raw.gibPerS).toFixed(2)}x | ${ck.gibPerS / raw.gibPerS >= 0.9 ? 'met' : 'NOT met'} |`,
    );
    out.push(
      `| durable throughput ≥ 1.5x fs.promises writer | ${mib} MiB | ${(ck.gibPerS / fsp.gibPerS).toFixed(2)}x | ${ck.gibPerS / fsp.gibPerS >= 1.5 ? 'met' : 'NOT met'} |`,
    );
    const nock = get(`${mib}MiB:ckptio writeCheckpoint, checksum: false`)!;
    out.push(`| (figure 7, no target) throughput with checksums / without | ${mib} MiB | ${(ck.gibPerS / nock.gibPerS).toFixed(2)}x | - |`);
    out.push(`| load + verify ≥ 2 GB/s from page cache | ${mib} MiB | ${load.ckptioGBps.toFixed(2)} GB/s | ${load.ckptioGBps >= 2 ? 'met' : 'NOT met'} |`);
  }
  for (const backend of ['cpu', 'wasm']) {
    for (const mib of quick ? [16] : [16, 128]) {
      const t = results[`${mib}MiB:tfjs-${backend}`] as { ckptio: { total: Stat; longest: Stat }; warmMemcpyMs: number } | undefined;
      if (!t) continue;
      if (backend === 'cpu') {
        out.push(
          `| main-thread ms per save ≤ 2 (tfjs cpu path), worst repetition | ${mib} MiB | ${t.ckptio.total.max.toFixed(2)} ms | ${t.ckptio.total.max <= 2 ? 'met' : 'NOT met'} |`,
        );
      } else {
        const ok = t.ckptio.total.median <= 1.25 * t.warmMemcpyMs && t.ckptio.longest.max <= 2;
        out.push(
          `| tfjs wasm path: total ≤ 1.25x warm memcpy (${t.warmMemcpyMs.toFixed(2)} ms), no stretch > 2 ms | ${mib} MiB | ${t.ckptio.total.median.toFixed(2)} ms total (${(t.ckptio.total.median / t.warmMemcpyMs).toFixed(2)}x), longest ${t.ckptio.longest.max.toFixed(2)} ms | ${ok ? 'met' : 'NOT met'} |`,
        );
      }
    }
  }
  for (const loop of ['synthetic-wasm', 'synthetic-cpu', 'trainer']) {
    const r = results[`steps:${loop}:every 10`] as { meanRatio: number; p99Ratio: number } | undefined;
    if (!r) continue;
    out.push(
      `| step time with a save every 10 steps: mean ≤ 1.01x, p99 ≤ 1.05x | ${loop} | mean ${r.meanRatio.toFixed(3)}x, p99 ${r.p99Ratio.toFixed(3)}x | ${r.meanRatio <= 1.01 && r.p99Ratio <= 1.05 ? 'met' : 'NOT met'} |`,
    );
  }
  for (const key of Object.keys(results).filter((k) => /:memory:.*:1$/.test(k))) {
    const r = results[key] as { ratio: number };
    out.push(
      `| extra peak RSS ≤ 1.1x checkpoint bytes, one save in flight | ${key.replace(':memory:', ' ').replace(/:1$/, '')} | ${r.ratio.toFixed(2)}x | ${r.ratio <= 1.1 ? 'met' : 'NOT met'} |`,
    );
  }
  const lm = results[`layers:${quick ? 16 : 128}MiB:cpu`] as { bytes: number; tensors: number; ckptio: { stallMs: Stat; cpuMs: Stat } } | undefined;
  if (lm) {
    const label = `${(lm.bytes / MiB).toFixed(0)} MiB LayersModel + Adam (${lm.tensors} tensors)`;
    const { stallMs, cpuMs } = lm.ckptio;
    out.push(
      `| (issue 10) modelState + save ≤ 2 ms of main thread on cpu: stall until \`await ckpt.save()\` returns, worst repetition | ${label} | ${stallMs.max.toFixed(2)} ms (median ${stallMs.median.toFixed(2)}) | ${stallMs.max <= 2 ? 'met' : 'NOT met'} |`,
    );
    out.push(
      `| (issue 10) the same target read as the main thread's CPU time from the call until durable (schedstat), median | ${label} | ${cpuMs.median.toFixed(2)} ms (worst ${cpuMs.max.toFixed(2)}) | ${cpuMs.median <= 2 ? 'met' : 'NOT met'} |`,
    );
  }
  out.push(
    '',
    'Why each NOT met target misses, with the experiments behind it (copy contention, fallocate, queue depth, the wasm heap copy, run-to-run noise): benches/README.md, section "Misses in the last full run".',
    '',
  );
  return out;
}

/** Splits a RESULTS.md into its header and its `## ` blocks (### subsections stay inside their block). */
function blocks(md: string): { header: string[]; blocks: string[][] } {
  const header: string[] = [];
  const out: string[][] = [];
  for (const line of md.split('\n')) {
    if (line.startsWith('## ')) out.push([line]);
    else (out.length ? out[out.length - 1]! : header).push(line);
  }
  return { header, blocks: out };
}

/** --only: the rerun sections' blocks and figures replace the old ones in the existing output. */
function splice(sectionRows: Map<string, string[]>): { md: string; json: unknown } {
  const old = JSON.parse(fs.readFileSync(path.join(outDir, 'results.json'), 'utf8')) as {
    machine: string;
    quick: boolean;
    reps: number;
    sizesMiB: number[];
    results: Record<string, unknown>;
    rerun?: Record<string, string>;
  };
  if (old.quick !== quick) throw new Error(`--only: ${outDir}/results.json is from a ${old.quick ? 'quick' : 'full'} run; run this in the same mode`);
  const fresh = { ...results };
  for (const k of Object.keys(results)) delete results[k];
  for (const [k, v] of Object.entries(old.results))
    if (!['layers', 'webgpu', 'tensors', 'everystep', 'steps', 'defaults'].some((n) => sectionRows.has(n) && k.startsWith(`${n}:`))) results[k] = v;
  Object.assign(results, fresh);
  const md = blocks(fs.readFileSync(path.join(outDir, 'RESULTS.md'), 'utf8'));
  for (const rowsOf of sectionRows.values()) {
    const at = md.blocks.findIndex((b) => b[0] === rowsOf[0]);
    if (at >= 0) md.blocks[at] = rowsOf;
    else
      md.blocks.splice(
        Math.max(
          0,
          md.blocks.findIndex((b) => b[0]!.startsWith('## Targets')),
        ),
        0,
        rowsOf,
      );
  }
  const t = md.blocks.findIndex((b) => b[0]!.startsWith('## Targets'));
  if (t >= 0) md.blocks[t] = targets();
  else md.blocks.push(targets());
  const rerun = { ...(old.rerun ?? {}) };
  for (const name of sectionRows.keys()) rerun[name] = machine();
  const header = md.header.filter((l) => !l.startsWith('Rerun with --only'));
  while (header.length && header[header.length - 1] === '') header.pop();
  for (const [name, m] of Object.entries(rerun)) header.push('', `Rerun with --only ${name}: ${m} (that section's figures and ratios come from that run).`);
  header.push('');
  return { md: [...header, ...md.blocks.flat()].join('\n'), json: { ...old, results, rerun } };
}

async function main(): Promise<void> {
  const ctx: BenchContext = { quick, reps, workDir, rows, results };
  const sections: [string, () => Promise<void>][] = [
    ['stall', stallAndThroughput],
    ['load', load],
    ['tfjs', () => tfjsStall(ctx)],
    ['steps', () => stepOverhead(ctx)],
    ['memory', memory],
    ['compression', () => compressionBench(ctx)],
    ['layers', () => layersBench(ctx)],
    ['webgpu', () => webgpuBench(ctx)],
    ['tensors', () => tensorsBench(ctx)],
    ['everystep', () => everyStepBench(ctx)],
    ['defaults', () => defaultsBench(ctx)],
    ['remote', () => remoteBench(ctx)],
    ['sharding', () => shardingBench(ctx)],
    ['portable', () => portableBench(ctx)],
    ['browser', () => browserBench(ctx)],
  ];
  if (only) for (const name of only) if (!sections.some(([n]) => n === name)) throw new Error(`--only: no section ${name}`);
  const sectionRows = new Map<string, string[]>();
  for (const [name, run] of sections) {
    if (only && !only.has(name)) continue;
    const from = rows.length;
    const t0 = performance.now();
    await run();
    sectionRows.set(name, rows.slice(from));
    console.log(`section ${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  fs.mkdirSync(outDir, { recursive: true });
  if (only) {
    const { md, json } = splice(sectionRows);
    fs.writeFileSync(path.join(outDir, 'RESULTS.md'), md);
    fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(json, null, 2));
  } else {
    rows.push(...targets());
    const header = [
      `# ckptio benchmark results${quick ? ' (quick mode)' : ''}`,
      '',
      `Machine: ${machine()}`,
      '',
      `Each figure is a median of ${reps} interleaved repetitions in one run (the LayersModel section: ${quick ? 2 : 5}); ratios compare figures from the same run.`,
      '',
    ];
    fs.writeFileSync(path.join(outDir, 'RESULTS.md'), [...header, ...rows].join('\n'));
    fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify({ machine: machine(), quick, reps, sizesMiB: sizes, results }, null, 2));
  }
  fs.rmSync(workDir, { recursive: true, force: true });
  console.log(`wrote ${path.join(outDir, 'RESULTS.md')}`);
}

void main();
