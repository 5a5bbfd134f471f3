/** `ckptio report DIR --out report.html [--png report.png]`: one self-contained HTML page of every recorded metric
 * per step across a run's lineage (the run, the run it was fine-tuned from, and so on), with a marker per
 * checkpoint, the fine-tune boundaries, tags and inferred resumes, and a table of the checkpoints below.
 *
 * Everything read from a manifest or a checkpoint (metric names, tags, file names, run paths, times) is untrusted.
 * The page is drawn here as inline SVG: it contains no script at all, every string is HTML-escaped, numbers are
 * checked finite before they are written, and a Content-Security-Policy forbids scripts and every external load.
 * The data is also embedded, for tools, as JSON in a <script type="application/json"> block (never executed;
 * `<`, `>`, `&` and U+2028/2029 are \u-escaped so it cannot close the element).
 *
 * The PNG is a screenshot of the same page taken by headless Chromium (playwright-core driving a system
 * chromium, /usr/bin/chromium by default); the HTML needs neither. See docs/report.md. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../binding/errors';
import { crossRunParent, MAX_LINEAGE, walkLineage } from '../checkpoint/node/lineage';
import { ManifestEntry, Parent } from '../checkpoint/manifest';
import { presentEntries, readRun } from '../checkpoint/run-reader';
import { requirePeer } from '../binding/peer';

/** One run directory of a lineage, with its checkpoints as its manifest records them. */
export interface ReportRun {
  /** The run directory (absolute once read by buildReport). */
  dir: string;
  /** Its checkpoints, oldest first. */
  entries: ManifestEntry[];
  /** The manifest's pointers (latest, best-<metric>, ...), when the manifest could be read. */
  pointers?: Record<string, number>;
  /** Files of `entries` whose checkpoint retention has removed since (known from the run's history). */
  removed?: string[];
  /** Steps the run was resumed from, as its history records them (without a history, long pauses are inferred). */
  resumes?: number[];
}

export interface RenderOptions {
  /** Problems met while reading the lineage (a missing parent run, a cycle); shown on the page. */
  warnings?: string[];
  /** Shown in the page heading (default: "ckptio report"). */
  title?: string;
  /** ISO time printed in the footer (default: now). */
  generatedAt?: string;
}

export interface BuiltReport {
  html: string;
  /** Oldest ancestor first; the requested run last. */
  runs: ReportRun[];
  warnings: string[];
}

/** The default browser for renderPng; CKPTIO_CHROMIUM overrides it. */
export const DEFAULT_CHROMIUM = '/usr/bin/chromium';
/** The browser-automation package renderPng loads (optional: only the PNG needs it). */
export const BROWSER_PACKAGE = 'playwright-core';
export const REPORT_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; script-src 'none'; connect-src 'none'; font-src 'none'; object-src 'none'; media-src 'none'; frame-src 'none'; base-uri 'none'; form-action 'none'";

// ---------------------------------------------------------------------------------------------------------------
// Reading the lineage

/** One run as the report draws it: the checkpoints present (the run reader's reconciliation, read-only). */
async function readReportRun(dir: string, warnings: string[]): Promise<ReportRun> {
  const run = await readRun(dir, { headers: 'missing' });
  if (run.manifestProblem) warnings.push(`${dir}: the manifest is unreadable, the checkpoints' headers are used (${run.manifestProblem.message})`);
  for (const c of run.checkpoints)
    if (c.present && !c.inManifest && c.problem) warnings.push(`${dir}: ${c.file} is not a readable checkpoint and is left out (${c.problem.message})`);
  const present = presentEntries(run);
  const base = { dir: run.dir, ...(run.manifest ? { pointers: run.manifest.pointers } : {}) };
  if (!run.history) return { ...base, entries: present };
  if (run.historyProblem) warnings.push(`${dir}: ${run.historyProblem.message}`);
  // The whole run: every save the history records (its checkpoint's entry while it exists), then any checkpoint
  // the history lacks.
  const byFile = new Map(present.map((e) => [e.file, e]));
  const entries: ManifestEntry[] = [];
  const removed: string[] = [];
  for (const e of run.history) {
    if (e.event !== 'save') continue;
    const kept = byFile.get(e.file);
    if (kept) {
      byFile.delete(e.file);
      entries.push(kept);
    } else if (!present.some((p) => p.file === e.file)) {
      removed.push(e.file);
      entries.push({ step: e.step, file: e.file, time: e.time, bytes: NaN, metrics: e.metrics, contentId: null, parent: null, tags: [], keptBy: [] });
    }
  }
  entries.push(...byFile.values());
  const resumes = run.history.filter((e) => e.event === 'resume').map((e) => e.step);
  return { ...base, entries: entries.sort((a, b) => a.step - b.step), removed, resumes };
}

/** Reads DIR's manifest and follows `parent.run` to the runs it was fine-tuned from (checkpoint/node/lineage.ts: a
 * missing directory or a cycle ends the chain with a warning). Never takes a run lock and never writes. */
export async function readLineage(dir: string): Promise<{ runs: ReportRun[]; warnings: string[] }> {
  const warnings: string[] = [];
  const start = path.resolve(dir);
  if (!fs.existsSync(start) || !fs.statSync(start).isDirectory()) {
    throw new CheckpointError(`${start} is not a directory`, { code: 'ENOENT', path: start });
  }
  const chain = await walkLineage(
    start,
    (d) => readReportRun(d, warnings),
    (r) => r.entries,
  );
  for (const c of chain) {
    if (!c.from) continue;
    if (c.from.found === 'missing-run') warnings.push(`the parent run ${c.from.run} of ${c.dir} was not found; the lineage stops there`);
    else if (c.from.found === 'cycle') warnings.push(`the parent run ${c.from.run} of ${c.dir} is already in the lineage (a cycle); the lineage stops there`);
    else if (c.from.found === 'not-followed') warnings.push(`the lineage is longer than ${MAX_LINEAGE} runs; only the newest ${MAX_LINEAGE} are shown`);
  }
  return { runs: chain.map((c) => c.run), warnings };
}

/** Reads DIR's lineage and renders the page. */
export async function buildReport(dir: string, options: Omit<RenderOptions, 'warnings'> = {}): Promise<BuiltReport> {
  const { runs, warnings } = await readLineage(dir);
  return { html: renderReport(runs, { ...options, warnings }), runs, warnings };
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering

/** HTML-escapes text for element content and quoted attribute values. */
export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that is safe inside any HTML element, a <script> data block included. */
export function jsonForHtml(v: unknown): string {
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

interface Point {
  run: number;
  index: number;
  step: number;
  x: number;
  y: number;
  entry: ManifestEntry;
}
interface Boundary {
  run: number;
  x: number;
  fromRun: number;
  parent: Parent & { run: string };
}
interface Resume {
  run: number;
  x: number;
  gapMs: number;
  step: number;
}

function finite(n: unknown): n is number {
  return typeof n === 'number' && Number.isFinite(n);
}

/** Drops what cannot be drawn (a renderReport caller may hand anything): entries need a finite, safe step. */
function clean(runs: ReportRun[]): ReportRun[] {
  return runs.map((r) => ({
    dir: String(r?.dir ?? ''),
    pointers: r?.pointers && typeof r.pointers === 'object' ? r.pointers : {},
    removed: Array.isArray(r?.removed) ? r.removed.map(String) : [],
    ...(Array.isArray(r?.resumes) ? { resumes: r.resumes.filter((x) => Number.isSafeInteger(x)) } : {}),
    entries: (Array.isArray(r?.entries) ? r.entries : [])
      .filter((e) => e && Number.isSafeInteger(e.step) && e.step >= 0)
      .map((e) => ({
        ...e,
        file: String(e.file ?? ''),
        time: String(e.time ?? ''),
        tags: Array.isArray(e.tags) ? e.tags.map(String) : [],
        keptBy: Array.isArray(e.keptBy) ? e.keptBy.map(String) : [],
        metrics: Object.fromEntries(Object.entries(e.metrics && typeof e.metrics === 'object' ? e.metrics : {}).filter(([, v]) => finite(v))),
      }))
      .sort((a, b) => a.step - b.step),
  }));
}

/** Where each run's steps lie on the lineage's x axis. A fine-tune that continues the parent's step numbering
 * is drawn at its own steps; one that restarts counting is shifted to begin at the checkpoint it started from. */
function layout(runs: ReportRun[]): { offsets: number[]; boundaries: Boundary[] } {
  const offsets: number[] = [];
  const boundaries: Boundary[] = [];
  runs.forEach((run, i) => {
    const link = i > 0 ? crossRunParent(run.entries) : null;
    if (i === 0 || !link) {
      offsets.push(i === 0 ? 0 : offsets[i - 1]!);
      return;
    }
    const parentRun = runs[i - 1]!;
    const parentMax = parentRun.entries.length ? parentRun.entries[parentRun.entries.length - 1]!.step : 0;
    const branch = finite(link.step) ? link.step : parentMax;
    const childMin = run.entries.length ? run.entries[0]!.step : branch + 1;
    const offset = childMin > branch ? offsets[i - 1]! : offsets[i - 1]! + branch;
    offsets.push(offset);
    boundaries.push({ run: i, x: offsets[i - 1]! + branch, fromRun: i - 1, parent: link });
  });
  return { offsets, boundaries };
}

/** Resumes are not recorded in a manifest; a pause between two saves of one run much longer than its usual
 * spacing (10x the median and at least 5 minutes) is marked as a likely stop and resume. */
function inferResumes(runs: ReportRun[], offsets: number[]): Resume[] {
  const out: Resume[] = [];
  runs.forEach((run, i) => {
    if (run.resumes) {
      for (const step of run.resumes) out.push({ run: i, x: offsets[i]! + step, gapMs: -1, step });
      return;
    }
    const times = run.entries.map((e) => Date.parse(e.time));
    const gaps: number[] = [];
    for (let k = 1; k < times.length; k++) gaps.push(times[k]! - times[k - 1]!);
    const valid = gaps.filter(finite).sort((a, b) => a - b);
    if (valid.length < 2) return;
    const median = valid[Math.floor(valid.length / 2)]!;
    gaps.forEach((g, k) => {
      if (finite(g) && g > Math.max(10 * median, 5 * 60_000))
        out.push({ run: i, x: offsets[i]! + run.entries[k + 1]!.step, gapMs: g, step: run.entries[k + 1]!.step });
    });
  });
  return out;
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function fmt(n: number): string {
  if (!finite(n)) return '';
  if (Number.isInteger(n) && Math.abs(n) < 1e9) return String(n);
  const a = Math.abs(n);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? n.toExponential(3) : String(Number(n.toPrecision(4)));
}

function runLabel(dir: string): string {
  return path.basename(dir) || dir;
}

const W = 960;
const PANEL_H = 230;
const M = { left: 72, right: 24, top: 34, bottom: 40 };

function renderPanel(
  metric: string,
  color: string,
  points: Point[],
  runs: ReportRun[],
  boundaries: Boundary[],
  resumes: Resume[],
  xs: { lo: number; hi: number },
  top: number,
): string {
  const ys = points.map((p) => p.y);
  let ylo = Math.min(...ys);
  let yhi = Math.max(...ys);
  if (ylo === yhi) {
    ylo -= Math.abs(ylo) * 0.1 || 1;
    yhi += Math.abs(yhi) * 0.1 || 1;
  }
  const pad = (yhi - ylo) * 0.08;
  ylo -= pad;
  yhi += pad;
  const iw = W - M.left - M.right;
  const ih = PANEL_H - M.top - M.bottom;
  const X = (x: number) => M.left + (xs.hi > xs.lo ? ((x - xs.lo) / (xs.hi - xs.lo)) * iw : iw / 2);
  const Y = (y: number) => top + M.top + ih - ((y - ylo) / (yhi - ylo)) * ih;
  const r = (n: number) => n.toFixed(2);
  const m = escapeHtml(metric);
  const parts: string[] = [];
  parts.push(`<g class="panel" data-metric="${m}">`);
  parts.push(`<rect class="plot-area" x="${M.left}" y="${top + M.top}" width="${iw}" height="${ih}" fill="#fafafa" stroke="#ccc"/>`);
  parts.push(`<text class="panel-title" x="${M.left}" y="${top + M.top - 12}" font-size="14" font-weight="bold" fill="${color}">${m}</text>`);
  for (const t of niceTicks(ylo, yhi)) {
    parts.push(`<line x1="${M.left}" x2="${M.left + iw}" y1="${r(Y(t))}" y2="${r(Y(t))}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${M.left - 6}" y="${r(Y(t) + 4)}" font-size="11" text-anchor="end" fill="#444">${escapeHtml(fmt(t))}</text>`);
  }
  for (const t of niceTicks(xs.lo, xs.hi, 8)) {
    parts.push(`<line x1="${r(X(t))}" x2="${r(X(t))}" y1="${top + M.top + ih}" y2="${top + M.top + ih + 4}" stroke="#444"/>`);
    parts.push(`<text x="${r(X(t))}" y="${top + M.top + ih + 16}" font-size="11" text-anchor="middle" fill="#444">${escapeHtml(fmt(t))}</text>`);
  }
  parts.push(`<text x="${M.left + iw / 2}" y="${top + PANEL_H - 6}" font-size="11" text-anchor="middle" fill="#444">step (across the lineage)</text>`);
  for (const b of boundaries) {
    const bx = r(X(b.x));
    const label = `fine-tune: ${runLabel(runs[b.run]!.dir)}`;
    parts.push(
      `<g class="finetune-boundary" data-run="${b.run}"><title>${escapeHtml(`${runs[b.run]!.dir} starts from ${b.parent.run} at step ${b.parent.step ?? '?'}${b.parent.contentId ? ` (content ${b.parent.contentId})` : ''}`)}</title>` +
        `<line x1="${bx}" x2="${bx}" y1="${top + M.top}" y2="${top + M.top + ih}" stroke="#b8860b" stroke-width="2" stroke-dasharray="6 4"/>` +
        `<path d="M${bx} ${top + M.top} l-6 -9 h12 z" fill="#b8860b"/>` +
        `<text x="${r(X(b.x) + 5)}" y="${top + M.top + 12}" font-size="11" fill="#8b6508">${escapeHtml(label)}</text></g>`,
    );
  }
  for (const z of resumes) {
    const zx = r(X(z.x));
    const recorded = z.gapMs < 0;
    parts.push(
      `<g class="resume-marker${recorded ? ' resume-recorded' : ''}" data-run="${z.run}"><title>${escapeHtml(recorded ? `resumed from step ${z.step}` : `a ${Math.round(z.gapMs / 60000)} min pause before step ${z.step}: likely stopped and resumed`)}</title>` +
        `<line x1="${zx}" x2="${zx}" y1="${top + M.top}" y2="${top + M.top + ih}" stroke="#888" stroke-dasharray="2 3"/>` +
        `<text x="${r(X(z.x) + 4)}" y="${top + M.top + ih - 6}" font-size="10" fill="#666">${recorded ? 'resumed' : 'resumed?'}</text></g>`,
    );
  }
  // One line per run (a fine-tune is not joined to its parent's later checkpoints), plus a dashed connector
  // from the checkpoint a fine-tune started from to its first point.
  for (let i = 0; i < runs.length; i++) {
    const own = points.filter((p) => p.run === i);
    if (own.length > 1) {
      parts.push(
        `<polyline class="series-line" data-run="${i}" fill="none" stroke="${color}" stroke-width="2" points="${own.map((p) => `${r(X(p.x))},${r(Y(p.y))}`).join(' ')}"/>`,
      );
    }
    const b = boundaries.find((q) => q.run === i);
    if (b && own.length) {
      const from = points.find((p) => p.run === b.fromRun && p.step === b.parent.step);
      if (from)
        parts.push(
          `<line class="finetune-connector" x1="${r(X(from.x))}" y1="${r(Y(from.y))}" x2="${r(X(own[0]!.x))}" y2="${r(Y(own[0]!.y))}" stroke="${color}" stroke-width="1.5" stroke-dasharray="4 3"/>`,
        );
    }
  }
  for (const p of points) {
    const first = boundaries.some((b) => b.run === p.run) && p.index === 0;
    const gone = runs[p.run]!.removed?.includes(p.entry.file) ?? false;
    const title = `${runLabel(runs[p.run]!.dir)} step ${p.step}: ${metric} = ${fmt(p.y)}${p.entry.tags.length ? ` [${p.entry.tags.join(', ')}]` : ''}${gone ? ' (checkpoint removed since)' : ''}`;
    parts.push(
      `<circle class="pt${first ? ' pt-finetune-start' : ''}${gone ? ' pt-removed' : ''}" data-metric="${m}" data-run="${p.run}" data-step="${p.step}" cx="${r(X(p.x))}" cy="${r(Y(p.y))}" r="${first ? 6 : gone ? 3 : 4}" fill="${first || gone ? '#fff' : color}" stroke="${color}" stroke-width="${gone ? 1 : 2}"><title>${escapeHtml(title)}</title></circle>`,
    );
    if (p.entry.tags.length) {
      const tx = X(p.x);
      const ty = Y(p.y) - 12;
      parts.push(
        `<g class="tag-marker" data-metric="${m}" data-step="${p.step}"><path d="M${r(tx)} ${r(ty - 5)} l5 5 l-5 5 l-5 -5 z" fill="#000"/>` +
          (tx > W - M.right - 160
            ? `<text x="${r(tx - 8)}" y="${r(ty + 4)}" font-size="11" text-anchor="end" fill="#000">${escapeHtml(p.entry.tags.join(', '))}</text></g>`
            : `<text x="${r(tx + 8)}" y="${r(ty + 4)}" font-size="11" fill="#000">${escapeHtml(p.entry.tags.join(', '))}</text></g>`),
      );
    }
  }
  parts.push('</g>');
  return parts.join('\n');
}

/** The report page for a lineage (oldest run first): self-contained HTML with no script and no external load. */
export function renderReport(runsIn: ReportRun[], options: RenderOptions = {}): string {
  const runs = clean(Array.isArray(runsIn) ? runsIn : []);
  const warnings = (options.warnings ?? []).map(String);
  const { offsets, boundaries } = layout(runs);
  const resumes = inferResumes(runs, offsets);
  const metrics = [...new Set(runs.flatMap((r) => r.entries.flatMap((e) => Object.keys(e.metrics))))].sort();
  const all = runs.flatMap((r, i) => r.entries.map((e) => offsets[i]! + e.step));
  const bx = boundaries.map((b) => b.x);
  const xs = { lo: Math.min(...all, ...bx), hi: Math.max(...all, ...bx) };
  if (!all.length) {
    xs.lo = 0;
    xs.hi = 1;
  }
  const total = runs.reduce((n, r) => n + r.entries.length, 0);
  const removedCount = runs.reduce((n, r) => n + (r.removed?.length ?? 0), 0);

  const panels = metrics.map((metric, k) => {
    const points: Point[] = [];
    runs.forEach((run, i) =>
      run.entries.forEach((e, index) => {
        const y = e.metrics[metric];
        if (finite(y)) points.push({ run: i, index, step: e.step, x: offsets[i]! + e.step, y, entry: e });
      }),
    );
    return renderPanel(metric, COLORS[k % COLORS.length]!, points, runs, boundaries, resumes, xs, k * PANEL_H);
  });
  const svgH = Math.max(1, metrics.length) * PANEL_H;
  const plot = metrics.length
    ? `<svg id="plot" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${svgH}" viewBox="0 0 ${W} ${svgH}" role="img" aria-label="metrics per step">\n${panels.join('\n')}\n</svg>`
    : `<p id="plot" class="empty">No checkpoint in this lineage records a metric${total ? '' : ' (no checkpoints found)'}.</p>`;

  const lineage = runs
    .map((r, i) => {
      const b = boundaries.find((q) => q.run === i);
      return (
        `<li data-run="${i}"><code>${escapeHtml(r.dir)}</code>: ${r.entries.length} checkpoint${r.entries.length === 1 ? '' : 's'}` +
        (r.entries.length ? `, steps ${r.entries[0]!.step}–${r.entries[r.entries.length - 1]!.step}` : '') +
        (b
          ? `, fine-tuned from step ${escapeHtml(b.parent.step ?? '?')}${b.parent.contentId ? ` (content <code>${escapeHtml(b.parent.contentId)}</code>)` : ''} of <code>${escapeHtml(b.parent.run)}</code>`
          : '') +
        (offsets[i] ? `; drawn at step + ${offsets[i]}` : '') +
        '</li>'
      );
    })
    .join('\n');

  const rows = runs
    .flatMap((r, i) =>
      r.entries.map((e, index) => {
        const ptrs = Object.entries(r.pointers ?? {})
          .filter(([, s]) => s === e.step)
          .map(([n]) => n);
        const first = boundaries.some((b) => b.run === i) && index === 0;
        const parent = e.parent
          ? [e.parent.run !== undefined ? `run ${e.parent.run}` : '', e.parent.step !== undefined ? `step ${e.parent.step}` : '', e.parent.contentId ?? '']
              .filter(Boolean)
              .join(', ')
          : '';
        const gone = r.removed?.includes(e.file) ?? false;
        return (
          `<tr class="ckpt${first ? ' finetune-start' : ''}${gone ? ' removed' : ''}" data-run="${i}" data-step="${e.step}">` +
          `<td>${escapeHtml(runLabel(r.dir))}</td><td class="num">${e.step}</td><td>${escapeHtml(e.time)}</td><td class="num">${finite(e.bytes) ? e.bytes : ''}</td>` +
          metrics.map((m) => `<td class="num">${escapeHtml(fmt(e.metrics[m] as number))}</td>`).join('') +
          `<td><code>${escapeHtml(e.contentId ?? '')}</code></td><td>${escapeHtml(parent)}</td>` +
          `<td class="tags">${e.tags.map((t) => `<span class="tag">${escapeHtml(t)}</span>`).join(' ')}</td>` +
          `<td>${escapeHtml([...ptrs.filter((n) => !e.keptBy.includes(`pointer ${n}`)), ...e.keptBy].join(', '))}</td><td><code>${escapeHtml(e.file)}</code>${gone ? ' (removed)' : ''}</td></tr>`
        );
      }),
    )
    .join('\n');

  const data = { version: 1, runs: runs.map((r, i) => ({ dir: r.dir, offset: offsets[i], pointers: r.pointers, entries: r.entries })), warnings };
  const title = options.title ?? 'ckptio report';
  const generatedAt = options.generatedAt ?? new Date().toISOString();
  const legend = metrics
    .map((m, k) => `<span class="key"><span class="swatch" style="background:${COLORS[k % COLORS.length]}"></span>${escapeHtml(m)}</span>`)
    .join(' ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>
body { font: 14px/1.4 "DejaVu Sans", Arial, Helvetica, sans-serif; margin: 20px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; }
.warnings { color: #8a1f11; background: #fdecea; padding: 6px 10px; }
.legend { margin: 8px 0; }
.key { margin-right: 14px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
.marks { color: #555; font-size: 12px; }
table { border-collapse: collapse; margin-top: 16px; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.finetune-start td { border-top: 2px solid #b8860b; }
tr.removed td { color: #888; }
.tag { background: #222; color: #fff; border-radius: 3px; padding: 0 4px; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<ol class="lineage">
${lineage}
</ol>
${warnings.length ? `<ul class="warnings">${warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>` : ''}
<div class="legend">${legend}</div>
<div class="marks">● a checkpoint &nbsp; small ○ a save whose checkpoint retention has removed since &nbsp; ○ the first checkpoint of a fine-tune &nbsp; ▼ dashed line: a fine-tune starts from its parent's checkpoint &nbsp; ◆ a tag &nbsp; dotted line: a resume (recorded, or a long pause: likely a resume)</div>
${plot}
<table id="checkpoints">
<thead><tr><th>run</th><th>step</th><th>time</th><th>bytes</th>${metrics.map((m) => `<th>${escapeHtml(m)}</th>`).join('')}<th>content id</th><th>parent</th><th>tags</th><th>pointers, kept by</th><th>file</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
<p class="marks">${total} save${total === 1 ? '' : 's'} in ${runs.length} run${runs.length === 1 ? '' : 's'}, ${removedCount} of their checkpoints removed since; generated ${escapeHtml(generatedAt)} by ckptio.</p>
<script type="application/json" id="ckptio-report-data">${jsonForHtml(data)}</script>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------------------------
// PNG (headless Chromium)

/** The small part of playwright-core used here (typed locally: the package is optional). */
interface PwPage {
  setContent(html: string, opts?: { waitUntil?: 'load' }): Promise<void>;
  route(url: string, handler: (route: { abort(): Promise<void> }) => Promise<void>): Promise<void>;
  screenshot(opts: { path?: string; fullPage?: boolean; type?: 'png' }): Promise<Buffer>;
}
interface PwBrowser {
  newContext(opts?: {
    javaScriptEnabled?: boolean;
    viewport?: { width: number; height: number };
    deviceScaleFactor?: number;
    offline?: boolean;
  }): Promise<{ newPage(): Promise<PwPage> }>;
  close(): Promise<void>;
}
interface PlaywrightCore {
  chromium: { launch(opts: { executablePath: string; headless?: boolean; args?: string[]; timeout?: number }): Promise<PwBrowser> };
}

export interface PngOptions {
  /** The Chromium binary (default: $CKPTIO_CHROMIUM, else /usr/bin/chromium). */
  executablePath?: string;
  /** Viewport width in CSS pixels (default 1000). */
  width?: number;
  timeoutMs?: number;
}

/** The Chromium renderPng would use, or null with the reason it cannot. */
export function findChromium(executablePath?: string): { path: string } | { path: null; reason: string } {
  const p = executablePath ?? process.env.CKPTIO_CHROMIUM ?? DEFAULT_CHROMIUM;
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return { path: p };
  } catch {
    return { path: null, reason: `no Chromium at ${p} (apt-get install chromium, or set CKPTIO_CHROMIUM)` };
  }
}

/** Screenshots the report page (the whole page) into a PNG at outPath with headless Chromium driven by
 * playwright-core. JavaScript is off and every request is aborted: the page needs neither. Needs the optional
 * package playwright-core and a Chromium binary (Debian: apt-get install chromium); never downloads a browser. */
export async function renderPng(html: string, outPath: string, options: PngOptions = {}): Promise<{ path: string; bytes: number }> {
  const pw = requirePeer<PlaywrightCore>(BROWSER_PACKAGE, 'the PNG of ckptio report');
  const found = findChromium(options.executablePath);
  if (found.path === null) throw new CheckpointError(`the PNG of ckptio report needs Chromium: ${found.reason}`, { code: 'ECKPT_MISSING_PACKAGE' });
  const browser = await pw.chromium.launch({
    executablePath: found.path,
    headless: true,
    timeout: options.timeoutMs ?? 60_000,
    args: ['--disable-gpu', '--no-first-run'],
  });
  try {
    const context = await browser.newContext({
      javaScriptEnabled: false,
      offline: true,
      viewport: { width: options.width ?? 1000, height: 800 },
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    await page.route('**/*', (route) => route.abort());
    await page.setContent(html, { waitUntil: 'load' });
    const png = await page.screenshot({ fullPage: true, type: 'png' });
    await fs.promises.writeFile(outPath, png);
    return { path: path.resolve(outPath), bytes: png.length };
  } finally {
    await browser.close();
  }
}

/** What `ckptio report DIR --out report.html [--png report.png]` does: reads the lineage, writes the page and,
 * when asked, its PNG. The CLI prints the result and the warnings. */
export async function reportCommand(
  dir: string,
  opts: { out: string; png?: string; chromium?: string },
): Promise<{ html: string; png: string | null; runs: number; checkpoints: number; warnings: string[] }> {
  const built = await buildReport(dir);
  await fs.promises.writeFile(opts.out, built.html);
  let png: string | null = null;
  if (opts.png !== undefined) png = (await renderPng(built.html, opts.png, opts.chromium !== undefined ? { executablePath: opts.chromium } : {})).path;
  return {
    html: path.resolve(opts.out),
    png,
    runs: built.runs.length,
    checkpoints: built.runs.reduce((n, r) => n + r.entries.length, 0),
    warnings: built.warnings,
  };
}
