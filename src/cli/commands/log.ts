/** `ckptio log DIR`: the lineage of a run, root first. A run whose first checkpoint was started from another
 * run's (`parent.run`, recorded by a fine-tune) is preceded by that run when its directory exists, so the chain
 * reads baseline -> fine-tune -> fine-tune. The link is checked: the parent's content id must match the
 * checkpoint it names (it may have been pruned or overwritten since). Read-only, no lock. The walk and its path
 * rule are checkpoint/node/lineage.ts's. */
import * as path from 'node:path';
import { LinkFound, walkLineage } from '../../checkpoint/node/lineage';
import type { ManifestEntry, Parent } from '../../checkpoint/manifest';
import { readRun } from '../../checkpoint/run-reader';
import type { HistoryEvent } from '../../checkpoint/history';
import { formatMetrics, out, printJson, safe, table } from './output';

interface RunLog {
  dir: string;
  /** The link to the run this one continues, when it has one. */
  from: (Parent & { found: LinkFound; resolved: string | null }) | null;
  checkpoints: {
    step: number;
    file: string;
    time: string;
    metrics: Record<string, number>;
    tags: string[];
    pointers: string[];
    contentId: string | null;
    parent: Parent | null;
    origin: Parent | null;
    valid: boolean;
  }[];
  /** Every save and resume of the run (history.ts), each save marked by whether its checkpoint still exists;
   * null for a run without a history. */
  history: (HistoryEvent & { exists: boolean })[] | null;
}

async function readLog(dir: string): Promise<RunLog> {
  const run = await readRun(dir);
  const checkpoints = run.checkpoints
    .filter((c) => c.entry)
    .map((c) => {
      const e = c.entry as ManifestEntry;
      return {
        step: e.step,
        file: e.file,
        time: e.time,
        metrics: e.metrics,
        tags: c.tags,
        pointers: c.pointers,
        contentId: e.contentId,
        parent: e.parent,
        origin: e.origin ?? null,
        valid: c.present && c.problem === null,
      };
    });
  const present = new Set(run.checkpoints.filter((c) => c.present).map((c) => c.file));
  const history = run.history?.map((e) => ({ ...e, exists: e.event === 'save' && present.has(e.file) })) ?? null;
  return { dir: run.dir, from: null, checkpoints, history };
}

export async function lineage(dir: string): Promise<RunLog[]> {
  const chain = await walkLineage(dir, readLog, (r) => r.checkpoints);
  return chain.map((c) => ({ ...c.run, from: c.from }));
}

const FOUND_TEXT: Record<string, string> = {
  ok: '',
  'missing-run': ' (that run directory is not found)',
  'missing-checkpoint': ' (that checkpoint is no longer there)',
  'content-differs': ' (WARNING: that checkpoint has different content now)',
  cycle: ' (a cycle: not followed)',
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
    if (!r.checkpoints.length && !r.history?.length) {
      out('   (no checkpoints)');
      return;
    }
    const date = (t: string) => safe(t.replace(/\.\d+Z$/, 'Z'));
    const row = (c: RunLog['checkpoints'][number], state: string) => [
      `   ${c.step}`,
      date(c.time),
      formatMetrics(c.metrics),
      c.tags.map(safe).join(',') || '-',
      c.pointers.map(safe).join(',') || '-',
      c.parent?.run !== undefined
        ? `<- ${safe(path.basename(c.parent.run))}@${c.parent.step ?? '?'}`
        : c.parent?.step !== undefined
          ? `<- ${c.parent.step}`
          : '-',
      c.contentId ? safe(c.contentId) : '-',
      state,
    ];
    // With a history, the whole run: every save (its checkpoint kept or removed since) and every resume.
    const rows: string[][] = [];
    if (r.history) {
      const listed = new Set<string>();
      for (const e of r.history) {
        if (e.event === 'resume') {
          rows.push([`   ${e.step}`, date(e.time), `resumed from step ${e.step}`, '-', '-', '-', '-', 'resume']);
          continue;
        }
        const c = r.checkpoints.find((k) => k.file === e.file);
        if (e.exists && c && !listed.has(e.file)) {
          listed.add(e.file);
          rows.push(row(c, c.valid ? 'kept' : 'INVALID'));
        } else rows.push([`   ${e.step}`, date(e.time), formatMetrics(e.metrics), '-', '-', '-', '-', e.exists ? 'replaced' : 'removed']);
      }
      for (const c of r.checkpoints) if (!listed.has(c.file)) rows.push(row(c, c.valid ? 'kept' : 'INVALID'));
      const saves = r.history.filter((e) => e.event === 'save').length;
      const resumes = r.history.length - saves;
      out(
        `   ${saves} save${saves === 1 ? '' : 's'}, ${resumes} resume${resumes === 1 ? '' : 's'}, ${r.checkpoints.filter((c) => c.valid).length} checkpoint(s) kept`,
      );
    } else {
      for (const c of r.checkpoints) rows.push(row(c, c.valid ? 'kept' : 'INVALID'));
    }
    for (const l of table(['   STEP', 'DATE', 'METRICS', 'TAGS', 'POINTERS', 'PARENT', 'CONTENT', 'STATE'], rows)) out(l);
  });
}
