/** The storage seam: everything the checkpoint lifecycle needs from where checkpoints live, as named objects
 * in one flat namespace (a directory today, a bucket prefix next). No directory fds or renames in the contract:
 * an implementation makes each object appear whole or not at all, however it does that. */
import type { HeaderInfo, ReadOptions, ReadResult, SaveResult, TensorList, WriteOptions } from '../format/file';

export interface StoreLock {
  /** Releases the lock (idempotent). A killed process's lock is released by the system. */
  release(): void;
}

export interface LockHolder {
  pid: number;
  host: string;
  started: string;
}

export interface StoredObject {
  name: string;
}

/** One save: the checkpoint object, then (only once it is durable) the small objects, then the removals. */
export interface CommitRequest {
  name: string;
  tensors: TensorList;
  options: Pick<WriteOptions, 'metadata' | 'copy' | 'compression'>;
  /** Small objects committed together once the checkpoint is durable; may contain CONTENT_ID_TOKEN. */
  files: { name: string; data: Uint8Array }[];
  /** Objects removed last (retention decisions). */
  remove: string[];
  /** Called once the store no longer reads `tensors` (every byte read, before the checkpoint is durable; or the
   * commit failed): from then on they may be reused or freed. A store that cannot tell need not call it (the
   * caller releases them when the commit settles). Must not throw. */
  onConsumed?: () => void;
  /** Called once when the commit settles, as soon as the store knows: a store with `poll` calls it from there,
   * synchronously. The returned promise settles the same way, later. Must not throw. */
  onSettled?: (error: unknown, result: SaveResult | undefined) => void;
  /** The caller's lane and the failure generation it planned this commit at: a store that can (LocalStore) aborts
   * a commit planned before an earlier commit of the same lane failed, with ECKPT_ABORTED, changing nothing. */
  lane?: { id: number; generation: number };
}

export interface CheckpointStore {
  /** For messages and errors: the directory, or the bucket URL. */
  readonly location: string;
  /** Creates the location if needed; fails now (not at the first save) when it cannot be written. */
  open(): Promise<void>;
  /** One writer per location: throws ECKPT_LOCKED naming the holder. `name` gives a lock of its own (a rank's
   * lock in a sharded run); a store without named locks leaves the parameter out. */
  lock(name?: string): Promise<StoreLock>;
  list(): Promise<StoredObject[]>;
  /** Starts the commit before returning (a store whose commit needs no later turn: LocalStore queues it on the
   * writer thread, which takes it to durable with no further JavaScript). */
  commit(request: CommitRequest): Promise<SaveResult>;
  /** Delivers now, on the calling thread, what commits finished since the last call (onConsumed, onSettled). A
   * store without it delivers them on later event-loop turns. */
  poll?(): void;
  /** One small object, atomically (tags, pointers outside a save). */
  writeSmall(name: string, data: Uint8Array): Promise<void>;
  /** Creates a small object atomically only if none has the name (false when one exists): the one-time decisions
   * of a sharded step. A store that cannot create exclusively leaves it out, and cannot hold a sharded run. */
  createSmall?(name: string, data: Uint8Array): Promise<boolean>;
  /** Appends to a small object, creating it (the run's history). Not atomic and not synced: for records a crash may
   * shorten. A store that cannot append (an object store) leaves it out, and has no history. */
  appendSmall?(name: string, data: Uint8Array): Promise<void>;
  /** A small object's bytes, or null when it does not exist. */
  readSmall(name: string): Promise<Uint8Array | null>;
  read(name: string, options?: ReadOptions): Promise<ReadResult>;
  readHeader(name: string): Promise<HeaderInfo>;
  remove(names: string[]): Promise<void>;
  /** Removes temporary objects left by writers that died mid-save; returns their names. */
  cleanStaleTemps(): Promise<string[]>;
}
