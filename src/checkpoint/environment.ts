/** What the checkpoint layer needs from the platform it runs on, installed once by the entry point: Node
 * (src/platform/node.ts: the run directory on disk, object-storage replication, sharded runs) or the browser
 * (src/platform/browser.ts: a directory of the origin private file system). The checkpoint layer imports no platform
 * module itself, so the same Checkpointer, retention and manifest code runs in both. */
import { CheckpointError } from '../binding/errors';
import type { ReadResult } from '../format/file';
import type { CheckpointStore } from '../store/store';
import type { RemoteOptions, ReplicatedInfo } from './remote-options';
import type { Decision } from './shards';

/** What the checkpointer uses of the remote tier's replicator (checkpoint/node/replicator.ts). */
export interface ReplicatorLike {
  readonly url: string;
  replicate(step: number, file: string, contentId: string | null, refs: string[]): Promise<ReplicatedInfo | null>;
  tag(name: string, file: string): void;
  /** Waits for uploads in progress (up to closeTimeoutMs); the files not uploaded. */
  close(): Promise<string[]>;
}

/** What the checkpointer uses of a sharded run's coordination (checkpoint/node/shard-coordination.ts). */
export interface CoordinationLike {
  expect(step: number, onCommitted: (d: Extract<Decision, { outcome: 'committed' }>) => void): Promise<Extract<Decision, { outcome: 'committed' }>>;
  abort(step: number, reason: string): void;
  drain(): void;
  close(): Promise<void>;
}

/** Replication to object storage (the `remote` option). */
export interface RemoteSupport {
  /** Throws ECKPT_ARGS for a bad URL or part size now, not at the first save. */
  validate(remote: RemoteOptions): void;
  /** Fills the empty run directory from the remote tier's newest valid checkpoint; false when the remote could not
   * be read at all (the run then does not replicate to it). */
  restore(remote: RemoteOptions, dir: string, warn: (m: string) => void): Promise<boolean>;
  replicator(remote: RemoteOptions, dir: string, keepLast: number, newest: string | null, warn: (m: string) => void): ReplicatorLike;
}

/** Sharded runs (rank, worldSize): the ranks coordinate through their run directory. */
export interface ShardSupport {
  /** rank 0 names itself coordinator (the others wait for it), then the rank's coordination worker starts. */
  coordinate(
    store: CheckpointStore,
    config: { rank: number; worldSize: number; keepLast: number; timeoutMs: number },
    warn: (m: string) => void,
  ): Promise<{ epoch: string; coordination: CoordinationLike }>;
}

/** A writer thread that reads the wasm heap in place, so a save of wasm tensors costs the training thread no copy
 * (tfjs/wasm-heap.ts): the native addon in Node, the browser's writer worker when the heap is shared. */
export interface HeapReader {
  /** Why the heap cannot be read in place here (platform, memory kind, flags), or null when it can. */
  refusal(heap: ArrayBufferLike | null): string | null;
  /** A heap that may move when it grows (not shared) must wait, at each grow, until no job reads it: these two say
   * whether one does and wait for that. null where grows never move what is read (a shared memory). */
  growFence: { unread(): number; waitReads(timeoutMs: number): boolean } | null;
}

export interface RunEnvironment {
  /** For messages: 'node' or 'browser'. */
  readonly name: string;
  /** The store of a run directory named by a path (options.dir). */
  directoryStore(dir: string): CheckpointStore;
  /** Whether a store is such a directory (what sharded runs and remote replication build on). */
  isDirectoryStore(store: CheckpointStore): boolean;
  /** A checkpoint named by a path outside any run (load(path)), and the file a reference of it names. */
  readFile(path: string): Promise<ReadResult>;
  siblingPath(path: string, name: string): string;
  readonly remote: RemoteSupport | null;
  readonly sharding: ShardSupport | null;
  readonly heapReader: HeapReader | null;
  /** Whether `compression: 'lz4'` is available (Node: lz4-napi, loaded on first use). */
  readonly lz4: boolean;
}

let installed: RunEnvironment | null = null;

/** Called by the entry point (import 'ckptio' or 'ckptio/browser'); a second call replaces the first. */
export function installEnvironment(env: RunEnvironment): void {
  installed = env;
}

export function environment(): RunEnvironment {
  if (installed === null) {
    throw new CheckpointError("no platform is installed: import ckptio through its entry point ('ckptio' in Node, 'ckptio/browser' in a browser)", {
      code: 'ECKPT_INTERNAL',
    });
  }
  return installed;
}
