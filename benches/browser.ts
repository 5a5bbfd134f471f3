/** Section `browser` of npm run bench: ckptio/browser in headless Chromium (the test page, test/browser/page.mjs,
 * cross-origin isolated), a model of 16 MiB trained one step between saves, on tfjs's threaded wasm backend (its heap
 * is shared: the writer worker reads the tensors in place) and on the cpu backend (the page copies every byte into
 * the writer's shared buffer): how long save() holds the page's thread, the time until the save is durable in the
 * origin private file system, and what tfjs pages use today, `model.save('indexeddb://…')`, from call to resolve.
 * Interleaved per repetition, default options. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { browserSkipReason, launch, serve } from '../test/browser/harness';
import { BenchContext, stat } from './common';

interface PageResult {
  ckptioCall: number[];
  ckptioDurable: number[];
  tfjsSave: number[];
  isolated: boolean;
  stats: { copiedBytes: number; inPlaceBytes: number };
}

export async function browserBench(ctx: BenchContext): Promise<void> {
  ctx.rows.push('## The browser (ckptio/browser on OPFS, headless Chromium)', '');
  const reason = browserSkipReason();
  if (reason !== null) {
    ctx.rows.push(`Not run: ${reason}.`, '');
    return;
  }
  const mib = 16;
  const reps = ctx.quick ? 3 : 21;
  const site = await serve();
  const profile = fs.mkdtempSync(path.join(ctx.workDir, 'chromium-'));
  const results = new Map<string, PageResult>();
  let b: Awaited<ReturnType<typeof launch>> | null = null;
  try {
    b = await launch(profile, site);
    for (const backend of ['wasm', 'cpu']) {
      const r = (await b!.page.evaluate(
        (a: { dir: string; mib: number; reps: number; backend: string }) =>
          (globalThis as never as { ckptioTest: { benchSaves(a: unknown): never } }).ckptioTest.benchSaves(a),
        {
          dir: `bench-${backend}`,
          mib,
          reps,
          backend,
        },
      )) as PageResult;
      results.set(backend, r);
    }
  } finally {
    await b?.close();
    await site.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  const isolated = [...results.values()].every((r) => r.isolated);
  ctx.rows.push(
    `A ${mib} MiB model (one dense kernel, sgd), default options, ${reps} repetitions after a warm-up, each a training step, a ckptio save ` +
      `(awaited to durable), a training step and tfjs's IndexedDB save; the page is ${isolated ? '' : 'not '}cross-origin isolated. ` +
      '"save() holds" is `await ckpt.save()` on the page\'s thread. On the threaded wasm backend the heap is a SharedArrayBuffer and the writer ' +
      "worker reads the tensors in place; on the cpu backend the tensors are the page's own arrays, which no worker can read, so " +
      "save() copies every byte into the writer's shared buffer. tfjs's `model.save('indexeddb://…')` is what a tfjs page uses " +
      'today: its promise, from call to resolve.',
    '',
    '| backend | bytes copied on the page per save | save() holds the page, ms (median, min..max) | to durable, ms (median) | tfjs IndexedDB save, ms (median) | hold / tfjs save | durable / tfjs save |',
    '|---|---|---|---|---|---|---|',
  );
  for (const [backend, r] of results) {
    const call = stat(r.ckptioCall);
    const durable = stat(r.ckptioDurable);
    const tfjs = stat(r.tfjsSave);
    const saves = r.ckptioCall.length + 1;
    ctx.rows.push(
      `| ${backend === 'wasm' ? 'wasm (threaded)' : backend} | ${(r.stats.copiedBytes / saves / (1 << 20)).toFixed(1)} MiB | ${call.median.toFixed(2)} (${call.min.toFixed(2)}..${call.max.toFixed(2)}) | ${durable.median.toFixed(1)} | ${tfjs.median.toFixed(1)} | ${(call.median / tfjs.median).toFixed(3)} | ${(durable.median / tfjs.median).toFixed(2)} |`,
    );
    ctx.results[`browser:${mib}MiB:${backend}`] = {
      bytes: mib << 20,
      holdMs: call,
      durableMs: durable,
      tfjsIndexedDbMs: tfjs,
      isolated: r.isolated,
      stats: r.stats,
    };
  }
  ctx.rows.push('');
}
