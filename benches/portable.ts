/** Section `portable` of npm run bench: the portable writer (CKPTIO_WRITER=portable, what macOS, Windows and musl
 * get) against the native addon on the same machine, interleaved in one run: how long save() holds the training
 * thread (the portable writer copies every byte there, the addon reads plain arrays in place) and the time until
 * the save is durable, default options. */
import { ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchContext, MiB, stat } from './common';

interface Child {
  writer: 'native' | 'portable';
  proc: ChildProcess;
}

async function start(writer: Child['writer'], dir: string, bytes: number): Promise<Child> {
  const proc = fork(path.join(__dirname, 'writer-child.js'), [dir, String(bytes)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, CKPTIO_WRITER: writer },
  });
  const ready = (await new Promise((resolve) => proc.once('message', resolve))) as { writerKind: string };
  if (ready.writerKind !== writer) throw new Error(`the ${writer} child runs the ${ready.writerKind} writer`);
  return { writer, proc };
}

async function save(c: Child, step: number): Promise<{ holdMs: number; durableMs: number }> {
  const done = new Promise<{ holdMs: number; durableMs: number }>((resolve) => c.proc.once('message', resolve as (m: unknown) => void));
  c.proc.send({ step });
  return done;
}

export async function portableBench(ctx: BenchContext): Promise<void> {
  const sizes = ctx.quick ? [16 * MiB] : [16 * MiB, 256 * MiB];
  ctx.rows.push(
    '## Portable writer vs native addon (CKPTIO_WRITER)',
    '',
    'One process per writer on this Linux machine, default options, a loop that awaits `durable`, interleaved repetitions after a warm-up. ' +
      '"save() holds" is `await ckpt.save()` on the training thread (microtasks only): the portable writer copies every tensor byte there ' +
      "into reused shared buffers (its worker thread cannot read the caller's memory); the addon reads plain arrays in place. " +
      '"to durable" includes the whole commit (file, fdatasync, rename, directory fsync, pointer and manifest).',
    '',
    '| state | writer | save() holds, ms (median, min..max) | per MiB | to durable, ms (median) | durable vs native |',
    '|---|---|---|---|---|---|',
  );
  for (const bytes of sizes) {
    const root = fs.mkdtempSync(path.join(ctx.workDir, 'portable-'));
    const children = [await start('native', path.join(root, 'native'), bytes), await start('portable', path.join(root, 'portable'), bytes)];
    const hold = new Map<string, number[]>(children.map((c) => [c.writer, []]));
    const durable = new Map<string, number[]>(children.map((c) => [c.writer, []]));
    try {
      for (let step = 0; step <= ctx.reps; step++) {
        for (const c of children) {
          const r = await save(c, step);
          if (step === 0) continue;
          hold.get(c.writer)!.push(r.holdMs);
          durable.get(c.writer)!.push(r.durableMs);
        }
      }
    } finally {
      await Promise.all(children.map((c) => new Promise((resolve) => (c.proc.once('exit', resolve), c.proc.send({ close: true })))));
      fs.rmSync(root, { recursive: true, force: true });
    }
    const nativeDurable = stat(durable.get('native')!).median;
    for (const c of children) {
      const h = stat(hold.get(c.writer)!);
      const d = stat(durable.get(c.writer)!);
      ctx.rows.push(
        `| ${bytes / MiB} MiB | ${c.writer} | ${h.median.toFixed(2)} (${h.min.toFixed(2)}..${h.max.toFixed(2)}) | ${(h.median / (bytes / MiB)).toFixed(3)} | ${d.median.toFixed(1)} | ${(d.median / nativeDurable).toFixed(2)}x |`,
      );
      ctx.results[`portable:${bytes / MiB}MiB:${c.writer}`] = { bytes, holdMs: h, durableMs: d, durableVsNative: d.median / nativeDurable };
    }
  }
  ctx.rows.push('');
}
