/** The portable writer's thread (a worker_threads worker): the commit protocol of docs/commit-protocol.md over Node's
 * `fs`, for platforms without the native addon. Each job runs to its end here, whatever the training thread does:
 * temporary name (O_EXCL), write, fdatasync, close, rename, directory fsync (where the platform has one), then a
 * save's small files (each written and fdatasynced, then renamed, then one directory fsync) and removals. Jobs run
 * in the order they were posted. It also keeps the leases of the portable run locks fresh (lock.ts). */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessagePort, parentPort, workerData } from 'node:worker_threads';
import { NativeSaveResult, NativeWriteResult, withContentId } from '../binding/contract';
import { planFile, Xxh3 } from '../format/portable-codec';
import { createXxh3 } from '../format/xxh3';
import { LEASE_REFRESH_MS } from './lock';
import { Completion, errorOf, Job, PENDING } from './protocol';

const { port, pending } = workerData as { port: MessagePort; pending: Int32Array };
/** Windows has no directory fsync (a directory cannot be opened for it); elsewhere it makes a rename durable. */
const DIRECTORY_FSYNC = process.platform !== 'win32';

/** Node names no path in errors of calls on a file descriptor (write, fdatasync, fsync, close): the file's is added,
 * as the native writer reports it. */
function withPath(err: unknown, file: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && e.path === undefined) {
    e.path = file;
    e.message = `${e.message} '${file}'`;
  }
  return err;
}

function syncDirectory(dir: string): void {
  if (!DIRECTORY_FSYNC) return;
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | (fs.constants.O_DIRECTORY ?? 0));
  try {
    fs.fsyncSync(fd);
  } catch (err) {
    throw withPath(err, dir);
  } finally {
    fs.closeSync(fd);
  }
}

function tempName(file: string): string {
  return `${file}.tmp.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
}

/** Steps 2-7: a temporary file in the same directory with every byte, fdatasynced and closed. */
function writeTemp(file: string, chunks: Uint8Array[]): string {
  const tmp = tempName(file);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (fs.constants.O_NOFOLLOW ?? 0), 0o644);
  let closed = false;
  try {
    let at = 0;
    for (const c of chunks) {
      for (let done = 0; done < c.byteLength;) {
        refreshLeasesIfDue(); // a long save must not let a held lock's lease lapse
        const n = fs.writeSync(fd, c, done, Math.min(c.byteLength - done, WRITE_CHUNK), at + done);
        if (n <= 0) throw Object.assign(new Error(`EIO: zero-byte write, write '${tmp}'`), { code: 'EIO', errno: 5, syscall: 'write', path: tmp });
        done += n;
      }
      at += c.byteLength;
    }
    fs.fdatasyncSync(fd);
    closed = true;
    fs.closeSync(fd);
    return tmp;
  } catch (err) {
    if (!closed) {
      try {
        fs.closeSync(fd);
      } catch {
        /* the first error is the one reported */
      }
    }
    fs.rmSync(tmp, { force: true });
    throw withPath(err, tmp);
  }
}

/** Writes go in pieces of this size, so a held lock's lease is refreshed during a long save. */
const WRITE_CHUNK = 64 << 20;

/** Links `file` under a temporary name before it is replaced, so a failed directory fsync can put it back. Where
 * the file system has no hard links (FAT, exFAT, some network shares) or the file is gone, there is no backup:
 * the replace then cannot be undone, as documented. */
function keepPrevious(file: string): string | null {
  const previous = tempName(file);
  try {
    fs.linkSync(file, previous);
    return previous;
  } catch (err) {
    if (['ENOENT', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK'].includes((err as NodeJS.ErrnoException).code ?? '')) return null;
    throw err;
  }
}

/** One file through the whole protocol. A file it replaces is first hard-linked under a temporary name: if the
 * directory fsync fails after the rename, the previous file is put back (as the native writer undoes its exchange),
 * and on success the link is removed; a removal that fails is reported as `leftover` (the save is durable). */
function commitFile(file: string, chunks: Uint8Array[]): { replaced: boolean; leftover?: NativeWriteResult['leftover'] } {
  const tmp = writeTemp(file, chunks);
  let previous: string | null = null;
  const replacedAny = fs.existsSync(file);
  try {
    if (replacedAny) previous = keepPrevious(file);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    if (previous !== null) fs.rmSync(previous, { force: true });
    throw err;
  }
  try {
    syncDirectory(path.dirname(file));
  } catch (err) {
    try {
      if (previous !== null) fs.renameSync(previous, file);
      else if (!replacedAny) fs.rmSync(file, { force: true });
    } catch {
      /* the first error is the one reported */
    }
    throw err;
  }
  if (previous === null) return { replaced: replacedAny };
  try {
    fs.unlinkSync(previous);
    return { replaced: true };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { replaced: true, leftover: { path: previous, errno: Math.abs(e.errno ?? 5), code: e.code ?? 'EIO' } };
  }
}

/** A save's small files: every one written and fdatasynced before any is renamed, then one directory fsync. If a
 * rename or that fsync fails, every file already renamed is put back (from its hard-link backup, or removed if it
 * is new), so the pointers and the manifest stay as they were, as the native writer's CommitFiles does. */
function commitFiles(files: [string, Uint8Array][]): { path: string; errno: number; code: string }[] {
  const temps: string[] = [];
  const previous: (string | null)[] = [];
  const existed: boolean[] = [];
  let renamed = 0;
  try {
    for (const [file, data] of files) temps.push(writeTemp(file, [data]));
    for (const [file] of files) {
      const there = fs.existsSync(file);
      existed.push(there);
      previous.push(there ? keepPrevious(file) : null);
    }
    for (; renamed < files.length; renamed++) fs.renameSync(temps[renamed]!, files[renamed]![0]);
    for (const dir of new Set(files.map(([file]) => path.dirname(file)))) syncDirectory(dir);
  } catch (err) {
    for (let i = 0; i < files.length; i++) {
      try {
        if (i < renamed && previous[i]) fs.renameSync(previous[i]!, files[i]![0]);
        else if (i < renamed && existed[i] === false) fs.rmSync(files[i]![0], { force: true });
      } catch {
        /* the first error is the one reported */
      }
      if (temps[i] && i >= renamed) fs.rmSync(temps[i]!, { force: true });
      if (previous[i]) fs.rmSync(previous[i]!, { force: true });
    }
    throw err;
  }
  const leftovers: { path: string; errno: number; code: string }[] = [];
  for (const p of previous) {
    if (p === null) continue;
    try {
      fs.unlinkSync(p);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      leftovers.push({ path: p, errno: Math.abs(e.errno ?? 5), code: e.code ?? 'EIO' });
    }
  }
  return leftovers;
}

/** Unlinks each name (one already gone counts as removed), then fsyncs the directory once. */
function removeFiles(dir: string, names: string[]): void {
  for (const name of names) {
    try {
      fs.unlinkSync(path.join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  syncDirectory(dir);
}

const lanes = new Map<number, { generation: number; failure: string }>();
const leases = new Map<string, string>();
let xxh3: Xxh3 | undefined;

function writeResult(file: string, bytes: number, replaced: boolean, leftover?: NativeWriteResult['leftover']): NativeWriteResult {
  const r: NativeWriteResult = { path: file, bytes, direct: false, preallocated: false, replaced, copied: true };
  if (leftover) r.leftover = leftover;
  return r;
}

function runSave(job: Extract<Job, { op: 'save' }>): Completion {
  const lane = job.lane !== undefined ? (lanes.get(job.lane) ?? { generation: 0, failure: '' }) : undefined;
  if (lane && job.lane !== undefined) lanes.set(job.lane, lane);
  if (lane && lane.generation !== job.generation) {
    return {
      id: job.id,
      ok: false,
      error: {
        message: `aborted before writing: it was planned while an earlier save of this run was committing, and that save failed (${lane.failure}) ('${job.path}')`,
        code: 'ECKPT_ABORTED',
        path: job.path,
        stage: 'planned',
        dataDurable: false,
        generation: lane.generation,
      },
    };
  }
  let stage = 'data';
  let contentId: string | undefined;
  let dataDurable = false;
  const fileLeftovers: { path: string; errno: number; code: string }[] = [];
  try {
    const plan = planFile(job.tensors, job.metadata, job.checksum, xxh3!);
    contentId = plan.contentId;
    const { replaced, leftover } = commitFile(job.path, [plan.header, ...plan.parts]);
    dataDurable = true;
    stage = 'files';
    if (job.files.length > 0) {
      fileLeftovers.push(...commitFiles(job.files.map(([file, data]) => [file, withContentId(data, contentId)])));
    }
    const removed: string[] = [];
    if (job.remove.length > 0 && job.removeDir !== undefined) {
      stage = 'remove';
      removeFiles(job.removeDir, job.remove);
      removed.push(...job.remove);
    }
    const base = writeResult(job.path, plan.bytes, replaced, leftover);
    const result: NativeSaveResult | NativeWriteResult = job.isSave
      ? { ...base, fileLeftovers, removed, generation: lane?.generation ?? 0, ...(contentId !== undefined ? { contentId } : {}) }
      : { ...base, ...(contentId !== undefined ? { contentId } : {}) };
    return { id: job.id, ok: true, result };
  } catch (err) {
    const error = errorOf(err);
    if (lane) {
      lane.generation++;
      lane.failure = `step file ${job.path}, stage ${stage}: ${error.syscall ? `${error.code} on ${error.syscall}` : error.message}`;
    }
    if (job.isSave) {
      error.stage = stage;
      error.dataDurable = dataDurable;
      error.generation = lane?.generation ?? 0;
      if (contentId !== undefined) error.contentId = contentId;
    }
    return { id: job.id, ok: false, error };
  }
}

function run(job: Job): Completion | null {
  switch (job.op) {
    case 'save':
      return runSave(job);
    case 'writeFile':
      try {
        const { replaced, leftover } = commitFile(job.path, [job.data]);
        return { id: job.id, ok: true, result: writeResult(job.path, job.data.byteLength, replaced, leftover) };
      } catch (err) {
        return { id: job.id, ok: false, error: errorOf(err) };
      }
    case 'remove':
      try {
        removeFiles(job.dir, job.names);
        return { id: job.id, ok: true, result: writeResult(job.dir, 0, false) };
      } catch (err) {
        return { id: job.id, ok: false, error: errorOf(err) };
      }
    case 'lease':
      leases.set(job.path, job.holder);
      return null;
    case 'unlease':
      leases.delete(job.path);
      return null;
  }
}

let lastRefresh = 0;

function refreshLeasesIfDue(): void {
  if (leases.size > 0 && Date.now() - lastRefresh >= LEASE_REFRESH_MS) refreshLeases();
}

/** A held lock's lease is its file's mtime: touched here, on the writer's own thread (between jobs and during long
 * writes), so a training loop that never yields does not let its lock expire. */
function refreshLeases(): void {
  lastRefresh = Date.now();
  const now = new Date();
  for (const file of leases.keys()) {
    try {
      fs.utimesSync(file, now, now);
    } catch {
      /* a lock file removed under us: the next lock() by anyone takes it; nothing to do here */
    }
  }
}

const queue: Job[] = [];
let running = false;

async function drain(): Promise<void> {
  if (running) return;
  running = true;
  xxh3 ??= await createXxh3();
  while (queue.length > 0) {
    const job = queue.shift()!;
    refreshLeasesIfDue();
    const done = run(job);
    if (done) {
      port.postMessage(done);
      Atomics.sub(pending, PENDING, 1);
      Atomics.notify(pending, PENDING);
    }
  }
  running = false;
}

parentPort!.on('message', (job: Job) => {
  queue.push(job);
  void drain();
});
setInterval(refreshLeases, LEASE_REFRESH_MS).unref();
