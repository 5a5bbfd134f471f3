/** `ckptio ls DIR`: every checkpoint of a run with its step, time, size, metrics, validity, the pointers and
 * tags naming it and why retention keeps it. Read-only: never takes the run lock. */
import { formatBytes, formatMetrics, out, printJson, safe, table } from './output';
import { readRun } from './run-view';

export async function ls(dir: string, o: { json?: boolean; verify?: boolean }): Promise<void> {
  const run = await readRun(dir, { verify: o.verify ?? false });
  const rows = run.checkpoints.map((c) => ({
    step: c.step,
    file: c.file,
    time: c.entry?.time ?? null,
    /** Bytes of tensor data (the manifest's figure), and of the file (header's figure) when present. */
    bytes: c.entry?.bytes ?? null,
    fileBytes: c.header?.bytes ?? null,
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
      pointers: run.pointers.map((p) => ({ name: p.name, tag: p.tag, step: p.step, file: p.file, problem: p.problem })),
    });
    return;
  }
  out(`${safe(run.dir)}: ${rows.length} checkpoint(s)${run.manifest ? '' : run.manifestProblem ? ', manifest invalid (recovered from headers)' : ', no manifest (recovered from headers)'}`);
  if (rows.length) {
    const lines = table(['STEP', 'TIME', 'SIZE', 'VALID', 'METRICS', 'POINTERS', 'TAGS', 'KEPT BY'], rows.map((r) => [
      String(r.step),
      r.time ? safe(r.time.replace(/\.\d+Z$/, 'Z')) : '-',
      r.fileBytes !== null ? formatBytes(r.fileBytes) : r.bytes !== null ? formatBytes(r.bytes) : '-',
      !r.present ? 'MISSING' : r.problem ? `NO (${safe(r.problem.code)})` : r.verified ? 'verified' : 'ok',
      formatMetrics(r.metrics),
      r.pointers.map(safe).join(',') || '-',
      r.tags.map(safe).join(',') || '-',
      (r.keptBy.length ? r.keptBy.map(safe).join(', ') : '-') + (r.inManifest ? '' : ' (not in manifest)'),
    ]));
    for (const l of lines) out(l);
  }
  for (const p of run.pointers) if (p.problem) out(`warning: ${safe(p.name)}: ${safe(p.problem.code)}: ${safe(p.problem.message)}`);
  for (const r of rows) if (r.problem && r.present) out(`warning: ${safe(r.file)}: ${safe(r.problem.code)}: ${safe(r.problem.message)}`);
}
