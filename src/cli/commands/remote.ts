/** The CLI on the remote tier: `ckptio ls s3://…` (committed checkpoints, and what is not committed),
 * `ckptio verify s3://…` (each one downloaded and checked against its own digests) and `ckptio pull s3://… DIR`
 * (the newest valid one, or --step N, with what it references, into a local directory). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointError, toCheckpointError } from '../../binding/errors';
import { ensureDirectory, LocalStore } from '../../store/local';
import { S3Objects } from '../../store/remote/s3';
import { parseRemoteUrl } from '../../store/remote/url';
import { downloadCheckpoint, listCommitted, listRemoteTags, RemoteCommit } from '../../checkpoint/node/remote-run';
import { EXIT, formatBytes, out, printJson, safe, table } from './output';

function open(url: string): S3Objects {
  return new S3Objects(parseRemoteUrl(url));
}

export async function remoteLs(url: string, o: { json?: boolean }): Promise<void> {
  const objects = open(url);
  try {
    const warnings: string[] = [];
    const committed = await listCommitted(objects, (m) => warnings.push(m));
    const tags = await listRemoteTags(objects, (m) => warnings.push(m));
    const tagsOf = (file: string) => [...tags].filter(([, f]) => f === file).map(([t]) => t);
    if (o.json) {
      printJson({
        remote: objects.location.url,
        checkpoints: [...committed].reverse().map((c) => ({
          step: c.step,
          file: c.file,
          bytes: c.bytes,
          time: c.time,
          key: `${objects.location.url}/${c.file}~${c.id}`,
          tags: tagsOf(c.file),
          refs: c.refs,
        })),
        warnings,
      });
      return;
    }
    for (const w of warnings) process.stderr.write(`warning: ${safe(w)}\n`);
    if (!committed.length) {
      out(`no committed checkpoint in ${objects.location.url}`);
      return;
    }
    for (const line of table(
      ['STEP', 'TIME', 'SIZE', 'TAGS'],
      [...committed].reverse().map((c) => [String(c.step), c.time, formatBytes(c.bytes), tagsOf(c.file).map(safe).join(',') || '-']),
    ))
      out(line);
  } finally {
    objects.destroy();
  }
}

/** Downloads each committed checkpoint to a temporary directory and verifies it; exit 1 when any is bad. */
export async function remoteVerify(url: string, o: { json?: boolean }): Promise<void> {
  const objects = open(url);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-verify-'));
  try {
    const results: { step: number; file: string; ok: boolean; bytes: number; code?: string; reason?: string }[] = [];
    for (const c of await listCommitted(objects, (m) => results.push({ step: -1, file: m, ok: false, bytes: 0, code: 'ECKPT_FORMAT', reason: m }))) {
      try {
        const placed = await downloadCheckpoint(objects, c, scratch);
        fs.rmSync(placed, { force: true });
        results.push({ step: c.step, file: c.file, ok: true, bytes: c.bytes });
      } catch (err) {
        const e = toCheckpointError(err);
        results.push({ step: c.step, file: c.file, ok: false, bytes: c.bytes, code: e.code, reason: e.message });
      }
    }
    if (o.json) printJson({ remote: objects.location.url, ok: results.every((r) => r.ok), checks: results });
    else for (const r of results) out(r.ok ? `ok   ${r.file} (${r.bytes} bytes)` : `FAIL ${safe(r.file)}: ${r.code}: ${safe(r.reason)}`);
    if (!results.every((r) => r.ok)) process.exitCode = EXIT.bad;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
    objects.destroy();
  }
}

/** The newest committed checkpoint that verifies (or the one of --step), with the checkpoints it references. */
export async function remotePull(url: string, dir: string, o: { step?: number; json?: boolean }): Promise<void> {
  const objects = open(url);
  let lock: { release(): void } | null = null;
  try {
    await ensureDirectory(dir);
    // The directory's writer lock: a trainer using it is not raced (ECKPT_LOCKED names it).
    lock = await new LocalStore(dir).lock();
    const warnings: string[] = [];
    const committed = await listCommitted(objects, (m) => warnings.push(m));
    const byFile = new Map(committed.map((c) => [c.file, c]));
    const candidates = o.step === undefined ? committed : committed.filter((c) => c.step === o.step);
    if (!candidates.length)
      throw new CheckpointError(
        o.step === undefined ? `no committed checkpoint in ${objects.location.url}` : `no committed checkpoint for step ${o.step} in ${objects.location.url}`,
        { code: 'ENOENT', path: objects.location.url },
      );
    let pulled: { commit: RemoteCommit; files: string[] } | null = null;
    for (const c of candidates) {
      try {
        const files: string[] = [];
        for (const ref of c.refs) {
          const held = byFile.get(ref);
          if (!held) throw new CheckpointError(`it references ${ref}, which ${objects.location.url} does not hold`, { code: 'ENOENT' });
          files.push(await downloadCheckpoint(objects, held, dir));
        }
        files.push(await downloadCheckpoint(objects, c, dir));
        pulled = { commit: c, files };
        break;
      } catch (err) {
        const e = toCheckpointError(err);
        if (e.code === 'ECKPT_REMOTE') throw e;
        warnings.push(`step ${c.step} is not valid, trying an older one (${e.code}: ${e.message})`);
      }
    }
    if (o.json) printJson({ remote: objects.location.url, step: pulled?.commit.step ?? null, files: pulled?.files ?? [], warnings });
    else {
      for (const w of warnings) process.stderr.write(`warning: ${safe(w)}\n`);
      if (pulled) out(`pulled step ${pulled.commit.step} into ${dir}: ${pulled.files.map((f) => path.basename(f)).join(', ')}`);
    }
    if (!pulled) process.exitCode = EXIT.bad;
  } finally {
    lock?.release();
    objects.destroy();
  }
}
