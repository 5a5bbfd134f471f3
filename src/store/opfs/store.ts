/** OpfsStore: a CheckpointStore over a directory of the browser's Origin Private File System. Every write goes to
 * one dedicated Worker (worker.ts), which commits it on its own; the page's thread only copies a save's tensors into
 * a buffer the worker reads (shared, and reused from save to save, when the page is cross-origin isolated) and posts
 * the job, inside save(); tensors already in shared memory (a threaded wasm heap) are not copied: the worker reads
 * them in place and the snapshot holds them until it has. The run lock is a Web Lock the worker holds: until release,
 * or until the worker dies with its page. */
import { argumentError, CheckpointError } from '../../binding/errors';
import type { HeaderInfo, ReadOptions, ReadResult, SaveResult } from '../../format/file';
import { METADATA_KEYS } from '../../format/metadata-keys';
import { parseHeader, planFile, readResult } from '../../format/portable-codec';
import { unpackRead } from '../../format/tensor-list';
import type { CheckpointStore, CommitRequest, StoredObject, StoreLock } from '../store';
import type { ErrorReply, FromWorker, PackedTensors, Reply, Request, SaveDone, ToWorker } from './protocol';

/** The largest small object (pointer, tag, manifest) read back, as LocalStore's. */
const SMALL_OBJECT_MAX = 64 << 20;
const LOCK_PREFIX = 'ckptio:';

interface WorkerLike {
  postMessage(message: ToWorker, transfer?: unknown[]): void;
  addEventListener(type: 'message', listener: (event: { data: FromWorker }) => void): void;
  addEventListener(type: 'error' | 'messageerror', listener: (event: { message?: string }) => void): void;
}

interface BrowserScope {
  Worker: new (url: URL, options: { type: 'module'; name?: string }) => WorkerLike;
  crossOriginIsolated?: boolean;
}
const scope = globalThis as unknown as BrowserScope;
/** SharedArrayBuffer where the page has it (cross-origin isolated), else null: without isolation the global is absent. */
const Shared: typeof SharedArrayBuffer | null = typeof SharedArrayBuffer === 'undefined' ? null : SharedArrayBuffer;
const isShared = (b: ArrayBufferLike): boolean => Shared !== null && b instanceof Shared;

/** A directory path inside the origin's file system: segments without separators, not empty, not . or .. */
function segmentsOf(dir: string): string[] {
  if (typeof dir !== 'string' || dir.includes('\0') || dir.includes('\\')) throw argumentError('dir must be a string without NUL bytes or backslashes');
  const parts = dir.split('/').filter((p) => p !== '');
  if (parts.length === 0) throw argumentError('dir must name a directory of the origin private file system, such as "runs/mnist"');
  for (const p of parts) if (p === '.' || p === '..') throw argumentError(`dir "${dir}" must not contain . or .. segments`);
  return parts;
}

function plainName(name: string): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name))
    throw argumentError(`"${String(name)}" is not a plain object name`);
  return name;
}

function toError(e: ErrorReply): CheckpointError {
  const err = new CheckpointError(e.message, { code: e.code, ...(e.path !== undefined ? { path: e.path } : {}) });
  // What a failed save reports, as the native writer's errors do (the checkpointer reads these).
  if (e.stage !== undefined) Object.assign(err, { stage: e.stage, dataDurable: e.dataDurable, generation: e.generation });
  return err;
}

interface Pending {
  resolve(reply: Reply): void;
  reject(err: CheckpointError): void;
  onConsumed?: () => void;
}

/** The page's one writer Worker, shared by every OpfsStore of the page (one thread, jobs in posting order). */
class WriterConnection {
  private readonly worker: WorkerLike;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: CheckpointError | null = null;

  constructor(url: URL) {
    if (typeof scope.Worker !== 'function') {
      throw new CheckpointError('OpfsStore needs a browser with Worker and the origin private file system', { code: 'ECKPT_UNSUPPORTED' });
    }
    try {
      this.worker = new scope.Worker(url, { type: 'module', name: 'ckptio-writer' });
    } catch (err) {
      // A page that loads ckptio from another origin (a CDN) cannot start a worker from there: SecurityError.
      throw new CheckpointError(
        `the ckptio writer worker cannot start from ${url.href}: ${String((err as Error)?.message ?? err)}; serve dist/browser/ from the page's origin`,
        {
          code: 'ECKPT_UNSUPPORTED',
        },
      );
    }
    this.worker.addEventListener('message', ({ data }) => {
      const p = this.pending.get(data.id);
      if (!p) return;
      if ('consumed' in data) {
        p.onConsumed?.();
        p.onConsumed = undefined;
        return;
      }
      this.pending.delete(data.id);
      p.onConsumed?.();
      if (data.ok) p.resolve(data.reply);
      else p.reject(toError(data.error));
    });
    const fail = (why: string) => {
      this.dead = new CheckpointError(`the ckptio writer worker failed: ${why}`, { code: 'ECKPT_INTERNAL' });
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    };
    this.worker.addEventListener('error', (event) => fail(event.message ?? 'it did not load'));
    // A reply that cannot be deserialized would leave its request pending for good: the connection is then unusable.
    this.worker.addEventListener('messageerror', () => fail('a reply could not be read'));
  }

  send(request: Request, transfer: unknown[] = [], onConsumed?: () => void): Promise<Reply> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...(onConsumed ? { onConsumed } : {}) });
      try {
        this.worker.postMessage({ id, request }, transfer);
      } catch (err) {
        this.pending.delete(id);
        onConsumed?.();
        reject(new CheckpointError(`a request could not be sent to the writer worker: ${String((err as Error)?.message ?? err)}`, { code: 'ECKPT_ARGS' }));
      }
    });
  }
}

let connection: WriterConnection | null = null;
let workerUrl: URL | null = null;

/** Where the writer worker's script is (the browser entry sets it, beside itself). */
export function setWriterUrl(url: URL): void {
  workerUrl = url;
}

function writer(): WriterConnection {
  if (connection === null) {
    if (workerUrl === null) throw new CheckpointError("the writer worker's URL is not set: import ckptio through 'ckptio/browser'", { code: 'ECKPT_INTERNAL' });
    connection = new WriterConnection(workerUrl);
  }
  return connection;
}

/** Buffers the page copies saves into, reused once the worker has read them (a fresh buffer's pages cost faults on
 * every save); at most two of them are kept. Shared buffers only where the page is cross-origin isolated. */
const pool: ArrayBufferLike[] = [];
function takeBuffer(bytes: number): ArrayBufferLike {
  const i = pool.findIndex((b) => b.byteLength >= bytes);
  if (i >= 0) return pool.splice(i, 1)[0]!;
  return Shared !== null && scope.crossOriginIsolated === true ? new Shared(Math.max(8, bytes)) : new ArrayBuffer(Math.max(8, bytes));
}
function giveBuffer(b: ArrayBufferLike): void {
  if (!isShared(b)) return; // a transferred buffer is the worker's now
  pool.push(b);
  pool.sort((x, y) => x.byteLength - y.byteLength);
  if (pool.length > 2) pool.shift();
}

export interface OpfsStoreStats {
  /** Tensor bytes the page's thread copied into the writer's buffer. */
  copiedBytes: number;
  /** Tensor bytes the writer read in place from shared memory (a threaded wasm heap). */
  inPlaceBytes: number;
}

export class OpfsStore implements CheckpointStore {
  readonly location: string;
  readonly stats: OpfsStoreStats = { copiedBytes: 0, inPlaceBytes: 0 };
  private readonly dir: string[];

  constructor(dir: string) {
    this.dir = segmentsOf(dir);
    this.location = this.dir.join('/');
  }

  async open(): Promise<void> {
    await writer().send({ op: 'open', dir: this.dir });
  }

  /** A Web Lock named after the directory, taken and held by the writer worker itself: released when the run is
   * closed or when the worker dies with its page, never while it may still be writing. */
  async lock(name = 'ckptio.lock'): Promise<StoreLock> {
    const lockName = `${LOCK_PREFIX}${this.location}/${plainName(name)}`;
    const { granted } = (await writer().send({ op: 'lock', dir: this.dir, name: lockName })) as { granted: boolean };
    if (!granted) {
      throw new CheckpointError(`${this.location} is in use by another writer (another tab or worker of this origin); one writer per run directory`, {
        code: 'ECKPT_LOCKED',
        path: `${this.location}/${name}`,
      });
    }
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        writer()
          .send({ op: 'unlock', dir: this.dir, name: lockName })
          .catch(() => {});
      },
    };
  }

  async list(): Promise<StoredObject[]> {
    const r = (await writer().send({ op: 'list', dir: this.dir })) as { names: string[] };
    return r.names.map((name) => ({ name }));
  }

  /** The tensors are copied into the writer's buffer (or left in shared memory) and the job posted before this
   * returns: the save becomes durable in the worker with no further work from the page, as long as the page lives. */
  commit(request: CommitRequest): Promise<SaveResult> {
    let settled = false;
    const settle = (err: unknown, result: SaveResult | undefined) => {
      if (settled) return;
      settled = true;
      try {
        request.onSettled?.(err, result);
      } catch {
        /* must not throw, by contract */
      }
    };
    // Bad input throws here, before anything is queued, as the Node writers do: the layout is planned once without
    // digests (the worker plans it again with them).
    if ((request.options.compression ?? 'none') !== 'none')
      throw argumentError('compression is not available in the browser: checkpoints there are written uncompressed');
    const name = plainName(request.name);
    const table = request.tensors.pack();
    planFile(table, request.options.metadata ?? {}, false, () => '');
    let promise: Promise<SaveResult>;
    try {
      // Shared memory (a threaded wasm heap, read in place) goes as it is, unless the caller asked for a copy; the
      // rest is copied into one buffer.
      const inPlaceOk = (v: ArrayBufferView) => request.options.copy !== true && isShared(v.buffer);
      let bytes = 0;
      for (const v of table.data) if (!inPlaceOk(v)) bytes += v.byteLength;
      const buffer = bytes > 0 ? takeBuffer(bytes) : null;
      const data: Uint8Array[] = [];
      let at = 0;
      for (const v of table.data) {
        if (inPlaceOk(v)) {
          data.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
          continue;
        }
        const view = new Uint8Array(buffer!, at, v.byteLength);
        view.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        data.push(view);
        at += v.byteLength;
      }
      const total = data.reduce((n, d) => n + d.byteLength, 0);
      const inPlace = at < total;
      this.stats.copiedBytes += at;
      this.stats.inPlaceBytes += total - at;
      const tensors: PackedTensors = { names: table.names, nameLengths: table.nameLengths, dtypes: table.dtypes, ranks: table.ranks, dims: table.dims, data };
      const transfer = buffer !== null && !isShared(buffer) ? [buffer] : [];
      const job: Request = {
        op: 'save',
        dir: this.dir,
        name,
        tensors,
        metadata: request.options.metadata ?? {},
        files: request.files.map((f) => [plainName(f.name), f.data]),
        remove: request.remove.map(plainName),
        ...(request.lane ? { lane: request.lane.id, generation: request.lane.generation } : {}),
      };
      // Copied tensors are free now (told after this call returns, as a store does); tensors read in place are free
      // once the worker has read them.
      if (request.onConsumed && !inPlace) queueMicrotask(request.onConsumed);
      promise = writer()
        .send(job, transfer, () => {
          if (buffer !== null) giveBuffer(buffer);
          if (inPlace) {
            try {
              request.onConsumed?.();
            } catch {
              /* must not throw, by contract */
            }
          }
        })
        .then((reply) => {
          const done = reply as SaveDone;
          const result: SaveResult = {
            path: `${this.location}/${name}`,
            bytes: done.bytes,
            direct: false,
            preallocated: false,
            replaced: false,
            copied: true,
            fileLeftovers: [],
            removed: done.removed,
            generation: done.generation,
            ...(done.contentId !== undefined ? { contentId: done.contentId } : {}),
          };
          settle(null, result);
          return result;
        });
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.catch((err: unknown) => settle(err, undefined));
    return promise;
  }

  async writeSmall(name: string, data: Uint8Array): Promise<void> {
    await writer().send({ op: 'writeSmall', dir: this.dir, name: plainName(name), data, exclusive: false });
  }

  async createSmall(name: string, data: Uint8Array): Promise<boolean> {
    return ((await writer().send({ op: 'writeSmall', dir: this.dir, name: plainName(name), data, exclusive: true })) as { created: boolean }).created;
  }

  async appendSmall(name: string, data: Uint8Array): Promise<void> {
    await writer().send({ op: 'appendSmall', dir: this.dir, name: plainName(name), data });
  }

  async readSmall(name: string): Promise<Uint8Array | null> {
    return ((await writer().send({ op: 'readSmall', dir: this.dir, name: plainName(name), max: SMALL_OBJECT_MAX })) as { data: Uint8Array | null }).data;
  }

  /** Read whole and verified in the worker; the tensors are views of the one buffer it hands back. */
  async read(name: string, options: ReadOptions = {}): Promise<ReadResult> {
    const verify = options.verify ?? true;
    const { file } = (await writer().send({ op: 'read', dir: this.dir, name: plainName(name), verify })) as { file: Uint8Array };
    const where = `${this.location}/${name}`;
    const h = parseHeader(file, file.byteLength, where);
    const { tensors, metadata } = readResult(h, file);
    if (metadata[METADATA_KEYS.compression] !== undefined) {
      throw new CheckpointError(`${where} holds lz4-compressed tensors, which the browser cannot decompress: save it without compression`, {
        code: 'ECKPT_UNSUPPORTED',
        path: where,
      });
    }
    return { tensors: unpackRead(tensors), metadata, bytes: file.byteLength, verified: verify, compression: 'none' };
  }

  async readHeader(name: string): Promise<HeaderInfo> {
    return ((await writer().send({ op: 'readHeader', dir: this.dir, name: plainName(name) })) as { header: HeaderInfo }).header;
  }

  async remove(names: string[]): Promise<void> {
    if (names.length) await writer().send({ op: 'remove', dir: this.dir, names: names.map(plainName) });
  }

  /** Under the run lock no other writer of this directory is alive: every temporary name is a dead page's. */
  async cleanStaleTemps(): Promise<string[]> {
    return ((await writer().send({ op: 'cleanStaleTemps', dir: this.dir })) as { names: string[] }).names;
  }
}
