/** The writer's contract: what every writer binding provides (the native addon, native/addon/, and the portable
 * writer, src/portable/), the types that cross it, and the testing build's extra hooks. src/binding/native.ts
 * chooses and loads the binding; nothing here loads anything. */
import type { CheckpointError } from './errors';

export type DType =
  | 'float64'
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float8_e4m3'
  | 'float8_e5m2'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint64'
  | 'uint32'
  | 'uint16'
  | 'uint8'
  | 'bool';

/** The reference's newer dtypes, which ckptio reads as raw bytes (a Uint8Array) and does not write
 * (docs/format.md, dtypes): they appear only in what a read returns. */
export type RawDType = 'float8_e8m0' | 'float8_e4m3fnuz' | 'float8_e5m2fnuz' | 'complex64' | 'float4' | 'float6_e2m3' | 'float6_e3m2';

export type TypedArray =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray;

export interface NativeTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: TypedArray | DataView;
}

/** The tensors of one write as the addon reads them (built by src/format/tensor-list.ts): `dtypes` holds codes,
 * indices into the addon's `dtypes` table; names are concatenated, `nameLengths` in UTF-16 code units. */
export interface NativeTensorTable {
  names: string;
  nameLengths: Uint32Array;
  dtypes: Uint8Array;
  ranks: Uint8Array;
  dims: Float64Array;
  data: ArrayBufferView[];
}

export interface NativeWriteOptions {
  direct?: 'auto' | 'on' | 'off';
  preallocate?: boolean;
  writeBehindBytes?: number;
  checksum?: boolean;
  copy?: boolean;
}

export interface NativeWriteResult {
  path: string;
  bytes: number;
  direct: boolean;
  preallocated: boolean;
  replaced: boolean;
  copied: boolean;
  /** Set when the save is durable but the previous file, swapped to a temporary name, could not be
   * removed: it stays there (a later Checkpointer start-up removes it) and the caller should say so. */
  leftover?: { path: string; errno: number; code: string };
}

/** What a save job does after its data file, in the same writer job (see SaveJob in native/addon/write.cc). Small
 * files may contain CONTENT_ID_TOKEN where the new checkpoint's content id belongs. */
export interface NativeSaveAfter {
  files?: [path: string, data: Uint8Array][];
  removeDir?: string;
  remove?: string[];
  /** Called on the JS thread once the writer no longer reads the tensors: when it has read every byte (the file is
   * not durable yet), or, when the save fails before that, just before the rejection. The tensors are the caller's
   * again. Must not throw (an exception is dropped). */
  onConsumed?: () => void;
  /** Called on the JS thread when the save settles, synchronously inside the drain that finds it (drain(), or the
   * writer's wake-up turn), before the returned promise settles. Must not throw (an exception is dropped). */
  onSettled?: (error: unknown, result: NativeSaveResult | undefined) => void;
  /** The save's lane (one per Checkpointer, >= 1) and the lane's failure generation it was planned at: the writer
   * aborts it (ECKPT_ABORTED) when a save of the lane failed since. Both or neither. */
  lane?: number;
  generation?: number;
}

export const CONTENT_ID_TOKEN = '@ckptio.content_id@';

/** A small file's bytes with the JSON string "CONTENT_ID_TOKEN" replaced by the content id as a JSON string (or
 * null: the save has none), as the native writer's job does (native/addon/write.cc); for the other writers. */
export function withContentId(data: Uint8Array, contentId: string | undefined): Uint8Array {
  const token = `"${CONTENT_ID_TOKEN}"`;
  const text = new TextDecoder().decode(data);
  if (!text.includes(token)) return data;
  return new TextEncoder().encode(text.split(token).join(contentId === undefined ? 'null' : `"${contentId}"`));
}

export interface NativeSaveResult extends NativeWriteResult {
  contentId?: string;
  fileLeftovers: { path: string; errno: number; code: string }[];
  removed: string[];
  /** The lane's failure generation after this save (0 without a lane). */
  generation: number;
}

export interface NativeHeader {
  tensors: { name: string; dtype: DType | RawDType; shape: number[]; bytes: number }[];
  metadata: Record<string, string>;
  bytes: number;
  checksummed: boolean;
  contentId?: string;
}

/** A read's tensors, packed (native/addon/read.cc): `dtypes` holds codes into `readDtypes`; each tensor's bytes are
 * `lengths[i]` bytes of `buffer` (one mapping of the file) from `offsets[i]`. */
export interface NativeReadTable {
  names: string;
  nameLengths: Uint32Array;
  dtypes: Uint8Array;
  ranks: Uint32Array;
  dims: Float64Array;
  offsets: Float64Array;
  lengths: Float64Array;
  buffer: ArrayBuffer;
}

export interface NativeReadResult {
  tensors: NativeReadTable;
  metadata: Record<string, string>;
  bytes: number;
  verified: boolean;
  checksummed: boolean;
}

export type FaultOp =
  | 'open'
  | 'openat'
  | 'pwrite'
  | 'pread'
  | 'fallocate'
  | 'ftruncate'
  | 'fdatasync'
  | 'fsync'
  | 'close'
  | 'rename'
  | 'unlink'
  | 'sync_file_range'
  | 'fadvise'
  | 'fstat'
  | 'mmap'
  | 'munmap'
  | 'mprotect';

export interface FaultConfig {
  /** Fail the nth call (1-based, counted from configure()) of `op` with `errno`. */
  failures?: { op: FaultOp; nth?: number; errno: number }[];
  /** Simulate a power loss once the Kth I/O operation (any kind) has completed. */
  crashAfter?: number;
  /** With crashAfter: half of each file's unsynced data survives instead of none. */
  torn?: boolean;
  /** Sleep before each call of an op (a slow disk). */
  delayMs?: Partial<Record<FaultOp, number>>;
}

export interface FaultStats {
  total: number;
  crashed: boolean;
  injected: number;
  byOp: Partial<Record<FaultOp, number>>;
}

export interface NativeBinding {
  init(errorClass: typeof CheckpointError): void;
  /** Every dtype the addon reads and writes; the index is the code in NativeTensorTable.dtypes. */
  dtypes: { name: DType; bytes: number }[];
  /** Every dtype name a read can return, the raw-byte ones included; the index is the code in NativeReadTable. */
  readDtypes: (DType | RawDType)[];
  write(path: string, tensors: NativeTensorTable, metadata: Record<string, string>, options: NativeWriteOptions): Promise<NativeWriteResult>;
  save(
    path: string,
    tensors: NativeTensorTable,
    metadata: Record<string, string>,
    options: NativeWriteOptions,
    after: NativeSaveAfter,
  ): Promise<NativeSaveResult>;
  readHeader(path: string): Promise<NativeHeader>;
  lock(path: string, holder: string): { fd: number } | { locked: true; holder: string };
  unlock(fd: number): void;
  writeFile(path: string, data: Uint8Array): Promise<NativeWriteResult>;
  remove(dir: string, names: string[]): Promise<NativeWriteResult>;
  read(path: string, options: { verify: boolean }): Promise<NativeReadResult>;
  /** The bytes of the file writeCheckpoint would write for these tensors and metadata, in memory. */
  encode(tensors: NativeTensorTable, metadata: Record<string, string>, options: { checksum: boolean }): Promise<{ bytes: Uint8Array; contentId?: string }>;
  /** A checkpoint file's bytes parsed (and verified): read()'s result, the tensors as views over `bytes`. */
  decode(bytes: Uint8Array, options: { verify: boolean }): Promise<NativeReadResult & { contentId?: string }>;
  xxh3(data: Uint8Array): string;
  /** Settles, now, on this thread, what the writer finished since the last drain (consumed notices, then
   * completions, in order). Without it they are settled at the next event-loop turn. */
  drain(): void;
  /** Blocks until no writer job reads JavaScript memory in place; false after timeoutMs. */
  waitReads(timeoutMs: number): boolean;
  /** Jobs queued on the writer (not the running one) and jobs still reading JavaScript memory in place. */
  writerState(): { queued: number; unread: number };
  /** The writer's temporary names, `<name>.tmp.<pid>.<8 hex>`, as a RegExp source (group 1: the pid); defined once,
   * in native/writer/commit.h. */
  tempNamePattern: string;
}

/** What the writer's counters report (testing builds: writerStats). */
export interface WriterStats {
  queued: number;
  copyPoolBytes: number;
  completions: number;
  completionMsTotal: number;
  completionMsMax: number;
}

/** The testing build of the addon (native/addon/testing.cc, built with -DCKPTIO_TESTING=ON): the release exports
 * plus the hooks tests and benchmarks use. The release addon has none of these. */
export interface TestingBinding extends NativeBinding {
  /** The disk's own limit, for benchmarks: `bytes` in 4 MiB blocks (O_DIRECT or buffered), then fsync. */
  rawWrite(path: string, bytes: number, direct: boolean): Promise<NativeWriteResult>;
  /** `reset` zeroes the completion counters after reading them. */
  writerStats(reset?: boolean): WriterStats;
  /** The fault-injecting Env twin of this environment's addon instance: configure() switches every job and read
   * queued after it to the twin, disable() back to the real file system. */
  faults: {
    configure(config: FaultConfig): void;
    stats(): FaultStats;
    disable(): void;
  };
}
