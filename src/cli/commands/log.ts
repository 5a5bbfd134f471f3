/** `ckptio log DIR`: the lineage of a run, root first. A run whose first checkpoint was started from another
 * run's (`parent.run`, recorded by a fine-tune) is preceded by that run when its directory exists, so the chain
 * reads baseline -> fine-tune -> fine-tune. The link is checked: the parent's content id must match the
 * checkpoint it names (it may have been pruned or overwritten since). Read-only, no lock. */
import * as path from 'node:path';
import type { ManifestEntry, Parent } from '../../checkpoint/manifest';
import { formatMetrics, out, printJson, safe, table } from './output';
import { isRunDir, readRun } from './run-view';

/** Deep enough for any real lineage; stops a cycle (a run recorded as its own ancestor). */
const MAX_RUNS = 64;

interface RunLog {
  dir: string;
  /** The link to the run this one continues, when it has one. */
  from: (Parent & { found: 'ok' | 'missing-run' | 'missing-checkpoint' | 'content-differs' | 'cycle' | 'not-followed'; resolved: string | null }) | null;
  checkpoints: { step: number; file: string; time: string; metrics: Record<string, number>; tags: string[]; pointers: string[]; contentId: string | null; parent: Parent | null; origin: Parent | null; valid: boolean }[];
}

async function runExists(dir: string): Promise<boolean> {
  try {
    return await isRunDir(dir);
  } catch {
    return false;
  }
}

/** A recorded parent run path: absolute as written, else relative to the working directory, else to the child run's parent directory. */
async function resolveRun(run: string, childDir: string): Promise<string | null> {
  const candidates = path.isAbsolute(run) ? [run] : [path.resolve(run), path.resolve(path.dirname(childDir), run)];
  for (const c of candidates) if (await runExists(c)) return path.resolve(c);
  return null;
}

async function readLog(dir: string): Promise<RunLog> {
  const run = await readRun(dir);
  const checkpoints = run.checkpoints.filter((c) => c.entry).map((c) => {
    const e = c.entry as ManifestEntry;
    return { step: e.step, file: e.file, time: e.time, metrics: e.metrics, tags: c.tags, pointers: c.pointers, contentId: e.contentId, parent: e.parent, origin: e.origin ?? null, valid: c.present && c.problem === null };
  });
  return { dir: run.dir, from: null, checkpoints };
}

export async function lineage(dir: string): Promise<RunLog[]> {
  const chain: RunLog[] = [await readLog(dir)];
  const seen = new Set([chain[0]!.dir]);
  for (;;) {
    const child = chain[0]!;
    // The link to another run is on the oldest checkpoint that names one (the run's first save).
    const link = child.checkpoints.find((c) => c.parent?.run !== undefined)?.parent ?? child.checkpoints.find((c) => c.origin?.run !== undefined)?.origin;
    if (!link || link.run === undefined) break;
    const resolved = await resolveRun(link.run, child.dir);
    if (resolved === null) { child.from = { ...link, found: 'missing-run', resolved: null }; break; }
    if (seen.has(resolved)) { child.from = { ...link, found: 'cycle', resolved }; break; }
    if (chain.length >= MAX_RUNS) { child.from = { ...link, found: 'not-followed', resolved }; break; }
    const parent = await readLog(resolved);
    const target = link.step !== undefined ? parent.checkpoints.find((c) => c.step === link.step)
      : link.contentId !== undefined ? parent.checkpoints.find((c) => c.contentId === link.contentId) : undefined;
    const found = !target ? 'missing-checkpoint'
      : link.contentId !== undefined && target.contentId !== null && target.contentId !== link.contentId ? 'content-differs' : 'ok';
    child.from = { ...link, found, resolved };
    seen.add(resolved);
    chain.unshift(parent);
  }
  return chain;
}

const FOUND_TEXT: Record<string, string> = {
  'ok': '',
  'missing-run': ' (that run directory is not found)',
  'missing-checkpoint': ' (that checkpoint is no longer there)',
  'content-differs': ' (WARNING: that checkpoint has different content now)',
  'cycle': ' (a cycle: not followed)',
  'not-followed': ' (too deep: not followed)',
};

export async function log(dir: string, o: { json?: boolean }): Promise<void> {
  const chain = await lineage(dir);
  if (o.json) {
    printJson({ runs: chain });
    return;
  }
  chain.forEach((r, i) => {
    if (i > 0) out('');
    out(`${i === 0 ? 'run' : '  -> run'} ${safe(r.dir)}`);
    if (r.from) {
      const id = r.from.contentId ? `, content ${safe(r.from.contentId)}` : '';
      out(`   from ${safe(r.from.resolved ?? r.from.run)} step ${r.from.step ?? '?'}${id}${FOUND_TEXT[r.from.found]}`);
    }
    if (!r.checkpoints.length) { out('   (no checkpoints)'); return; }
    const rows = r.checkpoints.map((c) => [
      `   ${c.step}`, safe(c.time.replace(/\.\d+Z$/, 'Z')), formatMetrics(c.metrics),
      c.tags.map(safe).join(',') || '-', c.pointers.map(safe).join(',') || '-',
      c.parent?.run !== undefined ? `<- ${safe(path.basename(c.parent.run))}@${c.parent.step ?? '?'}` : c.parent?.step !== undefined ? `<- ${c.parent.step}` : '-',
      c.contentId ? safe(c.contentId) : '-',
    ]);
    for (const l of table(['   STEP', 'DATE', 'METRICS', 'TAGS', 'POINTERS', 'PARENT', 'CONTENT'], rows)) out(l);
  });
}
