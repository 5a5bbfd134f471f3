/** Replicator: the training thread's side of the remote tier. It posts each durable checkpoint to the
 * replication worker (one postMessage, no I/O) and settles the save's `replicated` promise when the worker says
 * the remote copy is committed. Failures are warnings for the training loop (the local checkpoint stands) and
 * rejections of `replicated` (a RemoteError with the S3 code). */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CheckpointError, RemoteError } from '../../binding/errors';
import { parseRemoteUrl } from '../../store/remote/url';
import type { RemoteOptions, ReplicatedInfo } from '../remote-options';

export type { RemoteOptions, ReplicatedInfo } from '../remote-options';

export interface WorkerConfig {
  dir: string;
  remote: string;
  keepLast: number;
  leaseMs: number;
  retryMs: number;
  partBytes: number;
  concurrency: number;
  /** The newest local checkpoint at start: uploaded when the remote lacks it. */
  localNewest: string | null;
  /** Post progress messages (only when someone listens: each message is a wake-up of the training thread). */
  progress: boolean;
}

export interface WireError {
  message: string;
  code: string;
  s3Code?: string;
  status?: number;
  retryable: boolean;
  path?: string;
}

export type ToWorker =
  { type: 'replicate'; seq: number; file: string; contentId: string | null; refs: string[] } | { type: 'tag'; name: string; file: string } | { type: 'close' };

export type FromWorker =
  | { type: 'progress'; seq: number; file: string; sent: number; total: number }
  | { type: 'replicated'; seq: number | null; file: string; bytes: number; key: string; ms: number }
  | { type: 'skipped'; seq: number; file: string; reason: string }
  | { type: 'failed'; seq: number | null; file: string; error: WireError }
  | { type: 'retrying'; what: string; error: WireError; inMs: number }
  | { type: 'warning'; message: string }
  | { type: 'closed'; left: string[] };

function unwire(e: WireError): CheckpointError {
  if (e.code === 'ECKPT_REMOTE')
    return new RemoteError(e.message, {
      s3Code: e.s3Code ?? 'UnknownError',
      ...(e.status !== undefined ? { status: e.status } : {}),
      retryable: e.retryable,
      ...(e.path ? { path: e.path } : {}),
    });
  return new CheckpointError(e.message, { code: e.code, ...(e.path ? { path: e.path } : {}) });
}

interface Pending {
  step: number;
  file: string;
  resolve: (info: ReplicatedInfo | null) => void;
  reject: (err: unknown) => void;
}

export class Replicator {
  readonly url: string;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextSeq = 1;
  private closed: Promise<void> | null = null;
  private lastFailure = '';
  private dead: CheckpointError | null = null;

  constructor(
    private readonly options: RemoteOptions,
    dir: string,
    localKeepLast: number,
    localNewest: string | null,
    private readonly warn: (m: string) => void,
  ) {
    this.url = parseRemoteUrl(options.url).url;
    const config: WorkerConfig = {
      dir,
      remote: this.url,
      keepLast: options.keepLast ?? localKeepLast,
      leaseMs: options.leaseMs ?? 30_000,
      retryMs: options.retryMs ?? 120_000,
      partBytes: options.partBytes ?? 16 << 20,
      concurrency: options.concurrency ?? 4,
      localNewest,
      progress: options.onProgress !== undefined,
    };
    this.worker = new Worker(path.join(__dirname, 'replication-worker.js'), { workerData: config });
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    // The worker keeps the process alive only while an upload this process asked for is pending (a script that
    // ends without close() still finishes them); process.exit() does not wait, and what it cuts is uploaded at the
    // next start. (After the listener: adding a message listener refs the worker again.)
    this.worker.unref();
    this.worker.on('error', (err) => {
      this.dead = new CheckpointError(`the replication worker failed: ${err.message}`, { code: 'ECKPT_INTERNAL' });
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    });
  }

  private settled(seq: number | null): Pending | undefined {
    if (seq === null) return undefined;
    const p = this.pending.get(seq);
    this.pending.delete(seq);
    if (this.pending.size === 0 && !this.closed) this.worker.unref();
    return p;
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'progress': {
        const p = this.pending.get(m.seq);
        if (p && this.options.onProgress) this.options.onProgress({ step: p.step, sent: m.sent, total: m.total });
        return;
      }
      case 'replicated': {
        this.lastFailure = '';
        const p = this.settled(m.seq);
        p?.resolve({ step: p.step, key: m.key, bytes: m.bytes, msToReplicated: m.ms });
        return;
      }
      case 'skipped': {
        this.settled(m.seq)?.resolve(null);
        return;
      }
      case 'failed': {
        const err = unwire(m.error);
        // One warning per kind of failure in a row, not one per save.
        const kind = `${err.code}:${(err as RemoteError).s3Code ?? ''}`;
        if (kind !== this.lastFailure) {
          this.lastFailure = kind;
          this.safeWarn(`replication of ${m.file} to ${this.url} failed; training continues on local checkpoints (${err.message})`);
        }
        this.settled(m.seq)?.reject(err);
        return;
      }
      case 'retrying':
        this.safeWarn(`${m.what} on ${this.url}: ${m.error.message}; retrying in ${m.inMs} ms`);
        return;
      case 'warning':
        this.safeWarn(m.message);
        return;
      case 'closed':
        return;
    }
  }

  private safeWarn(m: string): void {
    try {
      this.warn(m);
    } catch {
      /* a throwing onWarning must not stop replication */
    }
  }

  /** Posts a durable checkpoint for upload; the promise settles when it is committed remotely (ReplicatedInfo),
   * skipped as superseded (null) or failed (rejects). */
  replicate(step: number, file: string, contentId: string | null, refs: string[]): Promise<ReplicatedInfo | null> {
    if (this.dead) return Promise.reject(this.dead);
    const seq = this.nextSeq++;
    const done = new Promise<ReplicatedInfo | null>((resolve, reject) => this.pending.set(seq, { step, file, resolve, reject }));
    if (this.pending.size === 1) this.worker.ref();
    const message: ToWorker = { type: 'replicate', seq, file, contentId, refs };
    this.worker.postMessage(message);
    return done;
  }

  tag(name: string, file: string): void {
    if (!this.dead) this.worker.postMessage({ type: 'tag', name, file } satisfies ToWorker);
  }

  /** Waits up to closeTimeoutMs for the uploads in progress, then stops the worker; returns the files left (they
   * are uploaded at the next start). */
  async close(): Promise<string[]> {
    this.closed ??= (async () => {
      if (this.dead) return;
      const timeoutMs = this.options.closeTimeoutMs ?? 60_000;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.worker.on('message', (m: FromWorker) => {
          if (m.type === 'closed') resolve();
        });
        this.worker.on('exit', () => resolve());
        timer = setTimeout(resolve, timeoutMs);
        this.worker.ref(); // close() waits for the worker, so the process does too
        this.worker.postMessage({ type: 'close' } satisfies ToWorker);
      });
      clearTimeout(timer);
      await this.worker.terminate();
    })();
    await this.closed;
    const left = [...this.pending.values()];
    this.pending.clear();
    for (const p of left)
      p.reject(
        new CheckpointError(`${p.file} was not replicated to ${this.url} before close() stopped waiting; it is uploaded at the next start`, {
          code: 'ECKPT_CLOSED',
        }),
      );
    return left.map((p) => p.file);
  }
}
