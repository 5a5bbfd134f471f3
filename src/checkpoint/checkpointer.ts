/** Checkpointer: the drop-in async save for any training loop.
 *
 *   const ckpt = new Checkpointer({ dir, keepLast: 3 })
 *   const h = await ckpt.save(step, { tensors, state })  // resolves once the snapshot is taken
 *   await h.durable                                      // resolves once committed
 *
 * Saves run in order. After each commit the `latest` pointer is rewritten (same protocol), then old
 * checkpoints beyond `keepLast` are removed, on the writer thread, behind everything queued before. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, argumentError, toCheckpointError } from '../binding/errors';
import { Compression, CompressionReport, readCheckpoint, removeFiles, TensorEntry, writeCheckpoint, writeFileAtomic } from './file';
import { checkpointName, listCheckpoints, Pointer, POINTER_BEST, POINTER_LATEST, readPointer, removeStaleTemps } from './directory';
import { METADATA_KEYS } from './metadata-keys';

/** Bytes that become available later (a tfjs snapshot read in slices), with a release hook. */
export interface TensorSource {
  readonly bytes: number;
  /** `ckptio.*` metadata that describes these tensors (a tfjs model's naming, an optimizer's counters). */
  readonly metadata?: Readonly<Record<string, string>>;
  materialize(): Promise<Record<string, TensorEntry>>;
  release(): void;
}

export interface SavePayload {
  /** Plain tensors must not be mutated until `durable` settles (or pass `copy: true`). */
  tensors: Record<string, TensorEntry> | TensorSource;
  /** Any JSON-serializable training state; stored in the file's metadata. */
  state?: unknown;
  /** A metric for the `best` pointer (see `best` in the options). */
  metric?: number;
  copy?: boolean;
}

export interface CheckpointerOptions {
  dir: string;
  /** Checkpoints kept after each commit (default 3, at least 1). */
  keepLast?: number;
  /** Saves in flight at once (default 1). */
  maxInflight?: number;
  /** Bytes in flight at once (default unlimited). A single save larger than this still runs alone. */
  maxInflightBytes?: number;
  /** What a save does when the limits are reached: wait for room (default) or skip this save. */
  onFull?: 'wait' | 'skip';
  /** Track a best checkpoint by `metric`; it is never pruned. */
  best?: 'max' | 'min';
  /** Called with a warning (an invalid checkpoint skipped on load, a skipped save). Default: console.warn. */
  onWarning?: (message: string) => void;
  /** 'lz4': compress tensors on the libuv thread pool before each write (default 'none'); see WriteOptions. */
  compression?: Compression;
}

export interface DurableInfo {
  step: number;
  path: string;
  bytes: number;
  /** ms from save() to committed. */
  msToDurable: number;
  pruned: string[];
  /** Present with `compression: 'lz4'`. */
  compression?: CompressionReport;
}

export interface SaveHandle {
  step: number;
  skipped: boolean;
  /** ms the save waited for room (onFull: 'wait'). */
  waitedMs: number;
  /** ms spent in save() on the calling thread, excluding the wait. */
  stallMs: number;
  durable: Promise<DurableInfo | null>;
}

export interface LoadedCheckpoint {
  step: number;
  path: string;
  tensors: Record<string, TensorEntry>;
  state: unknown;
  metadata: Record<string, string>;
}

export interface CheckpointerStats {
  saved: number;
  skipped: number;
  failed: number;
  inflight: number;
  inflightBytes: number;
  peakInflightBytes: number;
  totalWaitMs: number;
}

const STEP_KEY = METADATA_KEYS.step;
const STATE_KEY = METADATA_KEYS.state;

/** Bytes a save will hold in flight; the full validation of the tensors is writeCheckpoint's. */
function sizeOf(tensors: Record<string, TensorEntry> | TensorSource): number {
  if (typeof (tensors as TensorSource).materialize === 'function') {
    const bytes = (tensors as TensorSource).bytes;
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw argumentError('a TensorSource must report its bytes as a non-negative integer');
    return bytes;
  }
  let n = 0;
  for (const [name, t] of Object.entries(tensors as Record<string, TensorEntry>)) {
    if (typeof t !== 'object' || t === null || !ArrayBuffer.isView(t.data)) throw argumentError(`tensor "${name}": data must be a TypedArray`);
    n += t.data.byteLength;
  }
  return n;
}

/** A directory entry is durable only once its parent is fsynced; without this a power cut right after the
 * first save could take the new checkpoint directory, and every acknowledged checkpoint in it, away. */
async function syncNewDirectories(firstCreated: string, leaf: string): Promise<void> {
  const created: string[] = [];
  for (let d = leaf; ; d = path.dirname(d)) {
    created.push(d);
    if (d === firstCreated || path.dirname(d) === d) break;
  }
  for (const d of created) {
    const parent = await fs.promises.open(path.dirname(d), 'r');
    try {
      await parent.sync();
    } finally {
      await parent.close();
    }
  }
}

export class Checkpointer {
  readonly dir: string;
  private readonly keepLast: number;
  private readonly maxInflight: number;
  private readonly maxInflightBytes: number;
  private readonly onFull: 'wait' | 'skip';
  private readonly bestMode: 'max' | 'min' | undefined;
  private readonly compression: Compression;
  private readonly warn: (message: string) => void;
  private readonly ready: Promise<void>;
  private inflight = new Set<Promise<unknown>>();
  private inflightBytes = 0;
  private waiters: (() => void)[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private committed: number[] = [];
  private best: Pointer | null = null;
  private closed = false;
  private firstError: unknown = null;
  private readonly counters: CheckpointerStats = { saved: 0, skipped: 0, failed: 0, inflight: 0, inflightBytes: 0, peakInflightBytes: 0, totalWaitMs: 0 };

  constructor(opts: CheckpointerOptions) {
    if (!opts || typeof opts.dir !== 'string' || opts.dir === '' || opts.dir.includes('\0')) throw argumentError('dir must be a non-empty string without NUL bytes');
    this.dir = path.resolve(opts.dir);
    this.keepLast = opts.keepLast ?? 3;
    this.maxInflight = opts.maxInflight ?? 1;
    this.maxInflightBytes = opts.maxInflightBytes ?? Infinity;
    this.onFull = opts.onFull ?? 'wait';
    this.bestMode = opts.best;
    this.warn = opts.onWarning ?? ((m) => console.warn(`ckptio: ${m}`));
    this.compression = opts.compression ?? 'none';
    if (!Number.isInteger(this.keepLast) || this.keepLast < 1) throw argumentError('keepLast must be an integer >= 1');
    if (!Number.isInteger(this.maxInflight) || this.maxInflight < 1) throw argumentError('maxInflight must be an integer >= 1');
    if (!(this.maxInflightBytes > 0)) throw argumentError('maxInflightBytes must be > 0');
    if (this.onFull !== 'wait' && this.onFull !== 'skip') throw argumentError("onFull must be 'wait' or 'skip'");
    if (this.compression !== 'none' && this.compression !== 'lz4') throw argumentError("compression must be 'none' or 'lz4'");
    this.ready = this.open();
    this.ready.catch(() => {});
  }

  private async open(): Promise<void> {
    try {
      const firstCreated = await fs.promises.mkdir(this.dir, { recursive: true });
      if (firstCreated !== undefined) await syncNewDirectories(firstCreated, this.dir);
      const stale = await removeStaleTemps(this.dir);
      if (stale.length) this.warn(`removed ${stale.length} stale temporary file(s) from an interrupted save: ${stale.join(', ')}`);
      this.committed = (await listCheckpoints(this.dir)).map((c) => c.step).sort((a, b) => a - b);
      this.best = await readPointer(this.dir, POINTER_BEST);
    } catch (err) {
      throw toCheckpointError(err);
    }
  }

  get stats(): CheckpointerStats {
    return { ...this.counters, inflight: this.inflight.size, inflightBytes: this.inflightBytes };
  }

  private hasRoom(bytes: number): boolean {
    if (this.inflight.size >= this.maxInflight) return false;
    // A save larger than the byte budget still runs, alone, rather than never.
    return this.inflight.size === 0 || this.inflightBytes + bytes <= this.maxInflightBytes;
  }

  /** Takes the snapshot and queues the write. Resolves when the caller may continue. */
  async save(step: number, payload: SavePayload): Promise<SaveHandle> {
    if (this.closed) throw new CheckpointError('checkpointer is closed', { code: 'ECKPT_CLOSED' });
    if (!Number.isSafeInteger(step) || step < 0) throw argumentError('step must be a non-negative integer');
    if (!payload || typeof payload !== 'object' || !payload.tensors) throw argumentError('save needs { tensors }');
    const t0 = performance.now();
    const bytes = sizeOf(payload.tensors);
    await this.ready;
    let waitedMs = 0;
    if (!this.hasRoom(bytes)) {
      if (this.onFull === 'skip') {
        if (typeof (payload.tensors as TensorSource).release === 'function') (payload.tensors as TensorSource).release();
        this.counters.skipped++;
        this.warn(`save of step ${step} skipped: ${this.inflight.size} save(s), ${this.inflightBytes} bytes in flight`);
        return { step, skipped: true, waitedMs: 0, stallMs: performance.now() - t0, durable: Promise.resolve(null) };
      }
      const w0 = performance.now();
      while (!this.hasRoom(bytes)) await new Promise<void>((resolve) => this.waiters.push(resolve));
      waitedMs = performance.now() - w0;
      this.counters.totalWaitMs += waitedMs;
    }
    let state: string;
    try {
      state = JSON.stringify(payload.state ?? null);
    } catch (err) {
      throw argumentError(`state is not JSON-serializable: ${(err as Error).message}`);
    }
    this.inflightBytes += bytes;
    this.counters.peakInflightBytes = Math.max(this.counters.peakInflightBytes, this.inflightBytes);
    const durable = this.commit(step, payload, state, t0).finally(() => {
      this.inflight.delete(durable);
      this.inflightBytes -= bytes;
      const ready = this.waiters;
      this.waiters = [];
      for (const wake of ready) wake();
    });
    this.inflight.add(durable);
    durable.catch((err: unknown) => {
      this.counters.failed++;
      if (this.firstError === null) this.firstError = err;
    });
    return { step, skipped: false, waitedMs, stallMs: performance.now() - t0 - waitedMs, durable };
  }

  private async commit(step: number, payload: SavePayload, state: string, t0: number): Promise<DurableInfo> {
    const source = typeof (payload.tensors as TensorSource).materialize === 'function' ? (payload.tensors as TensorSource) : null;
    const file = path.join(this.dir, checkpointName(step));
    let result;
    try {
      const tensors = source ? await source.materialize() : (payload.tensors as Record<string, TensorEntry>);
      const metadata: Record<string, string> = { ...(source?.metadata ?? {}), [STEP_KEY]: String(step), [STATE_KEY]: state };
      if (payload.metric !== undefined) metadata[METADATA_KEYS.metric] = String(payload.metric);
      // Writes commit in the order they are queued; the pointer and prune below follow their own checkpoint.
      const write = this.chain.then(() => writeCheckpoint(file, tensors, { metadata, copy: payload.copy ?? false, compression: this.compression }));
      this.chain = write.catch(() => {});
      result = await write;
      if (result.leftover) this.warn(`step ${step} is durable, but the file it replaced stays at ${result.leftover.path} (${result.leftover.code} on unlink); it is removed at the next start`);
    } finally {
      source?.release();
    }
    this.committed = [...this.committed.filter((s) => s !== step), step].sort((a, b) => a - b);
    const newest = this.committed[this.committed.length - 1]!;
    if (newest === step) await this.writePointer(POINTER_LATEST, { step, file: path.basename(file) });
    if (this.bestMode && payload.metric !== undefined && Number.isFinite(payload.metric)) {
      const better = !this.best || this.best.metric === undefined ||
        (this.bestMode === 'max' ? payload.metric > this.best.metric : payload.metric < this.best.metric);
      if (better) {
        this.best = { step, file: path.basename(file), metric: payload.metric };
        await this.writePointer(POINTER_BEST, this.best);
      }
    }
    const pruned = await this.prune();
    this.counters.saved++;
    const info: DurableInfo = { step, path: file, bytes: result.bytes, msToDurable: performance.now() - t0, pruned };
    if (result.compression) info.compression = result.compression;
    return info;
  }

  private async writePointer(name: string, pointer: Pointer): Promise<void> {
    const r = await writeFileAtomic(path.join(this.dir, name), new Uint8Array(Buffer.from(JSON.stringify(pointer) + '\n')));
    if (r.leftover) this.warn(`pointer ${name} is durable, but the file it replaced stays at ${r.leftover.path} (${r.leftover.code} on unlink)`);
  }

  /** Removes committed checkpoints beyond keepLast (oldest first), never the newest and never `best`. */
  private async prune(): Promise<string[]> {
    const keep = new Set(this.committed.slice(-this.keepLast));
    if (this.best) keep.add(this.best.step);
    const doomed = this.committed.filter((s) => !keep.has(s));
    if (doomed.length === 0) return [];
    const names = doomed.map(checkpointName);
    const existing = new Set(await fs.promises.readdir(this.dir).catch((err: unknown) => { throw toCheckpointError(err); }));
    const present = names.filter((n) => existing.has(n));
    if (present.length) await removeFiles(this.dir, present);
    this.committed = this.committed.filter((s) => keep.has(s));
    return present;
  }

  /** Waits for every save in flight; rejects with the first failure since the last flush. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    if (this.firstError !== null) {
      const err = this.firstError;
      this.firstError = null;
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  /** The newest checkpoint that validates (checksums included), else null. Invalid newer ones are reported
   * through onWarning with the reason, and skipped. */
  async loadLatest(): Promise<LoadedCheckpoint | null> {
    await this.ready;
    const files = await listCheckpoints(this.dir).catch((err: unknown) => { throw toCheckpointError(err); });
    for (const { step, file } of files) {
      const loaded = await this.tryLoad(path.join(this.dir, file), step);
      if (loaded) return loaded;
    }
    return null;
  }

  async load(file: string): Promise<LoadedCheckpoint> {
    const r = await readCheckpoint(file);
    return Checkpointer.decode(file, r.tensors, r.metadata);
  }

  private async tryLoad(file: string, step: number): Promise<LoadedCheckpoint | null> {
    try {
      return await this.load(file);
    } catch (err) {
      const reason = err instanceof CheckpointError ? `${err.code}: ${err.message}` : String(err);
      this.warn(`checkpoint for step ${step} is not valid, using an older one (${reason})`);
      return null;
    }
  }

  private static decode(file: string, tensors: Record<string, TensorEntry>, metadata: Record<string, string>): LoadedCheckpoint {
    const step = Number(metadata[STEP_KEY]);
    if (!Number.isSafeInteger(step)) throw new CheckpointError(`missing ${STEP_KEY} in metadata`, { code: 'ECKPT_FORMAT', path: file });
    let state: unknown = null;
    try {
      state = JSON.parse(metadata[STATE_KEY] ?? 'null');
    } catch {
      throw new CheckpointError(`${STATE_KEY} is not JSON`, { code: 'ECKPT_FORMAT', path: file });
    }
    const rest = { ...metadata };
    delete rest[STEP_KEY];
    delete rest[STATE_KEY];
    return { step, path: file, tensors, state, metadata: rest };
  }
}
