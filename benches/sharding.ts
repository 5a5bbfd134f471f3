/** Section `sharding` of npm run bench: time to durable of one step saved by 1, 2 and 4 ranks (each rank a process
 * saving its share of the same bytes, the step durable once rank 0 has committed its record) against one process
 * saving everything, and the coordination's own cost: the same ranks as independent processes with plain
 * Checkpointers (no record, no markers), interleaved in one run. On 2 cores this shows overhead, not speed-up: the
 * disk and the CPUs are shared. */
import { ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchContext, MiB, stat } from './common';

interface Group {
  name: string;
  children: ChildProcess[];
}

async function startGroup(name: string, dirs: string[], mode: 'sharded' | 'plain', bytesEach: number): Promise<Group> {
  const children = dirs.map((dir, rank) =>
    fork(path.join(__dirname, 'shard-child.js'), [dir, mode, String(rank), String(dirs.length), String(bytesEach)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  await Promise.all(children.map((c) => new Promise((resolve) => c.once('message', resolve))));
  return { name, children };
}

/** ms from telling every process to save `step` until every one reports it durable. */
async function saveStep(g: Group, step: number): Promise<number> {
  const t0 = performance.now();
  const done = g.children.map((c) => new Promise((resolve) => c.once('message', resolve)));
  for (const c of g.children) c.send({ step });
  await Promise.all(done);
  return performance.now() - t0;
}

async function stopGroup(g: Group): Promise<void> {
  await Promise.all(g.children.map((c) => new Promise((resolve) => (c.once('exit', resolve), c.send({ close: true })))));
}

async function measureSize(ctx: BenchContext, total: number, reps: number): Promise<Map<string, ReturnType<typeof stat>>> {
  const root = fs.mkdtempSync(path.join(ctx.workDir, 'sharding-'));
  const groups: Group[] = [];
  groups.push(await startGroup(SINGLE, [path.join(root, 'single')], 'plain', total));
  for (const world of [1, 2, 4]) {
    const dir = path.join(root, `sharded-${world}`);
    groups.push(await startGroup(`sharded, ${world} rank${world > 1 ? 's' : ''}`, Array(world).fill(dir), 'sharded', total / world));
    if (world > 1)
      groups.push(
        await startGroup(
          independent(world),
          Array.from({ length: world }, (_, r) => path.join(root, `plain-${world}-${r}`)),
          'plain',
          total / world,
        ),
      );
  }
  const times = new Map<string, number[]>(groups.map((g) => [g.name, []]));
  try {
    // One warm-up step each (opening the run, starting the coordination worker), then interleaved repetitions.
    for (let step = 0; step <= reps; step++) {
      for (const g of groups) {
        const ms = await saveStep(g, step);
        if (step > 0) times.get(g.name)!.push(ms);
      }
    }
  } finally {
    for (const g of groups) await stopGroup(g);
    fs.rmSync(root, { recursive: true, force: true });
  }
  return new Map([...times].map(([k, v]) => [k, stat(v)]));
}

const SINGLE = 'one process, everything';
const independent = (world: number) => `${world} independent processes (no coordination)`;

function table(ctx: BenchContext, key: string, s: Map<string, ReturnType<typeof stat>>, total: number): void {
  const single = s.get(SINGLE)!.median;
  ctx.rows.push('| configuration | ms to durable (median, min..max) | vs one process | coordination cost (ms) |', '|---|---|---|---|');
  for (const [name, st] of s) {
    const world = /sharded, (\d)/.exec(name)?.[1];
    const plain = world === '1' ? single : world ? s.get(independent(Number(world)))?.median : undefined;
    const cost = plain !== undefined ? (st.median - plain).toFixed(1) : '';
    ctx.rows.push(`| ${name} | ${st.median.toFixed(1)} (${st.min.toFixed(1)}..${st.max.toFixed(1)}) | ${(st.median / single).toFixed(2)}x | ${cost} |`);
    ctx.results[`sharding:${key}:${name}`] = {
      bytes: total,
      ms: st,
      vsSingle: st.median / single,
      ...(plain !== undefined ? { coordinationMs: st.median - plain } : {}),
    };
  }
  ctx.rows.push('');
}

export async function shardingBench(ctx: BenchContext): Promise<void> {
  const total = (ctx.quick ? 32 : 256) * MiB;
  const tiny = 64 << 10;
  const big = await measureSize(ctx, total, ctx.reps);
  const small = await measureSize(ctx, tiny, ctx.reps * 4);
  ctx.rows.push(
    '## Sharded saves: time to durable with 1, 2 and 4 ranks',
    '',
    `One step saved by every process at once, each rank saving its share (default options, a loop that awaits \`durable\`), ` +
      'interleaved repetitions after a warm-up, ms from telling every process to save until every one has `durable` ' +
      '(for a sharded step: rank 0 has read every shard header, created the record and moved `latest`, and each rank has read the record). ' +
      "The independent processes write the same shares with plain Checkpointers into directories of their own; each of their saves also rewrites its run's `latest` pointer and manifest (two more atomic writes), which a shard does not, so for large steps they are slower and the difference is not the coordination's cost. " +
      "The small step isolates that cost: each rank's worker polling for shards and the record every 5 ms, rank 0 reading the shard headers and creating the record and the pointer. " +
      'Two cores: more ranks share the same disk and CPUs, so this shows overhead, not speed-up.',
    '',
    `### ${total / MiB} MiB per step in all (${ctx.reps} repetitions)`,
    '',
  );
  table(ctx, 'big', big, total);
  ctx.rows.push(`### ${tiny >> 10} KiB per step in all (${ctx.reps * 4} repetitions): the coordination's fixed cost per step`, '');
  table(ctx, 'tiny', small, tiny);
}
