/** A run in object storage (docs/remote.md). Object stores have no rename, so a checkpoint is made visible by a
 * record written after it:
 *
 *   <file>~<id>          the checkpoint's bytes (a fresh random id per upload: a re-upload never overwrites)
 *   <file>~<id>.commit   the commit record, written last and only if absent (If-None-Match: *)
 *   tag.<name>           a tag, as locally
 *   ckptio.lease         which writer uploads to this prefix, until when
 *
 * A data object without its record is invisible to readers and retention; it is garbage only once no live writer
 * may still be uploading it (the lease has expired, or its holder is a dead process on this host). Everything read
 * from the bucket is untrusted: names are matched against the checkpoint name rule, records are validated. */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, RemoteError } from '../../binding/errors';
import { readCheckpoint } from '../../format/file';
import { syncDirectory } from '../../store/local';
import { S3Objects } from '../../store/remote/s3';
import { parseRemoteUrl } from '../../store/remote/url';
import { stepOf } from '../names';
import { NAME_PATTERN } from '../names';

const COMMIT_FORMAT = 'ckptio.remote-commit';
const RECORD_MAX = 1 << 20;
const DATA_RE = /^(ckpt-\d{10}\.safetensors)~([0-9a-f]{16})$/;
const COMMIT_RE = /^(ckpt-\d{10}\.safetensors)~([0-9a-f]{16})\.commit$/;
const REMOTE_TAG_RE = new RegExp(`^tag\\.(${NAME_PATTERN})$`);
/** Times are untrusted text that reaches terminals: only the ISO form toISOString() writes. */
const ISO_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

export interface RemoteCommit {
  file: string;
  step: number;
  /** The upload's id: the data object is `<file>~<id>`. */
  id: string;
  bytes: number;
  contentId: string | null;
  /** Checkpoints this one references (dedup): uploaded and committed before it. */
  refs: string[];
  time: string;
  writer: string;
}

export function dataName(file: string, id: string): string {
  return `${file}~${id}`;
}

export function commitName(file: string, id: string): string {
  return `${file}~${id}.commit`;
}

function bad(message: string, where: string): CheckpointError {
  return new CheckpointError(message, { code: 'ECKPT_FORMAT', path: where });
}

export function parseCommit(bytes: Uint8Array, name: string, where: string): RemoteCommit {
  const m = COMMIT_RE.exec(name);
  if (!m) throw bad(`${name} is not a commit record name`, where);
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('the commit record is not JSON', where);
  }
  if (!v || typeof v !== 'object' || v.format !== COMMIT_FORMAT || v.version !== 1) throw bad('not a ckptio commit record (format/version)', where);
  if (v.file !== m[1] || v.id !== m[2]) throw bad('the commit record names another object than its key', where);
  if (!Number.isSafeInteger(v.bytes) || (v.bytes as number) < 0) throw bad('the commit record has no valid size', where);
  if (v.contentId !== null && (typeof v.contentId !== 'string' || !/^[0-9a-f]{1,64}$/.test(v.contentId)))
    throw bad('the commit record has no valid content id', where);
  if (!Array.isArray(v.refs) || !v.refs.every((r) => typeof r === 'string' && stepOf(r) !== null)) throw bad('the commit record has invalid references', where);
  if (
    typeof v.time !== 'string' ||
    !ISO_TIME_RE.test(v.time) ||
    Number.isNaN(Date.parse(v.time)) ||
    typeof v.writer !== 'string' ||
    !/^[0-9a-f]{1,64}$/.test(v.writer)
  )
    throw bad('the commit record has no valid time or writer', where);
  return {
    file: m[1]!,
    step: stepOf(m[1]!)!,
    id: m[2]!,
    bytes: v.bytes as number,
    contentId: v.contentId as string | null,
    refs: v.refs as string[],
    time: v.time,
    writer: v.writer,
  };
}

function renderCommit(c: RemoteCommit): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      format: COMMIT_FORMAT,
      version: 1,
      file: c.file,
      id: c.id,
      bytes: c.bytes,
      contentId: c.contentId,
      refs: c.refs,
      time: c.time,
      writer: c.writer,
    }),
  );
}

/** The committed checkpoints, newest step first; for a file uploaded more than once, the newest record. A record
 * whose data object is missing or of another size is left out (with a warning): it is not a checkpoint. */
export async function listCommitted(objects: S3Objects, warn: (m: string) => void): Promise<RemoteCommit[]> {
  const listed = await objects.list();
  const sizes = new Map(listed.filter((o) => DATA_RE.test(o.name)).map((o) => [o.name, o.size]));
  const byFile = new Map<string, RemoteCommit>();
  for (const o of listed) {
    if (!COMMIT_RE.test(o.name)) continue;
    const where = `${objects.location.url}/${o.name}`;
    try {
      const bytes = await objects.getSmall(o.name, RECORD_MAX);
      if (!bytes) continue; // removed since the listing
      const c = parseCommit(bytes, o.name, where);
      if (sizes.get(dataName(c.file, c.id)) !== c.bytes) throw bad(`its data object ${dataName(c.file, c.id)} is missing or not ${c.bytes} bytes`, where);
      const seen = byFile.get(c.file);
      if (!seen || Date.parse(c.time) > Date.parse(seen.time)) byFile.set(c.file, c);
    } catch (err) {
      if (err instanceof RemoteError) throw err;
      warn(`${where} is not a valid commit record and is ignored (${(err as Error).message})`);
    }
  }
  return [...byFile.values()].sort((a, b) => b.step - a.step);
}

/** Remote tags: name -> file. Unreadable ones are ignored with a warning. */
export async function listRemoteTags(objects: S3Objects, warn: (m: string) => void): Promise<Map<string, string>> {
  const tags = new Map<string, string>();
  for (const o of await objects.list()) {
    const m = REMOTE_TAG_RE.exec(o.name);
    if (!m) continue;
    try {
      const bytes = await objects.getSmall(o.name, RECORD_MAX);
      const p = bytes ? (JSON.parse(Buffer.from(bytes).toString('utf8')) as { file?: unknown }) : null;
      if (p && typeof p.file === 'string' && stepOf(p.file) !== null) tags.set(m[1]!, p.file);
    } catch (err) {
      if (err instanceof RemoteError) throw err;
      warn(`${objects.location.url}/${o.name} is not a readable tag and is ignored`);
    }
  }
  return tags;
}

/** Uploads a durable local checkpoint and commits it: the data object, its size read back, then the record. */
export async function replicateFile(
  objects: S3Objects,
  localPath: string,
  meta: { file: string; contentId: string | null; refs: string[]; writer: string },
  onProgress?: (sent: number, total: number) => void,
): Promise<RemoteCommit> {
  const id = randomBytes(8).toString('hex');
  const bytes = await objects.uploadFile(localPath, dataName(meta.file, id), onProgress);
  const commit: RemoteCommit = {
    file: meta.file,
    step: stepOf(meta.file)!,
    id,
    bytes,
    contentId: meta.contentId,
    refs: meta.refs,
    time: new Date().toISOString(),
    writer: meta.writer,
  };
  await objects.putSmall(commitName(meta.file, id), renderCommit(commit), { ifNoneMatch: true });
  return commit;
}

/** Remote retention: keeps the `keep` most recently committed checkpoints (by commit time, not step: a run that
 * went back to an earlier step keeps its new checkpoints), the tagged ones, `protect` (what the caller just
 * committed) and what the kept ones reference; removes the rest, and older uploads of kept files. Each goes
 * record first, then data: a checkpoint is never visible without its bytes. Returns the removed files. */
export async function pruneRemote(objects: S3Objects, keep: number, warn: (m: string) => void, protect: ReadonlySet<string> = new Set()): Promise<string[]> {
  const committed = await listCommitted(objects, warn);
  const tagged = new Set((await listRemoteTags(objects, warn)).values());
  const kept = new Set<string>(protect);
  [...committed]
    .sort((a, b) => Date.parse(b.time) - Date.parse(a.time))
    .forEach((c, i) => {
      if (i < Math.max(1, keep) || tagged.has(c.file)) kept.add(c.file);
    });
  for (const c of committed) if (kept.has(c.file)) for (const r of c.refs) kept.add(r);
  const newest = new Map(committed.map((c) => [c.file, c.id]));
  const removed: string[] = [];
  for (const o of await objects.list()) {
    const m = COMMIT_RE.exec(o.name);
    if (!m) continue;
    const [, file, id] = m;
    if (kept.has(file!) && newest.get(file!) === id) continue;
    await objects.remove(o.name);
    await objects.remove(dataName(file!, id!));
    if (!kept.has(file!)) removed.push(file!);
  }
  return removed;
}

/** Removes what writers whose lease has passed left behind: multipart uploads and data objects without a commit
 * record, started before `before` (ms since the epoch: this writer's start, so nothing of its own). */
export async function cleanOrphans(objects: S3Objects, before: number): Promise<{ uploads: number; objects: number }> {
  let uploads = 0;
  for (const u of await objects.listUploads()) {
    if (u.initiated >= before) continue;
    await objects.abortUpload(u.name, u.uploadId);
    uploads++;
  }
  const listed = await objects.list();
  const records = new Set(listed.filter((o) => COMMIT_RE.test(o.name)).map((o) => o.name));
  let removed = 0;
  for (const o of listed) {
    const m = DATA_RE.exec(o.name);
    if (!m || records.has(commitName(m[1]!, m[2]!)) || o.lastModified >= before) continue;
    await objects.remove(o.name);
    removed++;
  }
  return { uploads, objects: removed };
}

/** Downloads a committed checkpoint into `dir` under its own name: to a temporary name (one the next start
 * removes if this process dies), verified against its own XXH3 digests, fsynced, renamed, the directory fsynced.
 * A checkpoint that does not verify is not placed and the error (ECKPT_CHECKSUM, ...) is thrown. */
export async function downloadCheckpoint(
  objects: S3Objects,
  commit: RemoteCommit,
  dir: string,
  onProgress?: (received: number, total: number) => void,
): Promise<string> {
  if (stepOf(commit.file) === null) throw bad(`${commit.file} is not a checkpoint name`, objects.location.url);
  const target = path.join(dir, commit.file);
  const temp = path.join(dir, `${commit.file}.tmp.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    await objects.downloadFile(dataName(commit.file, commit.id), commit.bytes, temp, onProgress);
    // Reading it back through the native reader checks the header digest and every tensor's XXH3-64; tensors it
    // references elsewhere are not read here (they are downloaded and verified as checkpoints of their own).
    await readCheckpoint(temp, { verify: true });
    await fs.promises.rename(temp, target);
    await syncDirectory(dir);
    return target;
  } catch (err) {
    await fs.promises.unlink(temp).catch(() => {});
    throw err;
  }
}

/** Fills an empty run directory from the remote tier: the newest committed checkpoint that downloads and verifies
 * (with the checkpoints it references), older ones when it does not. A remote that cannot be reached is a warning:
 * the run starts from scratch, as it would with no remote. Returns false when the remote could not be read at all:
 * it may hold this run's checkpoints, which a run started from scratch must not replace there (remote retention
 * keeps the newest commits), so that run does not replicate. */
export async function restoreEmptyRun(
  remote: { url: string; partBytes?: number; concurrency?: number; onProgress?: (p: { step: number; sent: number; total: number }) => void },
  dir: string,
  warn: (m: string) => void,
): Promise<boolean> {
  const objects = new S3Objects(parseRemoteUrl(remote.url), {
    ...(remote.partBytes ? { partBytes: remote.partBytes } : {}),
    ...(remote.concurrency ? { concurrency: remote.concurrency } : {}),
  });
  try {
    let committed: RemoteCommit[];
    try {
      committed = await listCommitted(objects, warn);
    } catch (err) {
      if (err instanceof RemoteError && err.retryable) {
        warn(`${objects.location.url} could not be read (${err.message}); this run starts without it and does not replicate to it`);
        return false;
      }
      warn(`no checkpoint could be listed in ${objects.location.url}; starting without it (${(err as Error).message})`);
      return true;
    }
    const byFile = new Map(committed.map((c) => [c.file, c]));
    for (const c of committed) {
      try {
        for (const ref of c.refs) {
          const held = byFile.get(ref);
          if (!held) throw new CheckpointError(`it references ${ref}, which the remote tier does not hold`, { code: 'ENOENT' });
          await downloadCheckpoint(objects, held, dir);
        }
        await downloadCheckpoint(objects, c, dir, remote.onProgress ? (sent, total) => remote.onProgress!({ step: c.step, sent, total }) : undefined);
        warn(`restored step ${c.step} from ${objects.location.url} into the empty ${dir}`);
        return true;
      } catch (err) {
        const reason = err instanceof CheckpointError ? `${err.code}: ${err.message}` : String(err);
        warn(`remote checkpoint for step ${c.step} is not valid, trying an older one (${reason})`);
      }
    }
    return true;
  } finally {
    objects.destroy();
  }
}
