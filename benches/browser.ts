/** Section `browser` of npm run bench: ckptio/browser in headless Chromium (the test page, test/browser/page.mjs,
 * cross-origin isolated), a model of 16 MiB on the cpu backend trained one step between saves: how long save()
 * holds the page's thread (it copies every byte into the writer's shared buffer there), the time until the save is
 * durable in the origin private file system, and what tfjs users use today, `model.save('indexeddb://…')`, from call
 * to resolve. Interleaved in one run, default options. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { browserSkipReason, launch, serve } from '../test/browser/harness';
import { BenchContext, stat } from './common';

export async function browserBench(ctx: BenchContext): Promise<void> {
  ctx.rows.push('## The browser (ckptio/browser on OPFS, headless Chromium)', '');
  const reason = browserSkipReason();
  if (reason !== null) {
    ctx.rows.push(`Not run: ${reason}.`, '');
    return;
  }
  const mib = 16;
  const reps = ctx.quick ? 3 : 15;
  const site = await serve();
  const profile = fs.mkdtempSync(path.join(ctx.workDir, 'chromium-'));
  const b = await launch(profile, site);
  let r: { ckptioCall: number[]; ckptioDurable: number[]; tfjsSave: number[]; isolated: boolean };
  try {
    r = await b.page.evaluate(
      (a: { dir: string; mib: number; reps: number }) => (globalThis as never as { ckptioTest: { benchSaves(a: unknown): never } }).ckptioTest.benchSaves(a),
      {
        dir: 'bench',
        mib,
        reps,
      },
    );
  } finally {
    await b.close();
    await site.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  const call = stat(r.ckptioCall);
  const durable = stat(r.ckptioDurable);
  const tfjs = stat(r.tfjsSave);
  ctx.rows.push(
    `A ${mib} MiB model (one dense kernel, sgd) on the cpu backend, default options, ${reps} interleaved repetitions after a warm-up; the page is ` +
      `${r.isolated ? '' : 'not '}cross-origin isolated. "save() holds" is \`await ckpt.save()\` on the page's thread: ` +
      'the snapshot, and the copy of every byte into the shared buffer the writer worker reads (the cpu backend keeps tensors in ' +
      "the page's own memory, which no worker can read). tfjs's IndexedDB save is what a tfjs page uses today: its promise, " +
      'from call to resolve (its serialization and the IndexedDB write).',
    '',
    '| what | median ms | min..max |',
    '|---|---|---|',
    `| ckptio: save() holds the page's thread | ${call.median.toFixed(2)} | ${call.min.toFixed(2)}..${call.max.toFixed(2)} |`,
    `| ckptio: save() to durable (written, flushed, moved into place, with pointer and manifest) | ${durable.median.toFixed(1)} | ${durable.min.toFixed(1)}..${durable.max.toFixed(1)} |`,
    `| tfjs: await model.save('indexeddb://…') | ${tfjs.median.toFixed(1)} | ${tfjs.min.toFixed(1)}..${tfjs.max.toFixed(1)} |`,
    '',
    `ckptio holds the page ${(call.median / tfjs.median).toFixed(3)}x as long as tfjs's IndexedDB save takes; its save is durable in ${(durable.median / tfjs.median).toFixed(2)}x that time.`,
    '',
  );
  ctx.results[`browser:${mib}MiB:cpu`] = { bytes: mib << 20, holdMs: call, durableMs: durable, tfjsIndexedDbMs: tfjs, isolated: r.isolated };
}
