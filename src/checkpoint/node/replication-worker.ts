/** The replication worker: a thread of its own that uploads committed local checkpoints to the remote tier and
 * commits them there (remote-run.ts). The AWS SDK signs, hashes and streams in JavaScript; here none of that
 * runs on the training thread. Messages are defined in replicator.ts, which starts this worker.
 *
 * A checkpoint is held by a hard link in `<dir>/.ckptio-replicating/` from the moment its save settles until its
 * remote commit: local retention may remove the checkpoint's name meanwhile, the upload reads the link. Links
 * left by a process that died mid-upload are uploaded at the next start. */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { CheckpointError, RemoteError } from '../../binding/errors';
import { S3Objects } from '../../store/remote/s3';
import { parseRemoteUrl } from '../../store/remote/url';
import { stepOf } from '../names';
import { LEASE_NAME, takeLease } from '../../store/remote/lease';
import { cleanOrphans, listCommitted, pruneRemote, replicateFile } from './remote-run';
import type { FromWorker, ToWorker, WorkerConfig, WireError } from './replicator';

interface Job {
  seq: number | null;
  file: string;
  contentId: string | null;
  refs: string[];
  /** Tagged: never skipped as superseded. */
  keep: boolean;
}

const config = workerData as WorkerConfig;
const port = parentPort!;
const objects = new S3Objects(parseRemoteUrl(config.remote), { partBytes: config.partBytes, concurrency: config.concurrency });
const holdDir = path.join(config.dir, '.ckptio-replicating');
const writer = randomBytes(8).toString('hex');
const startedAt = Date.now();
const queue: Job[] = [];
/** Uploads a process that died left held: read before any message of this process adds its own. */
const leftovers = fs.existsSync(holdDir) ? fs.readdirSync(holdDir).filter((n) => stepOf(n) !== null) : [];
/** Files committed remotely (their newest upload), as this writer knows. */
const remote = new Set<string>();
let ready: Promise<void> | null = null;
let busy = false;
/** The file being uploaded now. */
let current: string | null = null;
let closing = false;
let leaseTimer: NodeJS.Timeout | null = null;

function post(m: FromWorker): void {
  port.postMessage(m);
}

function wire(err: unknown): WireError {
  const e = err as Partial<RemoteError> & { message?: string };
  return {
    message: String(e?.message ?? err),
    code: String(e?.code ?? 'ECKPT_INTERNAL'),
    ...(typeof e?.s3Code === 'string' ? { s3Code: e.s3Code } : {}),
    ...(typeof e?.status === 'number' ? { status: e.status } : {}),
    retryable: e?.retryable === true,
    ...(typeof e?.path === 'string' ? { path: e.path } : {}),
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Retries what may succeed later (the store unreachable, 5xx) for up to retryMs, then gives up with the error. */
async function withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + config.retryMs;
  for (let delay = 250; ; delay = Math.min(delay * 2, 4000)) {
    try {
      return await fn();
    } catch (err) {
      const retryable = err instanceof RemoteError && err.retryable;
      if (!retryable || Date.now() + delay > deadline) throw err;
      post({ type: 'retrying', what, error: wire(err), inMs: delay });
      await sleep(delay);
    }
  }
}

function lease() {
  return { writer, host: os.hostname(), pid: process.pid, expires: Date.now() + config.leaseMs };
}

/** The lease, then the previous writers' leftovers, then this writer's own leftovers from a killed process. */
function ensureReady(): Promise<void> {
  ready ??= (async () => {
    await withRetry('take the lease', () => takeLease(objects, lease()));
    const cleaned = await withRetry('clean orphans', () => cleanOrphans(objects, startedAt));
    if (cleaned.uploads || cleaned.objects)
      post({
        type: 'warning',
        message: `removed ${cleaned.uploads} unfinished multipart upload(s) and ${cleaned.objects} uncommitted object(s) left in ${objects.location.url} by an interrupted writer`,
      });
    for (const c of await withRetry('list', () => listCommitted(objects, (m) => post({ type: 'warning', message: m })))) remote.add(c.file);
    leaseTimer ??= setInterval(
      () => {
        objects.putSmall(LEASE_NAME, Buffer.from(JSON.stringify(lease()))).catch(() => {});
      },
      Math.max(1000, config.leaseMs / 3),
    );
    // Uploads a killed process left, and the newest local checkpoint when the remote lacks it.
    const redo = new Set(leftovers.filter((n) => !remote.has(n)));
    if (config.localNewest && !remote.has(config.localNewest)) redo.add(config.localNewest);
    for (const n of leftovers) if (!redo.has(n)) fs.rmSync(path.join(holdDir, n), { force: true });
    const own = new Set(queue.map((j) => j.file));
    for (const file of [...redo].sort().reverse()) {
      if (own.has(file)) continue;
      if (leftovers.includes(file)) holds.set(file, (holds.get(file) ?? 0) + 1);
      else if (!hold(file)) continue;
      // An upload a killed process left is never skipped as superseded: it may be a tagged checkpoint.
      queue.unshift({ seq: null, file, contentId: null, refs: [], keep: true });
    }
  })();
  ready.catch(() => {
    ready = null;
  }); // tried again with the next job
  return ready;
}

/** Jobs holding each file's link: the link goes when the last of them is done. */
const holds = new Map<string, number>();

/** Hard-links the local checkpoint into the hold directory (or counts one more holder of the link that is
 * there); false when the checkpoint is gone already. */
function hold(file: string): boolean {
  const link = path.join(holdDir, file);
  const n = holds.get(file) ?? 0;
  if (n > 0 && fs.existsSync(link)) {
    holds.set(file, n + 1);
    return true;
  }
  fs.mkdirSync(holdDir, { recursive: true });
  fs.rmSync(link, { force: true });
  try {
    fs.linkSync(path.join(config.dir, file), link);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  holds.set(file, n + 1);
  return true;
}

function unhold(file: string): void {
  const n = (holds.get(file) ?? 1) - 1;
  if (n > 0) {
    holds.set(file, n);
    return;
  }
  holds.delete(file);
  fs.rmSync(path.join(holdDir, file), { force: true });
}

async function run(job: Job): Promise<void> {
  await ensureReady();
  for (const ref of job.refs) {
    if (remote.has(ref)) continue;
    if (!hold(ref))
      throw new CheckpointError(`step ${job.file} references ${ref}, which is gone locally and not in ${objects.location.url}`, {
        code: 'ENOENT',
        path: path.join(config.dir, ref),
      });
    try {
      await withRetry(`upload ${ref}`, () => replicateFile(objects, path.join(holdDir, ref), { file: ref, contentId: null, refs: [], writer }));
      remote.add(ref);
    } finally {
      unhold(ref);
    }
  }
  const t0 = Date.now();
  const commit = await withRetry(`upload ${job.file}`, () =>
    replicateFile(
      objects,
      path.join(holdDir, job.file),
      { file: job.file, contentId: job.contentId, refs: job.refs, writer },
      config.progress
        ? (sent, total) => {
            if (job.seq !== null) post({ type: 'progress', seq: job.seq, file: job.file, sent, total });
          }
        : undefined,
    ),
  );
  remote.add(job.file);
  unhold(job.file);
  post({ type: 'replicated', seq: job.seq, file: job.file, bytes: commit.bytes, key: `${objects.location.url}/${job.file}~${commit.id}`, ms: Date.now() - t0 });
  try {
    for (const f of await pruneRemote(objects, config.keepLast, (m) => post({ type: 'warning', message: m }), new Set([job.file, ...job.refs])))
      remote.delete(f);
  } catch (err) {
    post({ type: 'warning', message: `remote retention in ${objects.location.url} failed and is tried again after the next upload (${wire(err).message})` });
  }
}

async function pump(): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    try {
      await ensureReady();
    } catch (err) {
      // Each job tries again and reports its own failure; without jobs, this is the only report.
      if (!queue.length) post({ type: 'warning', message: `the remote tier ${objects.location.url} is not usable now (${wire(err).message})` });
    }
    for (let job = queue.shift(); job; job = queue.shift()) {
      current = job.file;
      try {
        await run(job);
      } catch (err) {
        unhold(job.file);
        post({ type: 'failed', seq: job.seq, file: job.file, error: wire(err) });
      } finally {
        current = null;
      }
    }
  } finally {
    busy = false;
    if (closing) finish();
  }
}

function finish(): void {
  if (leaseTimer) clearInterval(leaseTimer);
  leaseTimer = null;
  // The lease is handed back by expiring it now: the next writer need not wait.
  const release = ready ? objects.putSmall(LEASE_NAME, Buffer.from(JSON.stringify({ ...lease(), expires: 0 }))).catch(() => {}) : Promise.resolve();
  void release.then(() => post({ type: 'closed', left: [] }));
}

// At start: the lease, the leftovers of earlier writers, and this directory's unfinished uploads.
void pump();

port.on('message', (m: ToWorker) => {
  if (m.type === 'replicate') {
    try {
      if (!hold(m.file)) {
        post({ type: 'skipped', seq: m.seq, file: m.file, reason: 'it was removed locally before its upload started' });
        return;
      }
    } catch (err) {
      post({ type: 'failed', seq: m.seq, file: m.file, error: wire(err) });
      return;
    }
    // Backlog: a waiting upload superseded by a newer checkpoint is skipped (tagged ones are not).
    for (let i = queue.length - 1; i >= 0; i--) {
      const j = queue[i]!;
      if (j.keep || j.file >= m.file) continue;
      queue.splice(i, 1);
      unhold(j.file);
      if (j.seq !== null) post({ type: 'skipped', seq: j.seq, file: j.file, reason: `superseded by ${m.file} before its upload started` });
    }
    queue.push({ seq: m.seq, file: m.file, contentId: m.contentId, refs: m.refs, keep: false });
    void pump();
  } else if (m.type === 'tag') {
    for (const j of queue) if (j.file === m.file) j.keep = true;
    void (async () => {
      try {
        await ensureReady();
        await withRetry(`tag ${m.name}`, () => objects.putSmall(`tag.${m.name}`, Buffer.from(JSON.stringify({ step: stepOf(m.file), file: m.file }))));
        if (!remote.has(m.file) && current !== m.file && !queue.some((j) => j.file === m.file) && hold(m.file)) {
          queue.push({ seq: null, file: m.file, contentId: null, refs: [], keep: true });
          void pump();
        }
      } catch (err) {
        post({ type: 'warning', message: `the remote tag ${m.name} was not written (${wire(err).message})` });
      }
    })();
  } else if (m.type === 'close') {
    closing = true;
    if (!busy) {
      if (queue.length) void pump();
      else finish();
    }
  }
});
