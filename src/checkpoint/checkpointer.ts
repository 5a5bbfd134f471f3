/** Checkpointer: the drop-in async save for any training loop.
 *
 *   const ckpt = new Checkpointer({ dir, keepLast: 3 })
 *   const h = await ckpt.save(step, { tensors, state })  // resolves once the snapshot is taken
 *   await h.durable                                      // resolves once committed
 *
 * This file only queues. Each save becomes one store commit (one native writer job): the checkpoint file, then
 * the pointers and the manifest, then the removals retention decided, all decided here when the save is queued
 * (admission.ts: how many may be in flight; retention.ts: what stays; manifest.ts: the run's record). Nothing
 * runs on the training thread between those stages, so a save is durable while the loop computes. */
import { CheckpointError, argumentError, PeerError } from '../binding/errors';
import { CONTENT_ID_TOKEN } from '../binding/contract';
import type { Compression, CompressionReport, SaveResult, TensorEntry } from '../format/file';
import { TensorList } from '../format/tensor-list';
import { utf8Text } from '../format/text';
import { METADATA_KEYS } from '../format/metadata-keys';
import { checkEntryKind, checkTensorRecord } from '../format/tensor-list';
import type { CheckpointStore, StoreLock } from '../store/store';
import { Admission } from './admission';
import { DedupIndex, resolveRefs } from './dedup';
import { POINTER_BEST, POINTER_LATEST, readPointer, renderPointer } from './directory';
import { checkpointName, describingMetadata, MANIFEST_NAME, ManifestEntry, Parent, renderManifest, stepOf, tagOfFile } from './manifest';
import { decideRetention, keepBest, keepLast, RetentionEntry, RetentionPolicy } from './retention';
import { NAME_RE, NAME_RULE } from './names';
import { isPointerName, presentEntries, readRun } from './run-reader';
import { HISTORY_NAME, HistoryEvent, renderHistoryLine } from './history';
import type { RemoteOptions, ReplicatedInfo } from './remote-options';
import { CoordinationLike, environment, ReplicatorLike, RunEnvironment } from './environment';
import { committedSteps, readStep } from './shard-reader';
import { decisionName, MAX_WORLD_SIZE, rankLockName, shardName } from './shards';

/** Bytes that become available later (a tfjs snapshot read in slices), with a release hook. */
export interface TensorSource {
  readonly bytes: number;
  /** `ckptio.*` metadata that describes these tensors (a tfjs model's naming, an optimizer's counters). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Per tensor, an object that is the same at two saves only when the bytes are the same (a tfjs dataId):
   * with `dedup`, such a tensor is stored by reference to the checkpoint that holds it. */
  readonly identities?: ReadonlyMap<string, object>;
  /** The tensors' bytes, once they are in hand (a TensorList is what ckptio's own sources produce: no object per
   * tensor). */
  materialize(): Promise<TensorList | Record<string, TensorEntry>>;
  /** The bytes now, when they are in hand without an event-loop turn (cpu arrays, wasm tensors read in place):
   * the save is then handed to the writer before save() returns. null (or absent) when they need turns; the save
   * is then handed over from materialize(), at the first turn. */
  materializeNow?(): TensorList | null;
  release(): void;
}

export interface SavePayload {
  /** Plain tensors must not be mutated until `durable` settles (or pass `copy: true`). */
  tensors: Record<string, TensorEntry> | TensorSource;
  /** Any JSON-serializable training state; stored in the file's metadata. */
  state?: unknown;
  /** A metric for the `best` pointer (see `best` in the options); the same as metrics: { metric }. */
  metric?: number;
  /** Named metrics (val_acc, f1, ...) for keepBest policies; stored in the file and the manifest. */
  metrics?: Record<string, number>;
  copy?: boolean;
}

export interface CheckpointerOptions {
  /** The run directory (required unless `store` is given). */
  dir?: string;
  /** Where checkpoints live (default: a LocalStore over `dir` in Node, an OpfsStore in the browser): MemoryStore,
   * S3Store, or your own. */
  store?: CheckpointStore;
  /** Checkpoints kept by recency (default 3, at least 1); see also `retention`. */
  keepLast?: number;
  /** More retention policies (keepBest, keepEvery, keepWithin, deleteOlderThan, keepTagged), composed with
   * keepLast. The newest checkpoint, pointer targets and tagged checkpoints are never removed. */
  retention?: RetentionPolicy[];
  /** Saves in flight at once (default 1), from the call until durable. A save's snapshot is released earlier, once
   * the writer has read its bytes. */
  maxInflight?: number;
  /** Bytes in flight at once (default unlimited). A single save larger than this still runs alone. */
  maxInflightBytes?: number;
  /** What a save does when the limits are reached: wait for room (default) or skip this save. */
  onFull?: 'wait' | 'skip';
  /** Track a best checkpoint by `metric` under the `best` pointer; it is never pruned. */
  best?: 'max' | 'min';
  /** Called with a warning (an invalid checkpoint skipped on load, a skipped save). Default: console.warn. */
  onWarning?: (message: string) => void;
  /** 'lz4': compress tensors on the libuv thread pool before each write (default 'none'); see WriteOptions. */
  compression?: Compression;
  /** The checkpoint the first save of this run continues from (lineage across runs). */
  parent?: Parent;
  /** Store a tensor that has not changed since an earlier checkpoint of this run (same tfjs dataId, see
   * modelState) by reference to it instead of again (default false); docs/lifecycle.md. */
  dedup?: boolean;
  /** Take the run lock (default true). false: read-only use (ls, verify, loading) while a writer runs; such a
   * checkpointer never writes. */
  lock?: boolean;
  /** Replicate every durable checkpoint to object storage (s3://bucket/prefix, or RemoteOptions): uploaded in a
   * worker thread after the local commit, committed remotely with a record written last (docs/remote.md). A
   * directory with no checkpoint is first filled from the remote tier's newest valid checkpoint, so a run resumes
   * on an empty machine. Needs the optional package @aws-sdk/client-s3. */
  remote?: string | RemoteOptions;
  /** This process's rank in a sharded run of `worldSize` processes (docs/sharding.md): each rank saves its own
   * tensors (its shard), and a step is durable for every rank only once every rank's shard is; rank 0 commits it. */
  rank?: number;
  /** How many processes share the run (with `rank`). */
  worldSize?: number;
  /** Sharded run: how long rank 0 waits for the other ranks' shards of a step (and a rank for rank 0 at start)
   * before the step fails with ECKPT_PEER naming the missing ranks (default 60000). */
  peerTimeoutMs?: number;
}

export interface DurableInfo {
  step: number;
  path: string;
  bytes: number;
  /** ms from save() to committed. */
  msToDurable: number;
  pruned: string[];
  contentId: string | null;
  /** Tensor bytes stored by reference instead (dedup). */
  dedupedBytes: number;
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
  /** The save was handed to the writer before save() returned: it becomes durable with no further JavaScript turn.
   * false when its bytes need event-loop turns first (webgpu reads, lz4, a source without materializeNow): it
   * is handed over at the loop's next turns, so a loop that never yields should yield once after such a save. */
  queued: boolean;
  /** Resolves once the checkpoint file, its pointers, the manifest and retention's removals are committed (fsynced
   * and renamed into place: it survives kill -9 and power loss), with null for a skipped save; rejects with a
   * CheckpointError when the save failed (ENOSPC, EIO, ECKPT_ABORTED, ...). Never an unhandled rejection. */
  durable: Promise<DurableInfo | null>;
  /** With `remote`: settles when the checkpoint is committed in object storage (null when it was skipped: superseded
   * by a newer checkpoint before its upload started, or the save was skipped); rejects with a RemoteError
   * (ECKPT_REMOTE, with the S3 code) when the upload failed for good. Without `remote`: resolves null. */
  replicated: Promise<ReplicatedInfo | null>;
}

export interface LoadedCheckpoint {
  step: number;
  path: string;
  tensors: Record<string, TensorEntry>;
  state: unknown;
  metadata: Record<string, string>;
}

/** A whole sharded step: every rank's shard, in rank order (loadLatestStep). Each tensor is whole in exactly one
 * shard, so `shards` with any world size can be merged and split again (resharding). */
export interface LoadedStep {
  step: number;
  worldSize: number;
  /** The step's record. */
  path: string;
  shards: LoadedCheckpoint[];
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

/** One lane per Checkpointer: the writer aborts a save planned before an earlier save of the same lane failed. */
let nextLane = 1;

/** File names carry 10 digits of step. */
const MAX_STEP = 9_999_999_999;
const STEP_KEY = METADATA_KEYS.step;
const STATE_KEY = METADATA_KEYS.state;

function isSource(t: SavePayload['tensors']): t is TensorSource {
  return typeof (t as TensorSource).materialize === 'function';
}

/** Bytes a save will hold in flight; the full validation of the tensors is writeCheckpoint's. */
function sizeOf(tensors: Record<string, TensorEntry> | TensorSource): number {
  if (isSource(tensors)) {
    if (!Number.isSafeInteger(tensors.bytes) || tensors.bytes < 0) throw argumentError('a TensorSource must report its bytes as a non-negative integer');
    return tensors.bytes;
  }
  checkTensorRecord(tensors);
  let n = 0;
  for (const [name, t] of Object.entries(tensors)) {
    checkEntryKind(name, t);
    n += t.data.byteLength;
  }
  return n;
}

function metricsOf(payload: SavePayload): Record<string, number> {
  const out: Record<string, number> = {};
  if (payload.metrics !== undefined) {
    if (typeof payload.metrics !== 'object' || payload.metrics === null) throw argumentError('metrics must be an object of numbers');
    for (const [k, v] of Object.entries(payload.metrics)) {
      if (!NAME_RE.test(k)) throw argumentError(`metric name "${k}" must be ${NAME_RULE}`);
      if (typeof v !== 'number') throw argumentError(`metric ${k} must be a number`);
      if (Number.isFinite(v)) out[k] = v;
    }
  }
  if (payload.metric !== undefined) {
    if (typeof payload.metric !== 'number') throw argumentError('metric must be a number');
    if (Number.isFinite(payload.metric)) out.metric = payload.metric;
  }
  return out;
}

/** For retention: which checkpoints each one needs to load (those holding the tensors it references). */
function referencesOf(entries: readonly ManifestEntry[]): Map<number, number[]> {
  const stepOfFile = new Map(entries.map((e) => [e.file, e.step]));
  return new Map(entries.filter((e) => e.refs?.length).map((e) => [e.step, e.refs!.map((f) => stepOfFile.get(f)).filter((s): s is number => s !== undefined)]));
}

/** The pointer files a retention decision names: {step, file} plus, for a best pointer, its metric. */
function pointerFiles(pointers: Record<string, number>, kept: readonly ManifestEntry[]): { name: string; data: Uint8Array }[] {
  return Object.entries(pointers).map(([name, step]) => {
    const target = kept.find((e) => e.step === step)!;
    const metricName = name === POINTER_BEST ? 'metric' : name.startsWith('best-') ? name.slice(5) : null;
    const metric = metricName !== null ? target.metrics[metricName] : undefined;
    return { name, data: renderPointer({ step, file: target.file, ...(metric !== undefined ? { metric } : {}) }) };
  });
}

export class Checkpointer {
  readonly dir: string;
  readonly store: CheckpointStore;
  private readonly env: RunEnvironment;
  private readonly policies: RetentionPolicy[];
  private readonly onFull: 'wait' | 'skip';
  private readonly compression: Compression;
  private readonly warn: (message: string) => void;
  private readonly ready: Promise<void>;
  private readonly admission: Admission;
  private readonly inflight = new Set<Promise<unknown>>();
  /** Saves are submitted to the store in the order they were queued; each waits only for the one before to be
   * submitted (its snapshot read), not for it to be durable. */
  private submitted: Promise<unknown> = Promise.resolve();
  /** The run as it will be once everything submitted has committed. */
  private entries: ManifestEntry[] = [];
  private lockHandle: StoreLock | null = null;
  /** The other run's checkpoint this run started from (options.parent, or recovered from the record). */
  private origin: Parent | null;
  private closed = false;
  private opened = false;
  /** Settles when the newest save() call has passed admission and handed its save to commit(). */
  private inLine: Promise<void> = Promise.resolve();
  private firstError: unknown = null;
  private readonly lane = nextLane++;
  /** The lane's failure generation as far as this checkpointer has learned (a failed save raises it). */
  private generation = 0;
  /** Saves taking the path that needs turns (materialize, compression), not yet handed to the store. */
  private unsubmitted = 0;
  private newestDurable: number | null = null;
  /** Set by commit() before its first await: whether it handed its save to the store synchronously. */
  private handedOverNow = false;
  /** The remote tier (options.remote), once the run is open with the lock. */
  private replicator: ReplicatorLike | null = null;
  /** The remote could not be read at start: no replication this run (restoreFromRemote says why). */
  private remoteOff = false;
  private readonly remote: RemoteOptions | null;
  private readonly keepLastCount: number;
  /** A sharded run (options.rank and worldSize); its coordination worker once the run is open. */
  private readonly sharding: { rank: number; worldSize: number; timeoutMs: number } | null;
  private coordination: CoordinationLike | null = null;
  /** A sharded run's incarnation (node/shard-coordination.ts), written into every shard. */
  private epoch = '';
  /** A sharded run's steps increase: the newest step this rank has saved or found decided. */
  private lastShardStep = -1;
  /** Sharded saves whose shard is written but whose step is not decided yet (flush and close wait for them). */
  private readonly undecided = new Set<Promise<unknown>>();
  private readonly counters: CheckpointerStats = { saved: 0, skipped: 0, failed: 0, inflight: 0, inflightBytes: 0, peakInflightBytes: 0, totalWaitMs: 0 };

  /** Returns at once. In the background it opens the store (creating the directory), takes the run lock, removes
   * temporary files a killed writer left, fills an empty directory from `remote` when one is given, and reconciles
   * the manifest with the checkpoints present. The first save(), loadLatest() or manifest() waits for that, and
   * throws what it met (ECKPT_LOCKED, EACCES, ...). Bad options throw ECKPT_ARGS here. */
  constructor(opts: CheckpointerOptions) {
    if (!opts || typeof opts !== 'object') throw argumentError('Checkpointer needs options: { dir } or { store }');
    if (opts.store === undefined && (typeof opts.dir !== 'string' || opts.dir === '' || opts.dir.includes('\0')))
      throw argumentError('dir must be a non-empty string without NUL bytes (or give a store)');
    const env = environment();
    this.env = env;
    this.store = opts.store ?? env.directoryStore(opts.dir!);
    this.dir = this.store.location;
    const keep = opts.keepLast ?? 3;
    const maxInflight = opts.maxInflight ?? 1;
    const maxInflightBytes = opts.maxInflightBytes ?? Infinity;
    this.onFull = opts.onFull ?? 'wait';
    this.warn = opts.onWarning ?? ((m) => console.warn(`ckptio: ${m}`));
    this.compression = opts.compression ?? 'none';
    this.origin = opts.parent ?? null;
    this.keepLastCount = keep;
    this.remote = opts.remote === undefined ? null : typeof opts.remote === 'string' ? { url: opts.remote } : opts.remote;
    if (this.remote) {
      if (env.remote === null) throw argumentError(`remote replication is not available in ${env.name}`);
      env.remote.validate(this.remote); // a bad URL fails here, not at the first save
      if (!env.isDirectoryStore(this.store)) throw argumentError('remote replicates a local run directory: it cannot be combined with a custom store');
      if (this.remote.keepLast !== undefined && (!Number.isInteger(this.remote.keepLast) || this.remote.keepLast < 1))
        throw argumentError('remote.keepLast must be an integer >= 1');
      for (const [key, min] of [
        ['closeTimeoutMs', 0],
        ['retryMs', 0],
        ['leaseMs', 1000],
      ] as const) {
        const v = this.remote[key];
        if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < min)) throw argumentError(`remote.${key} must be a number of ms >= ${min}`);
      }
      if (this.remote.onProgress !== undefined && typeof this.remote.onProgress !== 'function') throw argumentError('remote.onProgress must be a function');
    }
    if (!Number.isInteger(keep) || keep < 1) throw argumentError('keepLast must be an integer >= 1');
    this.sharding = Checkpointer.shardingOf(opts, this.store, env);
    if (!Number.isInteger(maxInflight) || maxInflight < 1) throw argumentError('maxInflight must be an integer >= 1');
    if (!(maxInflightBytes > 0)) throw argumentError('maxInflightBytes must be > 0');
    if (this.onFull !== 'wait' && this.onFull !== 'skip') throw argumentError("onFull must be 'wait' or 'skip'");
    if (this.compression !== 'none' && this.compression !== 'lz4') throw argumentError("compression must be 'none' or 'lz4'");
    if (this.compression === 'lz4' && !env.lz4)
      throw argumentError(`compression 'lz4' is not available in ${env.name}: checkpoints there are written uncompressed`);
    if (opts.best !== undefined && opts.best !== 'max' && opts.best !== 'min') throw argumentError("best must be 'max' or 'min'");
    if (opts.retention !== undefined && (!Array.isArray(opts.retention) || !opts.retention.every((p) => p && typeof p.name === 'string'))) {
      throw argumentError('retention must be an array of policies (keepBest, keepEvery, ...)');
    }
    this.policies = [keepLast(keep), ...(opts.best ? [keepBest({ metric: 'metric', mode: opts.best, pointer: POINTER_BEST })] : []), ...(opts.retention ?? [])];
    this.admission = new Admission({ maxInflight, maxInflightBytes });
    this.dedup = opts.dedup ? new DedupIndex() : null;
    this.ready = this.open(opts.lock ?? true);
    this.ready.catch(() => {});
  }

  /** options.rank and worldSize checked: both or neither, and only what a sharded run supports alongside. */
  private static shardingOf(
    opts: CheckpointerOptions,
    store: CheckpointStore,
    env: RunEnvironment,
  ): { rank: number; worldSize: number; timeoutMs: number } | null {
    if (opts.rank === undefined && opts.worldSize === undefined) {
      if (opts.peerTimeoutMs !== undefined) throw argumentError('peerTimeoutMs applies to a sharded run: give rank and worldSize too');
      return null;
    }
    const { rank, worldSize } = opts;
    if (!Number.isInteger(worldSize) || worldSize! < 1 || worldSize! > MAX_WORLD_SIZE)
      throw argumentError(`worldSize must be an integer from 1 to ${MAX_WORLD_SIZE}`);
    if (!Number.isInteger(rank) || rank! < 0 || rank! >= worldSize!) throw argumentError(`rank must be an integer from 0 to worldSize - 1 (${worldSize! - 1})`);
    const timeoutMs = opts.peerTimeoutMs ?? 60_000;
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 1) throw argumentError('peerTimeoutMs must be a number of ms >= 1');
    if (env.sharding === null) throw argumentError(`a sharded run (rank, worldSize) is not available in ${env.name}`);
    if (!env.isDirectoryStore(store)) throw argumentError('a sharded run (rank, worldSize) needs a run directory (dir): its ranks coordinate through it');
    for (const [key, what] of [
      ['remote', 'remote replication'],
      ['dedup', 'dedup'],
      ['best', 'a best pointer'],
      ['retention', 'retention policies other than keepLast'],
      ['parent', 'parent'],
    ] as const) {
      const v = opts[key];
      if (v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0))
        throw argumentError(`${what} is not available in a sharded run (rank, worldSize); see docs/sharding.md`);
    }
    return { rank: rank!, worldSize: worldSize!, timeoutMs };
  }

  /** Settles, now, what the writer and the coordination worker finished since the last call. */
  private pollAll(): void {
    this.store.poll?.();
    this.coordination?.drain();
  }

  /** A sharded run's start: this rank's own lock; rank 0 cleans what never committed and names itself
   * coordinator, the others wait for it; then the coordination worker. */
  private async openSharded(lock: boolean): Promise<void> {
    const sh = this.sharding!;
    const store = this.store;
    if (lock) {
      await store.open();
      this.lockHandle = await store.lock(rankLockName(sh.rank));
      const stale = await store.cleanStaleTemps();
      if (stale.length) this.warn(`removed ${stale.length} stale temporary file(s) from an interrupted save: ${stale.join(', ')}`);
      const { epoch, coordination } = await this.env.sharding!.coordinate(
        store,
        { rank: sh.rank, worldSize: sh.worldSize, keepLast: this.keepLastCount, timeoutMs: sh.timeoutMs },
        this.warn,
      );
      this.epoch = epoch;
      this.coordination = coordination;
    }
    this.newestDurable = (await committedSteps(this.store, () => {}))[0]?.step ?? null; // loading reports bad records
    this.lastShardStep = this.newestDurable ?? -1;
    this.opened = true;
  }

  private async open(lock: boolean): Promise<void> {
    if (this.sharding) return this.openSharded(lock);
    if (lock) {
      await this.store.open();
      this.lockHandle = await this.store.lock();
      const stale = await this.store.cleanStaleTemps();
      if (stale.length) this.warn(`removed ${stale.length} stale temporary file(s) from an interrupted save: ${stale.join(', ')}`);
      if (this.remote && !(await this.store.list()).some((o) => stepOf(o.name) !== null))
        this.remoteOff = !(await this.env.remote!.restore(this.remote, this.dir, this.warn));
    }
    this.entries = await this.reconcile();
    if (lock && this.remote && !this.remoteOff) {
      const newest = this.entries.length ? this.entries[this.entries.length - 1]!.file : null;
      this.replicator = this.env.remote!.replicator(this.remote, this.dir, this.keepLastCount, newest, this.warn);
    }
    this.origin ??= [...this.entries].reverse().find((e) => e.origin)?.origin ?? null;
    this.newestDurable = this.entries.length ? this.entries[this.entries.length - 1]!.step : null;
    this.opened = true;
  }

  /** The manifest, checked against the checkpoint files present (run-reader.ts): entries whose file is gone are
   * dropped, files the manifest lacks (a crash between the data file and the manifest) are adopted from their
   * headers, and a missing or corrupt manifest is rebuilt the same way. */
  private async reconcile(): Promise<ManifestEntry[]> {
    const run = await readRun(this.store, { headers: 'missing' });
    if (run.manifestProblem) this.warn(`the manifest is unreadable and is rebuilt from the checkpoints' headers (${run.manifestProblem.message})`);
    for (const c of run.checkpoints)
      if (c.present && !c.inManifest && c.problem) this.warn(`${c.file} is not a readable checkpoint and is left out of the manifest (${c.problem.message})`);
    this.diskPointers = new Map();
    for (const p of run.pointers) {
      if (p.step === null) {
        if (p.problem?.code !== 'ENOENT') this.warn(`${p.name} is not a readable pointer and is ignored (${p.problem?.message ?? 'unreadable'})`);
      } else if (p.tag === null) {
        this.diskPointers.set(p.name, p.step);
      }
    }
    const entries = presentEntries(run);
    this.committed = new Set(entries.map((e) => e.file));
    return entries;
  }

  /** The newest step whose checkpoint is durable in this directory (this run's saves and what was there at open),
   * or null. Synchronous: it first settles what the writer finished, so a loop that never yields sees it too. */
  get lastDurableStep(): number | null {
    this.pollAll();
    return this.newestDurable;
  }

  get stats(): CheckpointerStats {
    return { ...this.counters, inflight: this.inflight.size, inflightBytes: this.admission.inflightBytes, peakInflightBytes: this.admission.peakInflightBytes };
  }

  /** The run as recorded: every committed checkpoint (and those queued), oldest first. */
  async manifest(): Promise<ManifestEntry[]> {
    await this.ready;
    return this.entries.map((e) => ({ ...e }));
  }

  /** Takes the snapshot and queues the write. Resolves when the caller may continue. */
  async save(step: number, payload: SavePayload): Promise<SaveHandle> {
    const source = payload && typeof payload === 'object' && payload.tensors && isSource(payload.tensors) ? payload.tensors : null;
    let handedOver = false;
    let counted = false;
    let leaveLine = () => {};
    if (this.closed) {
      source?.release();
      throw new CheckpointError('checkpointer is closed', { code: 'ECKPT_CLOSED' });
    }
    this.pending++; // close() waits for every save called before it
    try {
      if (!Number.isSafeInteger(step) || step < 0 || step > MAX_STEP) throw argumentError(`step must be an integer from 0 to ${MAX_STEP}`);
      if (!payload || typeof payload !== 'object' || !payload.tensors) throw argumentError('save needs { tensors }');
      const t0 = performance.now();
      const bytes = sizeOf(payload.tensors);
      const metrics = metricsOf(payload);
      let state: string;
      try {
        state = JSON.stringify(payload.state ?? null);
      } catch (err) {
        throw argumentError(`state is not JSON-serializable: ${(err as Error).message}`);
      }
      // Saves pass admission and reach commit() one at a time, in call order (a later call must not take a slot
      // freed for an earlier one and reach the store first). Waiting for a save that has returned is a microtask.
      const ahead = this.inLine;
      this.inLine = new Promise<void>((resolve) => {
        leaveLine = resolve;
      });
      await ahead;
      // What the writer finished since the last call is settled first, synchronously: consumed snapshots go back,
      // durable saves leave admission, a failure is learned before this save is planned.
      this.pollAll();
      if (!this.opened) await this.ready;
      if (this.lockHandle === null) throw new CheckpointError('checkpointer was opened with lock: false (read-only)', { code: 'ECKPT_ARGS' });
      if (this.sharding && step <= this.lastShardStep) throw this.stepsMustIncrease(step);
      // A tag(), prune() or close() in progress goes first; from here on this save counts as active, which
      // they wait for.
      for (let b = this.barrier; ; b = this.barrier) {
        await b;
        if (b === this.barrier) break;
      }
      this.active++;
      counted = true;
      let waitedMs = 0;
      if (!this.admission.hasRoom(bytes)) {
        if (this.onFull === 'skip') {
          this.counters.skipped++;
          this.warn(`save of step ${step} skipped: ${this.inflight.size} save(s), ${this.admission.inflightBytes} bytes in flight`);
          // A sharded step needs every rank's shard: this rank's skip fails it for all, now, not at a timeout.
          this.coordination?.abort(step, 'skipped its save (onFull: skip, no room)');
          return {
            step,
            skipped: true,
            waitedMs: 0,
            stallMs: performance.now() - t0,
            queued: false,
            durable: Promise.resolve(null),
            replicated: Promise.resolve(null),
          };
        }
        waitedMs = await this.admission.wait(bytes);
        this.counters.totalWaitMs += waitedMs;
      }
      this.admission.enter(bytes);
      if (waitedMs > 0) this.pollAll(); // learn what finished while this save waited, before it is planned
      handedOver = true; // commit() releases the source from here on
      // Admission is held until the save is durable, not only until its bytes are read: the next save's decisions
      // (its pointers, what retention removes) assume this one committed. It is left when the save settles, inside
      // the drain that learns it (the next save() call, or the writer's wake-up turn).
      let left = false;
      let failed = false;
      let durable: Promise<DurableInfo> | null = null;
      // Called when the save settles (inside the drain that learns it), and again when `durable` settles: a failure
      // that only the latter knows (a throw from the snapshot's release) is still recorded.
      const leave = (err: unknown) => {
        if (!left) {
          left = true;
          if (durable) this.inflight.delete(durable);
          this.admission.leave(bytes);
        }
        if (err !== null && !failed) {
          failed = true;
          this.counters.failed++;
          if (this.firstError === null) this.firstError = err;
        }
      };
      // The upload is posted to the replication worker inside the drain that learns the save durable (one
      // postMessage); `replicated` settles from the worker's answer.
      let replicated: Promise<ReplicatedInfo | null> = Promise.resolve(null);
      if (this.replicator) {
        const replicator = this.replicator;
        let resolveReplicated!: (info: ReplicatedInfo | null) => void;
        let rejectReplicated!: (err: unknown) => void;
        replicated = new Promise((res, rej) => {
          resolveReplicated = res;
          rejectReplicated = rej;
        });
        replicated.catch(() => {}); // a caller who never looks at it must not get an unhandled rejection
        const replicate = (file: string, contentId: string | null, refs: string[]) => {
          replicator.replicate(step, file, contentId, refs).then(resolveReplicated, rejectReplicated);
        };
        durable = this.commit(step, payload, state, metrics, bytes, t0, leave, replicate);
        durable.catch(rejectReplicated);
      } else {
        // commit() hands the save to the store before its first await when the bytes are in hand.
        durable = this.commit(step, payload, state, metrics, bytes, t0, leave, null);
      }
      const queued = this.handedOverNow;
      if (!left) this.inflight.add(durable);
      durable.then(
        () => leave(null),
        (err: unknown) => leave(err),
      );
      return { step, skipped: false, waitedMs, stallMs: performance.now() - t0 - waitedMs, queued, durable, replicated };
    } finally {
      if (!handedOver) source?.release();
      leaveLine();
      if (counted && --this.active === 0) for (const wake of this.idleWaiters.splice(0)) wake();
      if (--this.pending === 0) for (const wake of this.pendingWaiters.splice(0)) wake();
    }
  }

  /** Runs `fn` with no save in progress or starting (new saves wait), after every earlier one has settled. */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.barrier;
    let open!: () => void;
    this.barrier = new Promise<void>((resolve) => {
      open = resolve;
    });
    try {
      await previous;
      while (this.active > 0 || this.inflight.size > 0) {
        if (this.active > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
        await Promise.allSettled([...this.inflight]);
      }
      return await fn();
    } finally {
      open();
    }
  }

  private async commit(
    step: number,
    payload: SavePayload,
    state: string,
    metrics: Record<string, number>,
    bytes: number,
    t0: number,
    onSettled: (err: unknown) => void,
    replicate: ((file: string, contentId: string | null, refs: string[]) => void) | null,
  ): Promise<DurableInfo> {
    const source = isSource(payload.tensors) ? payload.tensors : null;
    // Released once: when the writer has read the bytes (while the file is still being made durable: a wasm arena
    // goes back to its pool, held cpu arrays to the collector), or when the save settles without that. A throw
    // from release() fails the save, as it would have at the end.
    let released = false;
    let releaseError: unknown = null;
    const release = () => {
      if (released) return;
      released = true;
      try {
        source?.release();
      } catch (err) {
        releaseError = err;
      }
    };
    let job: Promise<DurableInfo>;
    const inHand = this.bytesInHand(payload, source, release);
    this.handedOverNow = inHand !== null;
    if (inHand !== null) {
      // Handed to the writer now, before save() returns: it runs to durable with no further JavaScript turn.
      try {
        job = this.submit(step, inHand, source, state, metrics, bytes, payload.copy ?? false, t0, release, onSettled, replicate);
      } catch (err) {
        release();
        throw err;
      }
    } else {
      const previous = this.submitted;
      let markSubmitted!: () => void;
      this.submitted = new Promise<void>((resolve) => {
        markSubmitted = resolve;
      });
      this.unsubmitted++;
      try {
        // A source whose bytes can be in hand at once (views of the wasm heap among them) is taken only right before
        // the hand-over, after the turns below: a view taken earlier could be outdated by then (the heap grows).
        const late = source?.materializeNow !== undefined && this.compression === 'none';
        let tensors = late ? null : TensorList.from(source ? await source.materialize() : (payload.tensors as Record<string, TensorEntry>));
        await previous;
        if (this.needsReconcile) {
          this.needsReconcile = false;
          this.pointerCache.clear();
          this.entries = await this.reconcile();
        }
        tensors ??= source!.materializeNow!() ?? TensorList.from(await source!.materialize());
        job = this.submit(step, tensors, source, state, metrics, bytes, payload.copy ?? false, t0, release, onSettled, replicate);
      } catch (err) {
        release();
        throw err;
      } finally {
        this.unsubmitted--;
        markSubmitted();
      }
    }
    let info: DurableInfo;
    try {
      info = await job;
    } finally {
      release();
    }
    if (releaseError !== null) throw releaseError;
    return info;
  }

  /** The save's bytes when they can be handed over now: plain tensors, or a source whose bytes are in hand, with
   * no save still on the path that needs turns before it (saves reach the store in the order they were made), no
   * record to re-read after a failure and no compression (it runs on the thread pool first). Else null. */
  private bytesInHand(payload: SavePayload, source: TensorSource | null, release: () => void): TensorList | null {
    if (this.unsubmitted > 0 || this.needsReconcile || this.compression !== 'none') return null;
    if (source === null) return TensorList.from(payload.tensors as Record<string, TensorEntry>);
    let list: TensorList | null;
    try {
      list = source.materializeNow?.() ?? null;
    } catch (err) {
      release();
      throw err;
    }
    return list;
  }

  /** Decides everything about this save now (in queue order) and hands it to the store as one commit. */
  private submit(
    step: number,
    tensors: TensorList,
    source: TensorSource | null,
    state: string,
    metrics: Record<string, number>,
    bytes: number,
    copy: boolean,
    t0: number,
    onConsumed: () => void,
    onSettled: (err: unknown) => void,
    replicate: ((file: string, contentId: string | null, refs: string[]) => void) | null,
  ): Promise<DurableInfo> {
    if (this.sharding) return this.submitShard(step, tensors, source, state, copy, t0, onConsumed, onSettled);
    const file = checkpointName(step);
    const referenced = this.entries.filter((e) => e.refs?.includes(file)).map((e) => e.step);
    if (referenced.length) {
      throw argumentError(`step ${step} cannot be saved again: checkpoints ${referenced.join(', ')} store tensors by reference to its file`);
    }
    const planned = this.dedup?.plan(file, tensors, source?.identities, (f) => this.committed.has(f) && this.entries.some((e) => e.file === f));
    const written = planned ? planned.write : tensors;
    const refs = planned?.refs ?? {};
    const refFiles = [...new Set(Object.values(refs).map((r) => r.file))];
    const previous = this.entries.filter((e) => e.step < step).pop();
    const knownId = previous?.contentId && previous.contentId !== CONTENT_ID_TOKEN ? previous.contentId : null;
    const parent: Parent | null = previous ? { step: previous.step, ...(knownId ? { contentId: knownId } : {}) } : this.origin;
    const origin = this.origin;
    const time = new Date().toISOString();
    const entry: ManifestEntry = {
      step,
      file,
      time,
      bytes,
      metrics,
      contentId: CONTENT_ID_TOKEN,
      parent,
      origin,
      tags: [],
      keptBy: [],
      ...(refFiles.length ? { refs: refFiles, dedupedBytes: planned!.dedupedBytes } : {}),
    };
    const before = this.entries;
    const replaced = before.find((e) => e.step === step);
    if (replaced) entry.tags = replaced.tags;
    const next = [...before.filter((e) => e.step !== step), entry].sort((a, b) => a.step - b.step);
    const candidates = next.map((e) => ({ step: e.step, time: Date.parse(e.time), metrics: e.metrics, tags: e.tags }));
    const decision = decideRetention(candidates, [...this.policies, this.honouredPointers(candidates)], Date.now(), referencesOf(next));
    // This save's own file is never removed by its own job (a save below the newest step stays until the next).
    if (!decision.kept.has(step)) decision.kept.set(step, ['this save (below the newest step)']);
    const kept = next.filter((e) => decision.kept.has(e.step)).map((e) => ({ ...e, keptBy: decision.kept.get(e.step)! }));
    const removed = next.filter((e) => !decision.kept.has(e.step)).map((e) => e.file);
    // Pointers first, then the manifest, then the removals: nothing goes while a pointer or the record names it.
    const files: { name: string; data: Uint8Array }[] = [];
    for (const f of pointerFiles(decision.pointers, kept)) {
      const text = utf8Text(f.data);
      if (this.pointerCache.get(f.name) === text) continue; // unchanged pointers are not rewritten
      this.pointerCache.set(f.name, text);
      files.push(f);
    }
    // Only this save's own entry may carry the token the writer replaces with its content id; an earlier save
    // still in flight is recorded without one for now (close() rewrites the manifest once it is known).
    const rendered = kept.map((e) => (e === kept.find((k) => k.step === step) || e.contentId !== CONTENT_ID_TOKEN ? e : { ...e, contentId: null }));
    if (rendered.some((e, i) => e !== kept[i])) this.manifestStale = true;
    files.push({ name: MANIFEST_NAME, data: renderManifest({ version: 1, entries: rendered, pointers: decision.pointers }) });
    this.lastPointers = decision.pointers;
    this.entries = kept;
    const metadata: Record<string, string> = {
      ...(source?.metadata ?? {}),
      [STEP_KEY]: String(step),
      [STATE_KEY]: state,
      ...describingMetadata(entry),
      ...(refFiles.length ? { [METADATA_KEYS.refs]: JSON.stringify(refs) } : {}),
    };
    // Settled once (handToStore), by whichever comes first: the store's synchronous onSettled (inside a poll) or its promise.
    let resolve!: (info: DurableInfo) => void;
    let reject!: (err: unknown) => void;
    const durable = new Promise<DurableInfo>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const settle = (err: unknown, result: SaveResult | undefined): void => {
      if (result === undefined) {
        // What was decided assumed this save would commit; the record is re-read from the store before the next
        // decision is made (this save's pointers, manifest and removals happened in part or not at all).
        this.entries = before;
        this.needsReconcile = true;
        this.dedup?.forget(file);
        onSettled(err);
        reject(err);
        return;
      }
      this.committed.add(file);
      for (const f of result.removed) this.committed.delete(f);
      const contentId = result.contentId ?? null;
      const mine = this.entries.find((e) => e.step === step && e.contentId === CONTENT_ID_TOKEN);
      if (mine) mine.contentId = contentId;
      for (const e of this.entries) if (e.parent?.step === step && e.parent.contentId === undefined && contentId) e.parent.contentId = contentId;
      this.counters.saved++;
      this.newestDurable = Math.max(this.newestDurable ?? step, step);
      const info: DurableInfo = {
        step,
        path: `${this.dir}/${file}`,
        bytes: result.bytes,
        msToDurable: performance.now() - t0,
        pruned: result.removed,
        contentId,
        dedupedBytes: planned?.dedupedBytes ?? 0,
      };
      if (result.compression) info.compression = result.compression;
      onSettled(null);
      resolve(info);
      replicate?.(file, contentId, refFiles);
      this.record({ event: 'save', step, file, time: entry.time, metrics: entry.metrics });
      // Last: the save is settled whatever onWarning does.
      try {
        if (result.leftover)
          this.warn(
            `step ${step} is durable, but the file it replaced stays at ${result.leftover.path} (${result.leftover.code} on unlink); it is removed at the next start`,
          );
        for (const l of result.fileLeftovers) this.warn(`${l.path}: the replaced file stays (${l.code} on unlink); it is removed at the next start`);
      } catch {
        /* a throwing onWarning must not undo a durable save */
      }
    };
    this.handToStore(file, written, metadata, copy, files, removed, onConsumed, settle);
    return durable;
  }

  /** One commit of this checkpointer's lane: `settle` learns its outcome once, from the store's synchronous
   * onSettled (inside a poll) or from its promise, whichever comes first, after the lane's failure generation the
   * outcome carries is learned. */
  private handToStore(
    name: string,
    tensors: TensorList,
    metadata: Record<string, string>,
    copy: boolean,
    files: { name: string; data: Uint8Array }[],
    remove: string[],
    onConsumed: () => void,
    settle: (err: unknown, result: SaveResult | undefined) => void,
  ): void {
    let settled = false;
    const once = (err: unknown, result: SaveResult | undefined): void => {
      if (settled) return;
      settled = true;
      const generation = (result ?? (err as { generation?: unknown } | null))?.generation;
      if (typeof generation === 'number' && generation > this.generation) this.generation = generation;
      settle(err, result);
    };
    this.store
      .commit({
        name,
        tensors,
        options: { metadata, copy, compression: this.compression },
        files,
        remove,
        onConsumed,
        onSettled: once,
        lane: { id: this.lane, generation: this.generation },
      })
      .then(
        (result) => once(null, result),
        (err: unknown) => once(err, undefined),
      );
  }

  private stepsMustIncrease(step: number): CheckpointError {
    return argumentError(
      `a sharded run's steps must increase: step ${step} is at or below step ${this.lastShardStep}, already saved or committed in ${this.dir}`,
    );
  }

  /** A sharded run's save: this rank's shard alone (no pointer, no removal: rank 0's worker does those after the
   * step's record). The step is posted to the coordination worker before the shard is handed to the writer, so
   * both run to the end with no further JavaScript. Admission is left when the shard is written (a slow rank holds
   * up no other rank's next save); `durable` settles when the step is decided. */
  private submitShard(
    step: number,
    tensors: TensorList,
    source: TensorSource | null,
    state: string,
    copy: boolean,
    t0: number,
    onConsumed: () => void,
    onSettled: (err: unknown) => void,
  ): Promise<DurableInfo> {
    const sh = this.sharding!;
    const coordination = this.coordination!;
    // A step is decided once: saving it again would pair a new shard with the old record.
    if (step <= this.lastShardStep) throw this.stepsMustIncrease(step);
    this.lastShardStep = step;
    const file = shardName(step, sh.rank, sh.worldSize);
    const metadata: Record<string, string> = {
      ...(source?.metadata ?? {}),
      [STEP_KEY]: String(step),
      [STATE_KEY]: state,
      [METADATA_KEYS.time]: new Date().toISOString(),
      [METADATA_KEYS.shard]: JSON.stringify({ rank: sh.rank, worldSize: sh.worldSize, epoch: this.epoch }),
    };
    // Both halves learned synchronously (the writer's result in a poll, the decision in a drain): lastDurableStep
    // counts the step as soon as both are in.
    let shardWritten = false;
    let stepCommitted = false;
    const bothIn = () => {
      if (shardWritten && stepCommitted) this.newestDurable = Math.max(this.newestDurable ?? step, step);
    };
    const decided = coordination.expect(step, () => {
      stepCommitted = true;
      bothIn();
    });
    let resolveShard!: (r: SaveResult) => void;
    let rejectShard!: (err: unknown) => void;
    const written = new Promise<SaveResult>((res, rej) => {
      resolveShard = res;
      rejectShard = rej;
    });
    const settle = (err: unknown, result: SaveResult | undefined): void => {
      if (result === undefined) {
        const e = err as { code?: string; message?: string };
        coordination.abort(step, `failed to write its shard (${e.code ?? 'error'}: ${e.message ?? String(err)})`);
        onSettled(err);
        rejectShard(err);
        return;
      }
      shardWritten = true;
      bothIn();
      onSettled(null);
      resolveShard(result);
    };
    try {
      this.handToStore(file, tensors, metadata, copy, [], [], onConsumed, settle);
    } catch (err) {
      settle(err, undefined); // the step is aborted for every rank now, not at its timeout
      throw err;
    }
    const durable = (async (): Promise<DurableInfo> => {
      const result = await written;
      const record = await decided;
      const mine = record.shards[sh.rank];
      if (record.worldSize !== sh.worldSize || mine?.contentId !== result.contentId)
        throw new PeerError(`step ${step}'s record does not list the shard this rank wrote (${file}): another process wrote the step`, {
          step,
          ranks: [sh.rank],
          path: `${this.dir}/${decisionName(step)}`,
        });
      this.counters.saved++;
      this.newestDurable = Math.max(this.newestDurable ?? step, step);
      this.record({ event: 'save', step, file: decisionName(step), time: record.time, metrics: {} });
      const info: DurableInfo = {
        step,
        path: `${this.dir}/${decisionName(step)}`,
        bytes: result.bytes,
        msToDurable: performance.now() - t0,
        pruned: [],
        contentId: result.contentId ?? null,
        dedupedBytes: 0,
      };
      if (result.compression) info.compression = result.compression;
      return info;
    })();
    this.undecided.add(durable);
    durable.then(
      () => this.undecided.delete(durable),
      () => this.undecided.delete(durable),
    );
    return durable;
  }

  private readonly pointerCache = new Map<string, string>();
  private readonly dedup: DedupIndex | null;
  /** save() calls between their start and their hand-over to commit(). */
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  /** save() calls not yet returned (admitted or refused). */
  private pending = 0;
  private pendingWaiters: (() => void)[] = [];
  private barrier: Promise<void> = Promise.resolve();
  /** Pointer files in the directory (name -> step): the ones no policy of this run maintains are still honoured. */
  private diskPointers = new Map<string, number>();
  /** Checkpoints whose save completed (dedup refers only to these). */
  private committed = new Set<string>();
  /** A save failed: re-read the record from the store before deciding the next one. */
  private needsReconcile = false;
  private manifestStale = false;
  private lastPointers: Record<string, number> = {};

  /** Pointers in the directory that none of this run's policies maintains (a best-f1 kept by an earlier run with
   * other flags): what they name stays. */
  private honouredPointers(candidates: readonly RetentionEntry[]): RetentionPolicy {
    const maintained = new Set([POINTER_LATEST, ...this.policies.flatMap((p) => Object.keys(p.pointers?.(candidates) ?? {}))]);
    const keep = new Map<number, string>();
    for (const [name, step] of this.diskPointers) if (!maintained.has(name)) keep.set(step, `pointer ${name}`);
    return { name: 'pointers in the directory', keep: () => keep };
  }

  /** Appends to the run's history (history.ts), in order, off the calling thread's critical path (the append is
   * queued here and done on the libuv pool). A store without appends keeps no history. Only a writer records. */
  private record(event: HistoryEvent): void {
    const store = this.store;
    if (!store.appendSmall || this.lockHandle === null) return;
    const line = renderHistoryLine(event);
    this.historyWrites = this.historyWrites
      .then(() => store.appendSmall!(HISTORY_NAME, line))
      .catch((err: unknown) => {
        if (this.historyFailed) return;
        this.historyFailed = true;
        try {
          this.warn(`the run's history (${HISTORY_NAME}) could not be appended to; checkpoints are not affected (${(err as Error).message})`);
        } catch {
          /* a throwing onWarning must not break the chain */
        }
      });
  }

  private historyWrites: Promise<void> = Promise.resolve();
  private historyFailed = false;

  /** Rewrites the manifest when a content id became known after the last save's manifest was rendered. */
  private async refreshManifest(): Promise<void> {
    if (!this.manifestStale || this.entries.some((e) => e.contentId === CONTENT_ID_TOKEN)) return;
    this.manifestStale = false;
    await this.store.writeSmall(MANIFEST_NAME, renderManifest({ version: 1, entries: this.entries, pointers: this.lastPointers }));
  }

  /** Applies retention now (default: this checkpointer's policies) and returns what goes and why the rest stays.
   * The same order as a save: pointers, then the manifest, then the removals. `dryRun` changes nothing. */
  async prune(policies: RetentionPolicy[] = this.policies, options: { dryRun?: boolean } = {}): Promise<{ removed: string[]; kept: ManifestEntry[] }> {
    await this.ready;
    if (this.lockHandle === null) throw new CheckpointError('checkpointer was opened with lock: false (read-only)', { code: 'ECKPT_ARGS' });
    if (this.sharding) throw argumentError('prune() is not available in a sharded run: rank 0 applies keepLast at each commit');
    return this.exclusive(() => this.pruneNow(policies, options));
  }

  private async pruneNow(policies: RetentionPolicy[], options: { dryRun?: boolean }): Promise<{ removed: string[]; kept: ManifestEntry[] }> {
    await this.flush();
    if (this.needsReconcile) {
      this.needsReconcile = false;
      this.entries = await this.reconcile();
    }
    // Pointers already on disk that these policies do not maintain (a best-f1 kept by the trainer) still name
    // their checkpoints: those stay.
    const existing = new Map<number, string>();
    for (const { name } of await this.store.list()) {
      if (name !== POINTER_LATEST && name !== POINTER_BEST && !name.startsWith('best-')) continue;
      const p = await readPointer(this.store, name);
      if (p) existing.set(p.step, `pointer ${name}`);
    }
    const pointed: RetentionPolicy = { name: 'existing pointers', keep: () => existing };
    const decision = decideRetention(
      this.entries.map((e) => ({ step: e.step, time: Date.parse(e.time), metrics: e.metrics, tags: e.tags })),
      [...policies, pointed],
      Date.now(),
      referencesOf(this.entries),
    );
    const kept = this.entries.filter((e) => decision.kept.has(e.step)).map((e) => ({ ...e, keptBy: decision.kept.get(e.step)! }));
    const removed = this.entries.filter((e) => !decision.kept.has(e.step)).map((e) => e.file);
    if (options.dryRun) return { removed, kept };
    for (const f of pointerFiles(decision.pointers, kept)) await this.store.writeSmall(f.name, f.data);
    this.pointerCache.clear();
    await this.store.writeSmall(MANIFEST_NAME, renderManifest({ version: 1, entries: kept, pointers: decision.pointers }));
    this.entries = kept;
    this.lastPointers = decision.pointers;
    await this.store.remove(removed);
    return { removed, kept };
  }

  /** Tags a committed checkpoint (a durable `tag.<name>` pointer); tagged checkpoints are never removed. */
  async tag(step: number, name: string): Promise<void> {
    await this.ready;
    if (!NAME_RE.test(name)) throw argumentError(`tag "${name}" must be ${NAME_RULE}`);
    if (this.sharding) throw argumentError('tag() is not available in a sharded run (docs/sharding.md)');
    if (this.lockHandle === null) throw new CheckpointError('checkpointer was opened with lock: false (read-only)', { code: 'ECKPT_ARGS' });
    await this.exclusive(async () => {
      await this.flush();
      const entry = this.entries.find((e) => e.step === step);
      if (!entry) throw new CheckpointError(`no checkpoint for step ${step} in ${this.dir}`, { code: 'ENOENT', path: this.dir });
      await this.store.writeSmall(`tag.${name}`, renderPointer({ step, file: entry.file }));
      this.replicator?.tag(name, entry.file);
      // By step, on the record as it is now (no save can run while this does).
      this.entries = this.entries.map((e) => {
        const tags = e.step === step ? [...e.tags.filter((t) => t !== name), name] : e.tags.filter((t) => t !== name);
        return { ...e, tags, keptBy: [...e.keptBy.filter((k) => !k.startsWith('tag ')), ...tags.map((t) => `tag ${t}`)] };
      });
      this.manifestStale = true;
      await this.refreshManifest();
    });
  }

  /** Waits for every save in flight; rejects with the first failure since the last flush. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    await Promise.allSettled([...this.undecided]);
    if (this.firstError !== null) {
      const err = this.firstError;
      this.firstError = null;
      throw err;
    }
  }

  /** Waits for every save (those still waiting for room too), then releases the run lock. */
  async close(): Promise<void> {
    this.closed = true;
    try {
      await this.ready.catch(() => {});
      while (this.pending > 0) await new Promise<void>((resolve) => this.pendingWaiters.push(resolve));
      await this.exclusive(async () => {
        await this.flush().finally(async () => {
          const left = await this.replicator?.close();
          if (left?.length)
            this.warn(
              `close() stopped waiting for ${left.length} upload(s) to ${this.replicator!.url} (${left.join(', ')}); they are uploaded at the next start`,
            );
        });
        if (this.lockHandle && !this.sharding) await this.refreshManifest();
        await this.coordination?.close();
        await this.historyWrites;
      });
    } finally {
      this.lockHandle?.release();
      this.lockHandle = null;
    }
  }

  /** The checkpoint a pointer names: `latest`, `best`, `best-<metric>` (fitCheckpoint's `monitor`, keepBest) or a tag
   * (`tag.<name>`, or just the tag's name). null when there is no such pointer or it is unreadable. */
  async pointer(name: string): Promise<{ step: number; path: string; metric?: number } | null> {
    await this.ready;
    const file = isPointerName(name) || tagOfFile(name) !== null ? name : NAME_RE.test(name) ? `tag.${name}` : null;
    if (file === null) throw argumentError(`pointer "${name}" must be latest, best, best-<metric> or a tag name (${NAME_RULE})`);
    const p = await readPointer(this.store, file);
    return p ? { step: p.step, path: `${this.dir}/${p.file}`, ...(p.metric !== undefined ? { metric: p.metric } : {}) } : null;
  }

  /** The newest checkpoint that validates (checksums included), else null. Invalid newer ones are reported
   * through onWarning with the reason, and skipped. */
  async loadLatest(): Promise<LoadedCheckpoint | null> {
    await this.ready;
    if (this.sharding) {
      const step = await this.latestCompleteStep();
      if (!step) return null;
      if (step.worldSize !== this.sharding.worldSize)
        throw new CheckpointError(
          `step ${step.step} was saved by ${step.worldSize} ranks, this run has ${this.sharding.worldSize}: load every shard with loadLatestStep() and split the tensors anew`,
          { code: 'ECKPT_MISMATCH', path: step.path },
        );
      const mine = step.shards[this.sharding.rank]!;
      this.record({ event: 'resume', step: step.step, file: decisionName(step.step), time: new Date().toISOString() });
      return mine;
    }
    const files = (await this.store.list())
      .map((o) => ({ step: stepOf(o.name), file: o.name }))
      .filter((e): e is { step: number; file: string } => e.step !== null)
      .sort((a, b) => b.step - a.step);
    for (const { step, file } of files) {
      const loaded = await this.tryLoad(file, step);
      if (loaded) {
        this.record({ event: 'resume', step, file, time: new Date().toISOString() });
        return loaded;
      }
    }
    return null;
  }

  /** A sharded run's newest step whose record and every shard validate, with every rank's shard (for loading with
   * another world size: each tensor is whole in exactly one shard). Steps with a missing or corrupt shard are
   * reported through onWarning and skipped. Also on a checkpointer opened with `lock: false` and no rank. */
  async loadLatestStep(): Promise<LoadedStep | null> {
    await this.ready;
    return this.latestCompleteStep();
  }

  private async latestCompleteStep(): Promise<LoadedStep | null> {
    for (const d of await committedSteps(this.store, this.warn)) {
      const where = `${this.dir}/${decisionName(d.step)}`;
      try {
        const shards = (await readStep(this.store, d)).map((r, rank) => Checkpointer.decode(`${this.dir}/${d.shards[rank]!.file}`, r.tensors, r.metadata));
        return { step: d.step, worldSize: d.worldSize, path: where, shards };
      } catch (err) {
        // Only what shows the step itself is bad moves on to an older step; a failure to read (EIO, EMFILE) is
        // thrown, or ranks could pick different steps.
        const code = (err as CheckpointError).code;
        if (code !== 'ENOENT' && code !== 'ECKPT_CHECKSUM' && code !== 'ECKPT_FORMAT') throw err;
        this.warn(`step ${d.step} is not complete and valid, using an older one (${code}: ${(err as Error).message})`);
      }
    }
    return null;
  }

  /** Loads a checkpoint and verifies it: a checkpoint's name (`ckpt-0000000050.safetensors`, as `manifest()`
   * lists it) through the store, or a path to any file. Tensors stored by reference are read back from the
   * checkpoints that hold them (of the store, or of the file's directory). */
  async load(file: string): Promise<LoadedCheckpoint> {
    if (typeof file !== 'string' || file === '') throw argumentError('load needs a checkpoint name or path');
    if (stepOf(file) !== null) {
      await this.ready;
      const where = `${this.dir}/${file}`;
      const r = await resolveRefs(await this.store.read(file), where, (f) => this.store.read(f));
      const loaded = Checkpointer.decode(where, r.tensors, r.metadata);
      this.record({ event: 'resume', step: loaded.step, file, time: new Date().toISOString() });
      return loaded;
    }
    const env = this.env;
    const r = await resolveRefs(await env.readFile(file), file, (f) => env.readFile(env.siblingPath(file, f)));
    return Checkpointer.decode(file, r.tensors, r.metadata);
  }

  private async tryLoad(file: string, step: number): Promise<LoadedCheckpoint | null> {
    try {
      const where = `${this.dir}/${file}`;
      const r = await resolveRefs(await this.store.read(file), where, (f) => this.store.read(f));
      return Checkpointer.decode(where, r.tensors, r.metadata);
    } catch (err) {
      const reason = err instanceof CheckpointError ? `${err.code}: ${err.message}` : String(err);
      this.warn(`checkpoint for step ${step} is not valid, using an older one (${reason})`);
      return null;
    }
  }

  private static decode(file: string, tensors: Record<string, TensorEntry>, metadata: Record<string, string>): LoadedCheckpoint {
    const step = Number(metadata[STEP_KEY]);
    if (!Number.isSafeInteger(step)) {
      const modelFile = metadata[METADATA_KEYS.tfjsHandler.version] !== undefined;
      throw new CheckpointError(
        modelFile
          ? 'this is a model file written by ioHandler, not a training checkpoint: load it with tf.loadLayersModel(ioHandler(path))'
          : `not a training checkpoint: metadata ${STEP_KEY} is missing (readCheckpoint reads any ckptio file)`,
        { code: 'ECKPT_FORMAT', path: file },
      );
    }
    let state: unknown;
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
