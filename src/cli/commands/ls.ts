/** `ckptio ls DIR`: every checkpoint (or sharded step) of a run with its step, time, size, metrics, validity, the pointers and
 * tags naming it and why retention keeps it. Read-only: never takes the run lock. The validity column says what
 * was checked: HEADER (the header parses and fits the file; no tensor data read) or, with --verify, VERIFIED (every
 * digest); SIZE is the file's size on disk. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatBytes, formatMetrics, out, printJson, safe, table } from './output';
import { readRun } from '../../checkpoint/run-reader';

/** The file's real size (a truncated file shows its truncated size), or null when it cannot be read. */
async function sizeOnDisk(dir: string, file: string): Promise<number | null> {
  try {
    return (await fs.promises.lstat(path.join(dir, file))).size;
  } catch {
    return null;
  }
}

export async function ls(dir: string, o: { json?: boolean; verify?: boolean }): Promise<void> {
  const run = await readRun(dir, { verify: o.verify ?? false });
  const sizes = await Promise.all(run.checkpoints.map((c) => (c.present ? sizeOnDisk(run.dir, c.file) : Promise.resolve(null))));
  const rows = run.checkpoints.map((c, i) => ({
    step: c.step,
    file: c.file,
    time: c.entry?.time ?? null,
    /** Bytes of tensor data (the manifest's figure), and of the file (header's figure) when present. */
    bytes: c.entry?.bytes ?? null,
    fileBytes: sizes[i] ?? null,
    /** What was checked: the header alone (no tensor data read), or every digest (--verify). */
    checked: o.verify ? 'every digest' : 'header',
    metrics: c.entry?.metrics ?? {},
    valid: c.present && c.problem === null,
    verified: o.verify ? c.verified && c.problem === null : null,
    problem: c.problem,
    present: c.present,
    inManifest: c.inManifest,
    pointers: c.pointers,
    tags: c.tags,
    keptBy: c.entry?.keptBy ?? [],
    contentId: c.entry?.contentId ?? null,
    parent: c.entry?.parent ?? null,
  }));
  if (o.json) {
    printJson({
      dir: run.dir,
      manifest: run.manifest ? 'ok' : run.manifestProblem ? 'invalid' : 'missing',
      ...(run.manifestProblem ? { manifestProblem: run.manifestProblem } : {}),
      checkpoints: rows,
      steps: run.steps.map((s) => ({ ...s, checked: o.verify ? 'every digest' : 'header' })),
      pointers: run.pointers.map((p) => ({ name: p.name, tag: p.tag, step: p.step, file: p.file, problem: p.problem })),
    });
    return;
  }
  if (rows.length || !run.steps.length)
    out(
      `${safe(run.dir)}: ${rows.length} checkpoint(s)${run.manifest ? '' : run.manifestProblem ? ', manifest invalid (recovered from headers)' : ', no manifest (recovered from headers)'}`,
    );
  if (rows.length) {
    const lines = table(
      ['STEP', 'TIME', 'SIZE', o.verify ? 'VERIFIED' : 'HEADER', 'METRICS', 'POINTERS', 'TAGS', 'KEPT BY'],
      rows.map((r) => [
        String(r.step),
        r.time ? safe(r.time.replace(/\.\d+Z$/, 'Z')) : '-',
        r.fileBytes !== null ? formatBytes(r.fileBytes) : '-',
        !r.present ? 'MISSING' : r.problem ? `NO (${safe(r.problem.code)})` : 'ok',
        formatMetrics(r.metrics),
        r.pointers.map(safe).join(',') || '-',
        r.tags.map(safe).join(',') || '-',
        (r.keptBy.length ? r.keptBy.map(safe).join(', ') : '-') + (r.inManifest ? '' : ' (not in manifest)'),
      ]),
    );
    for (const l of lines) out(l);
  }
  if (run.steps.length) {
    // A sharded run (docs/sharding.md): one row per committed step, its shards checked together.
    out(`${run.steps.length} sharded step(s)`);
    const lines = table(
      ['STEP', 'TIME', 'RANKS', 'SIZE', o.verify ? 'VERIFIED' : 'HEADERS', 'POINTERS'],
      run.steps.map((s) => [
        String(s.step),
        s.time ? safe(s.time.replace(/\.\d+Z$/, 'Z')) : '-',
        s.worldSize === null ? '-' : String(s.worldSize),
        formatBytes(s.shards.reduce((n, r) => n + r.bytes, 0)),
        s.problem ? `NO (${safe(s.problem.code)})` : 'ok',
        s.pointers.map(safe).join(',') || '-',
      ]),
    );
    for (const l of lines) out(l);
    for (const s of run.steps) if (s.problem) out(`warning: ${safe(s.file)}: ${safe(s.problem.code)}: ${safe(s.problem.message)}`);
  }
  for (const p of run.pointers) if (p.problem) out(`warning: ${safe(p.name)}: ${safe(p.problem.code)}: ${safe(p.problem.message)}`);
  for (const r of rows) if (r.problem && r.present) out(`warning: ${safe(r.file)}: ${safe(r.problem.code)}: ${safe(r.problem.message)}`);
}
