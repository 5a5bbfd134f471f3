/** `ckptio report`: the lineage read from two real run directories (a baseline and a fine-tune of it), the page
 * rendered and opened in headless Chromium (playwright-core driving /usr/bin/chromium): the plot is drawn (one
 * marker per checkpoint per metric, inside the plot area, the fine-tune boundary, the tags, a screenshot that is
 * not blank), one table row per checkpoint, and hostile strings from a manifest shown as text (no dialog, no
 * element created, the data block still parses). The browser tests skip, saying why, without Chromium or
 * playwright-core; the string-level checks run everywhere. */
import '../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import type { ManifestEntry } from '../src/checkpoint/manifest';
import { buildReport, findChromium, readLineage, renderPng, renderReport, ReportRun, REPORT_CSP } from '../src/cli/report';
import { pattern, tempDir } from './helpers';
import { checkpointName } from '../src/checkpoint/names';

const tensors = (step: number) => ({ w: { dtype: 'float32' as const, shape: [64], data: pattern(64, step + 1) } });

const BASE_STEPS = [100, 200, 300, 400];
/** The fine-tune restarts its step count: drawn at 400 + step. */
const FT_STEPS = [50, 100, 150, 200];
const TOTAL = BASE_STEPS.length + FT_STEPS.length;

async function makeLineage(): Promise<{ base: string; ft: string; branchId: string }> {
  const root = tempDir('ckptio-report-');
  const base = path.join(root, 'v1_baseline');
  const ft = path.join(root, 'incremental_20250320');
  const b = new Checkpointer({ dir: base, keepLast: 10 });
  for (const [i, step] of BASE_STEPS.entries()) {
    await (
      await b.save(step, { tensors: tensors(step), metrics: { loss: 2 / (i + 1), val_acc: 0.5 + 0.1 * i } })
    ).durable;
  }
  await b.tag(400, 'v1_baseline');
  await b.close();
  const branch =
    (await new Checkpointer({ dir: base, lock: false }).manifest()).find((e) => e.step === 400) ??
    JSON.parse(fs.readFileSync(path.join(base, 'ckptio-manifest.json'), 'utf8')).entries.find((e: ManifestEntry) => e.step === 400);
  assert.ok(branch?.contentId, 'the baseline checkpoint has a content id');
  const f = new Checkpointer({ dir: ft, keepLast: 10, parent: { run: base, step: 400, contentId: branch.contentId } });
  for (const [i, step] of FT_STEPS.entries()) {
    await (
      await f.save(step, { tensors: tensors(1000 + step), metrics: { loss: 0.6 - 0.05 * i, val_acc: 0.8 + 0.03 * i } })
    ).durable;
  }
  await f.tag(200, 'incremental_1');
  await f.close();
  return { base, ft, branchId: branch.contentId };
}

const count = (s: string, needle: string) => s.split(needle).length - 1;

// ---------------------------------------------------------------------------------------------------------------
// Without a browser

test('buildReport follows parent.run from the fine-tune to its baseline, read-only', async () => {
  const { base, ft, branchId } = await makeLineage();
  const before = fs.readdirSync(ft).sort();
  const { html, runs, warnings } = await buildReport(ft, { generatedAt: '2025-03-20T00:00:00.000Z' });
  assert.deepEqual(warnings, []);
  assert.deepEqual(
    runs.map((r) => r.dir),
    [path.resolve(base), path.resolve(ft)],
  );
  assert.deepEqual(
    runs.map((r) => r.entries.map((e) => e.step)),
    [BASE_STEPS, FT_STEPS],
  );
  assert.deepEqual(runs[1]!.entries[0]!.parent, { run: base, step: 400, contentId: branchId });
  assert.deepEqual(runs[0]!.entries.find((e) => e.step === 400)!.tags, ['v1_baseline']);
  assert.deepEqual(fs.readdirSync(ft).sort(), before, 'reading the report changes nothing in the run');
  assert.equal(count(html, 'class="pt'), 2 * TOTAL);
  assert.equal(count(html, '<tr class="ckpt'), TOTAL);
  assert.equal(count(html, 'class="finetune-boundary"'), 2);
  assert.match(html, new RegExp(`<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}">`));
  assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//, 'no external resource');
  assert.equal(count(html, '<script'), 1, 'only the JSON data block');
});

test('the lineage stops with a warning at a missing parent run and at a cycle', async () => {
  const root = tempDir('ckptio-report-');
  const orphan = path.join(root, 'orphan');
  const o = new Checkpointer({ dir: orphan, parent: { run: path.join(root, 'gone'), step: 7 } });
  await (
    await o.save(1, { tensors: tensors(1), metrics: { loss: 1 } })
  ).durable;
  await o.close();
  const r1 = await readLineage(orphan);
  assert.equal(r1.runs.length, 1);
  assert.match(r1.warnings.join('\n'), /parent run .*gone of .*orphan was not found/);

  const a = path.join(root, 'a');
  const b = path.join(root, 'b');
  const ca = new Checkpointer({ dir: a, parent: { run: b } });
  await (
    await ca.save(1, { tensors: tensors(1), metrics: { loss: 1 } })
  ).durable;
  await ca.close();
  const cb = new Checkpointer({ dir: b, parent: { run: '../a' } }); // a relative run is resolved from the run naming it
  await (
    await cb.save(1, { tensors: tensors(2), metrics: { loss: 2 } })
  ).durable;
  await cb.close();
  const r2 = await readLineage(a);
  assert.deepEqual(
    r2.runs.map((r) => path.basename(r.dir)),
    ['b', 'a'],
  );
  assert.match(r2.warnings.join('\n'), /already in the lineage \(a cycle\)/);
  assert.ok(renderReport(r2.runs, { warnings: r2.warnings }).includes('a cycle'));
});

test('a fine-tune continuing the step count is drawn at its own steps; a long pause is marked as a likely resume', () => {
  const t0 = Date.parse('2025-03-20T00:00:00Z');
  const e = (step: number, minutes: number, parent: ManifestEntry['parent'] = null): ManifestEntry => ({
    step,
    file: checkpointName(step),
    time: new Date(t0 + minutes * 60_000).toISOString(),
    bytes: 1,
    metrics: { loss: 1 / step },
    contentId: null,
    parent,
    tags: [],
    keptBy: [],
  });
  const runs: ReportRun[] = [
    { dir: '/r/base', entries: [e(10, 0), e(20, 1), e(30, 2), e(40, 120), e(50, 121)] },
    { dir: '/r/ft', entries: [e(60, 200, { run: '/r/base', step: 50 }), e(70, 201)] },
  ];
  const html = renderReport(runs);
  const data = JSON.parse(/id="ckptio-report-data">([\s\S]*?)<\/script>/.exec(html)![1]!);
  assert.deepEqual(
    data.runs.map((r: { offset: number }) => r.offset),
    [0, 0],
  );
  assert.equal(count(html, 'class="resume-marker"'), 1, 'the two-hour pause before step 40');
  assert.match(html, /class="resume-marker"[^>]*><title>a 118 min pause before step 40/);
  assert.equal(count(html, 'class="finetune-boundary"'), 1);
  assert.equal(count(html, 'class="pt'), 7);
});

const EVIL_TAG = '<img src=x onerror=alert(1)>';
const EVIL_METRIC = '</script><script>alert(1)</script>';
const EVIL_RUN = '/tmp/"><svg onload=alert(2)>';
const EVIL_FILE = "ckpt-'><iframe src=javascript:alert(3)>";

function evilRuns(): ReportRun[] {
  const e = (step: number, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({
    step,
    file: EVIL_FILE,
    time: `<b>${step}</b>`,
    bytes: 10,
    metrics: { [EVIL_METRIC]: step / 10, [EVIL_TAG]: 1 - step / 10 },
    contentId: null,
    parent: null,
    tags: [EVIL_TAG],
    keptBy: ['</td></tr></table><img src=y onerror=alert(4)>'],
    ...extra,
  });
  return [
    { dir: EVIL_RUN, entries: [e(1), e(2), e(3)], pointers: { [EVIL_TAG]: 3 } },
    { dir: `${EVIL_RUN}/ft`, entries: [e(4, { parent: { run: EVIL_RUN, step: 3 } }), e(5)] },
  ];
}

test('hostile strings are escaped in the HTML, and the data block cannot be closed', () => {
  const html = renderReport(evilRuns(), { warnings: [EVIL_TAG], title: EVIL_METRIC });
  for (const raw of ['<img', '<svg onload', '<iframe', '</script><script>', '<b>']) assert.ok(!html.includes(raw), `raw ${raw} in the page`);
  assert.equal(count(html, '<script'), 1);
  assert.equal(count(html, '</script>'), 1);
  const block = /<script type="application\/json" id="ckptio-report-data">([\s\S]*?)<\/script>/.exec(html)![1]!;
  const data = JSON.parse(block);
  assert.equal(data.runs[0].entries[0].tags[0], EVIL_TAG);
  assert.ok(EVIL_METRIC in data.runs[0].entries[0].metrics);
});

// ---------------------------------------------------------------------------------------------------------------
// In headless Chromium

/* eslint-disable @typescript-eslint/no-explicit-any */
function loadPlaywright(): { pw: any } | { reason: string } {
  const chromium = findChromium();
  if (chromium.path === null) return { reason: `skipped: ${chromium.reason}` };
  try {
    return { pw: require('playwright-core') };
  } catch {
    return { reason: 'skipped: playwright-core is not installed (npm install --no-save playwright-core)' };
  }
}

const loaded = loadPlaywright();
const skip = 'reason' in loaded ? loaded.reason : false;
if (skip) console.log(`report browser tests ${skip}`);

// CI sets CKPTIO_REQUIRE_CHROMIUM=1 so that a missing browser or library fails instead of skipping.
test(
  'Chromium and playwright-core are present where CKPTIO_REQUIRE_CHROMIUM=1',
  { skip: process.env.CKPTIO_REQUIRE_CHROMIUM === '1' ? false : 'CKPTIO_REQUIRE_CHROMIUM is not set' },
  () => {
    assert.equal(skip, false, `CKPTIO_REQUIRE_CHROMIUM=1 but the browser tests would be ${skip}`);
  },
);
let browser: any = null;

before(async () => {
  if ('pw' in loaded) browser = await loaded.pw.chromium.launch({ executablePath: findChromium().path!, headless: true, args: ['--disable-gpu'] });
});
after(async () => {
  await browser?.close();
});

/** Opens the page with JavaScript on (so an injected script would run if the page let it), recording dialogs,
 * console errors other than CSP reports, and requests. */
async function open(html: string): Promise<{ page: any; dialogs: string[]; requests: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const dialogs: string[] = [];
  const requests: string[] = [];
  page.on('dialog', (d: any) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('request', (r: any) => requests.push(r.url()));
  await page.setContent(html, { waitUntil: 'load' });
  await page.waitForTimeout(200);
  return { page, dialogs, requests };
}

/** Distinct colours, the share of non-white pixels, and the pixels close to each target colour of a PNG,
 * decoded by the browser on a blank page. */
async function pixelStats(png: Buffer, targets: number[][] = []): Promise<{ colors: number; inked: number; width: number; height: number; near: number[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.setContent('<canvas id="c"></canvas>');
  const stats = await page.evaluate(
    async ([b64, targets]: [string, number[][]]) => {
      const w = globalThis as any;
      const img = new w.Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = w.document.getElementById('c');
      c.width = img.width;
      c.height = img.height;
      const g = c.getContext('2d')!;
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, img.width, img.height).data;
      const colors = new Set<number>();
      let inked = 0;
      const near = targets.map(() => 0);
      for (let i = 0; i < d.length; i += 4) {
        colors.add((d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!);
        if (d[i]! < 235 || d[i + 1]! < 235 || d[i + 2]! < 235) inked++;
        targets.forEach((t, k) => {
          if (Math.abs(d[i]! - t[0]!) + Math.abs(d[i + 1]! - t[1]!) + Math.abs(d[i + 2]! - t[2]!) < 40) near[k]!++;
        });
      }
      return { colors: colors.size, inked: inked / (d.length / 4), width: img.width, height: img.height, near };
    },
    [png.toString('base64'), targets],
  );
  await context.close();
  return stats;
}

test(
  'in Chromium: one marker per checkpoint per metric inside the plot, the fine-tune boundary, tags, table rows, a plot that is not blank',
  { skip },
  async () => {
    const { ft } = await makeLineage();
    const { html } = await buildReport(ft);
    const { page, dialogs, requests } = await open(html);
    for (const metric of ['loss', 'val_acc']) {
      const pts = await page.$$eval(`#plot circle.pt[data-metric="${metric}"]`, (els: any[]) =>
        els.map((el) => {
          const r = el.getBoundingClientRect();
          const area = el.closest('g.panel')!.querySelector('rect.plot-area')!.getBoundingClientRect();
          return {
            x: r.x + r.width / 2,
            y: r.y + r.height / 2,
            inside: r.x >= area.x - 8 && r.right <= area.right + 8 && r.y >= area.y - 8 && r.bottom <= area.bottom + 8,
            w: r.width,
          };
        }),
      );
      assert.equal(pts.length, TOTAL, `${metric}: one marker per checkpoint`);
      assert.ok(
        pts.every((p: any) => p.inside && p.w > 0),
        `${metric}: every marker drawn inside its plot area`,
      );
      const xs = pts.map((p: any) => p.x);
      assert.ok(
        xs.every((x: number, i: number) => i === 0 || x > xs[i - 1]),
        `${metric}: markers advance along the step axis across the lineage`,
      );
      assert.equal(new Set(pts.map((p: any) => Math.round(p.y))).size > 2, true, `${metric}: markers follow the values`);
      assert.equal(await page.$$eval(`g.panel[data-metric="${metric}"] polyline.series-line`, (els: any[]) => els.length), 2, `${metric}: a line per run`);
    }
    assert.equal(await page.locator('g.finetune-boundary').count(), 2, 'the fine-tune boundary in each panel');
    assert.equal(await page.locator('circle.pt-finetune-start').count(), 2, "the fine-tune's first checkpoint is marked");
    assert.match(await page.locator('g.finetune-boundary text').first().textContent(), /fine-tune: incremental_20250320/);
    const tagTexts = await page.$$eval('g.tag-marker text', (els: any[]) => els.map((e) => e.textContent));
    assert.deepEqual([...new Set(tagTexts)].sort(), ['incremental_1', 'v1_baseline']);
    assert.equal(tagTexts.length, 4, 'two tags, in each of two panels');
    assert.equal(await page.locator('#checkpoints tbody tr').count(), TOTAL, 'one table row per checkpoint');
    assert.equal(await page.locator('#checkpoints tbody tr.finetune-start').count(), 1);

    // The series colours as the legend shows them (not read from the plot itself).
    const legend: number[][] = await page.$$eval('.legend .swatch', (els: any[]) =>
      els.map((el) => (globalThis as any).getComputedStyle(el).backgroundColor.match(/\d+/g).slice(0, 3).map(Number)),
    );
    assert.equal(legend.length, 2);
    const shot: Buffer = await page.locator('#plot').screenshot({ type: 'png' });
    const stats = await pixelStats(shot, legend);
    // 8 markers (r 4, stroke 2) and a 2 px line over ~800 px per series: well over 500 pixels of its colour.
    stats.near.forEach((n, k) => assert.ok(n > 500, `series ${k}: ${n} pixels of its colour ${legend[k]} in the plot`));
    assert.ok(stats.width >= 900 && stats.height >= 400, `plot screenshot ${stats.width}x${stats.height}`);
    assert.ok(stats.colors > 20, `plot screenshot has ${stats.colors} distinct colours`);
    assert.ok(stats.inked > 0.02, `plot screenshot is ${(stats.inked * 100).toFixed(2)}% ink`);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(
      requests.filter((u) => !u.startsWith('about:') && !u.startsWith('data:')),
      [],
      'no network request',
    );
    await page.context().close();
  },
);

test('in Chromium: hostile tags, metric names, paths and file names are text; no dialog, no element, no script', { skip }, async () => {
  const html = renderReport(evilRuns(), { warnings: [EVIL_TAG], title: EVIL_METRIC });
  const { page, dialogs } = await open(html);
  assert.deepEqual(dialogs, [], 'no alert');
  const dom = await page.evaluate(() => {
    const document = (globalThis as any).document;
    return {
      injected: document.querySelectorAll('img, iframe, object, embed, b, svg svg, foreignObject, [onerror], [onload]').length,
      scripts: [...document.querySelectorAll('script')].map((s: any) => s.type),
      svgs: document.querySelectorAll('svg').length,
      tables: document.querySelectorAll('table').length,
      title: document.title,
      tagSpans: [...document.querySelectorAll('#checkpoints .tag')].map((s: any) => s.textContent),
      tagMarks: [...document.querySelectorAll('g.tag-marker text')].map((s: any) => s.textContent),
      heads: [...document.querySelectorAll('#checkpoints th')].map((s: any) => s.textContent),
      rows: document.querySelectorAll('#checkpoints tbody tr').length,
      lineage: document.querySelector('.lineage')?.textContent ?? '',
      data: (() => {
        try {
          return JSON.parse(document.getElementById('ckptio-report-data')?.textContent ?? 'null');
        } catch {
          return null;
        }
      })(),
    };
  });
  assert.equal(dom.injected, 0, 'no element created from the strings');
  assert.deepEqual(dom.scripts, ['application/json']);
  assert.equal(dom.svgs, 1);
  assert.equal(dom.tables, 1);
  assert.equal(dom.rows, 5);
  assert.equal(dom.title, EVIL_METRIC);
  assert.deepEqual(dom.tagSpans, Array(5).fill(EVIL_TAG));
  assert.ok(dom.tagMarks.length === 10 && dom.tagMarks.every((t: string) => t === EVIL_TAG));
  assert.ok(dom.heads.includes(EVIL_METRIC) && dom.heads.includes(EVIL_TAG));
  assert.ok(dom.lineage.includes(EVIL_RUN));
  assert.equal(dom.data?.runs[1].entries[0].parent.run, EVIL_RUN, 'the data block parses back to the same strings');
  assert.equal(await page.locator('circle.pt').count(), 10);
  await page.context().close();
});

test('renderPng writes a PNG of the page with the same Chromium', { skip }, async () => {
  const { ft } = await makeLineage();
  const { html } = await buildReport(ft);
  const out = path.join(tempDir('ckptio-report-'), 'report.png');
  const r = await renderPng(html, out);
  const png = fs.readFileSync(out);
  assert.equal(r.bytes, png.length);
  assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'PNG signature');
  const stats = await pixelStats(png);
  assert.ok(stats.width >= 960 && stats.height >= 2 * 230, `${stats.width}x${stats.height}`);
  assert.ok(stats.colors > 20 && stats.inked > 0.02, `${stats.colors} colours, ${(stats.inked * 100).toFixed(2)}% ink`);
});
