/** `ckptio verify DIR|FILE`: reads every checkpoint in full (digests checked) and checks the run's record:
 * files the manifest lists but that are missing, pointers and tags that are unreadable or name a missing or
 * invalid file, a corrupt manifest. Names every bad file and why; exit 1 when anything is bad.
 * Text lines: `ok   FILE (N bytes)` and `FAIL NAME: CODE: reason` (scripts parse them). */
import { toCheckpointError } from '../../binding/errors';
import { readCheckpoint } from '../../format/file';
import { EXIT, out, printJson, safe } from './output';
import { isRunDir, readRun } from '../../checkpoint/run-reader';

interface Check {
  name: string;
  kind: 'checkpoint' | 'step' | 'pointer' | 'tag' | 'manifest';
  ok: boolean;
  bytes?: number;
  code?: string;
  reason?: string;
}

export async function verify(target: string, o: { json?: boolean }): Promise<void> {
  const checks: Check[] = [];
  let kind: 'dir' | 'file';
  if (await isRunDir(target)) {
    kind = 'dir';
    const run = await readRun(target, { verify: true });
    if (run.manifestProblem)
      checks.push({ name: 'ckptio-manifest.json', kind: 'manifest', ok: false, code: run.manifestProblem.code, reason: run.manifestProblem.message });
    for (const c of run.checkpoints) {
      checks.push(
        c.problem
          ? { name: c.file, kind: 'checkpoint', ok: false, code: c.problem.code, reason: c.problem.message }
          : { name: c.file, kind: 'checkpoint', ok: true, ...(c.header ? { bytes: c.header.bytes } : {}) },
      );
    }
    // A sharded run's step: its record and every shard of it.
    for (const s of run.steps) {
      const bytes = s.shards.reduce((n, r) => n + r.bytes, 0);
      checks.push(
        s.problem
          ? { name: s.file, kind: 'step', ok: false, code: s.problem.code, reason: s.problem.message }
          : { name: s.file, kind: 'step', ok: true, bytes },
      );
    }
    for (const p of run.pointers) {
      const k = p.tag !== null ? 'tag' : 'pointer';
      checks.push(p.problem ? { name: p.name, kind: k, ok: false, code: p.problem.code, reason: p.problem.message } : { name: p.name, kind: k, ok: true });
    }
  } else {
    kind = 'file';
    try {
      const r = await readCheckpoint(target, { verify: true });
      checks.push({ name: target, kind: 'checkpoint', ok: true, bytes: r.bytes });
    } catch (err) {
      const e = toCheckpointError(err);
      checks.push({ name: target, kind: 'checkpoint', ok: false, code: String(e.code), reason: e.message });
    }
  }
  const bad = checks.filter((c) => !c.ok);
  if (o.json) {
    printJson({ target, kind, ok: bad.length === 0, bad: bad.length, checks });
  } else {
    for (const c of checks) {
      if (c.ok && c.kind === 'checkpoint') out(`ok   ${safe(c.name)} (${c.bytes} bytes)`);
      else if (c.ok && c.kind === 'step') out(`ok   ${safe(c.name)} (every shard, ${c.bytes} bytes)`);
      else if (c.ok) out(`ok   ${safe(c.name)} (${c.kind})`);
      else out(`FAIL ${safe(c.name)}: ${safe(c.code)}: ${safe(c.reason)}`);
    }
    if (kind === 'dir' && !checks.some((c) => c.kind === 'checkpoint' || c.kind === 'step')) out(`no checkpoints in ${safe(target)}`);
    out(bad.length ? `${bad.length} problem(s) found` : 'all ok');
  }
  if (bad.length) process.exitCode = EXIT.bad;
}
