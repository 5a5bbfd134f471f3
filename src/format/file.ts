/** One checkpoint file: write it through the commit protocol on the writer thread, read and verify it. */
import { CheckpointError, argumentError, callSite } from '../binding/errors';
import { NativeHeader, NativeSaveAfter, NativeTensorTable, NativeWriteOptions, NativeWriteResult, native } from '../binding/native';
import { COMPRESSION_KEY, Compression, CompressionReport, compressTensors, decompressTensors } from './compression';
import { TensorEntry, TensorList, unpackRead } from './tensor-list';

export type { DType, RawDType, TypedArray } from '../binding/contract';
export type { Compression, CompressionReport } from './compression';
export { TensorList, unpackRead } from './tensor-list';
export type { TensorEntry } from './tensor-list';

export interface WriteOptions {
  /** Caller's string metadata, stored in the safetensors `__metadata__` map. */
  metadata?: Record<string, string>;
  /** Snapshot the buffers into reused, pre-faulted staging memory on the calling thread, so they may be
   * mutated as soon as the call returns. Without it the buffers are read in place by the writer thread and
   * must not be mutated or transferred until the promise settles. */
  copy?: boolean;
  /** O_DIRECT: 'auto' (default) uses it where the file system allows and reports `direct` in the result. */
  direct?: 'auto' | 'on' | 'off';
  /** fallocate the whole file first so ENOSPC comes before any byte is written (default true). */
  preallocate?: boolean;
  /** Buffered writes only: start writeback every N bytes and drop the previous chunk from the page cache. */
  writeBehindBytes?: number;
  /** Per-tensor and header XXH3-64 digests (default true). false writes a plain safetensors file without
   * ckptio keys, which readCheckpoint accepts only with `verify: false`. */
  checksum?: boolean;
  /** 'lz4' compresses each tensor in 4 MiB chunks on the libuv thread pool before the write (default 'none').
   * The compressed chunks (up to the tensors' size) are held until the write settles, on top of the
   * tensors themselves. The result's `compression` says how much it saved; random fp32 does not compress. */
  compression?: Compression;
}

export interface WriteResult extends NativeWriteResult {
  /** Present when `compression` was asked for. */
  compression?: CompressionReport;
}

export interface ReadOptions {
  /** Verify the header digest and every tensor's XXH3-64 (default true). */
  verify?: boolean;
}

export interface ReadResult {
  tensors: Record<string, TensorEntry>;
  metadata: Record<string, string>;
  bytes: number;
  verified: boolean;
  /** 'lz4' when the file held compressed tensors (they are returned decompressed). */
  compression: Compression;
}

function toNativeOptions(opts: WriteOptions): NativeWriteOptions {
  const out: NativeWriteOptions = {};
  if (opts.copy !== undefined) out.copy = opts.copy;
  if (opts.direct !== undefined) out.direct = opts.direct;
  if (opts.preallocate !== undefined) out.preallocate = opts.preallocate;
  if (opts.writeBehindBytes !== undefined) out.writeBehindBytes = opts.writeBehindBytes;
  if (opts.checksum !== undefined) out.checksum = opts.checksum;
  return out;
}

function checkOptions(opts: unknown): void {
  if (opts !== undefined && (typeof opts !== 'object' || opts === null || Array.isArray(opts))) {
    throw argumentError('options must be an object');
  }
  const copy = (opts as WriteOptions | undefined)?.copy;
  if (copy !== undefined && typeof copy !== 'boolean') throw argumentError('options.copy must be a boolean');
}

/** Writes `tensors` to `path` as a safetensors file with ckptio checksums. Resolves once the file and its
 * directory entry are durable (fdatasync, rename, fsync of the directory). */
export function writeCheckpoint(path: string, tensors: Record<string, TensorEntry> | TensorList, opts: WriteOptions = {}): Promise<WriteResult> {
  return writeWith(writeCheckpoint, path, tensors, opts, null);
}

export interface SaveResult extends WriteResult {
  /** XXH3 of the tensors' names and digests (absent with checksum: false). */
  contentId?: string;
  fileLeftovers: { path: string; errno: number; code: string }[];
  removed: string[];
  /** The save's lane's failure generation after it (see NativeSaveAfter.lane). */
  generation?: number;
}

/** writeCheckpoint plus, in the same writer job once the file is durable, the small files of `after` (each
 * through the same commit protocol) and then the removals: one job, one completion. A failure after the data
 * file is durable rejects with `dataDurable: true` and the failed `stage` on the error. */
export function saveCheckpoint(
  path: string,
  tensors: Record<string, TensorEntry> | TensorList,
  opts: WriteOptions,
  after: NativeSaveAfter,
): Promise<SaveResult> {
  return writeWith(saveCheckpoint, path, tensors, opts, after) as Promise<SaveResult>;
}

function writeWith(
  caller: Function,
  path: string,
  tensors: Record<string, TensorEntry> | TensorList,
  opts: WriteOptions,
  after: NativeSaveAfter | null,
): Promise<WriteResult> {
  const rethrow = callSite(caller);
  const submit = (list: NativeTensorTable, metadata: Record<string, string>, options: NativeWriteOptions) =>
    after ? native.save(path, list, metadata, options, after) : native.write(path, list, metadata, options);
  try {
    if (typeof path !== 'string' || path.length === 0) throw argumentError('path must be a non-empty string');
    checkOptions(opts);
    const metadata = opts.metadata ?? {};
    if (typeof metadata !== 'object' || metadata === null) throw argumentError('metadata must be an object of strings');
    if (Object.hasOwn(metadata, COMPRESSION_KEY)) throw argumentError(`metadata key ${COMPRESSION_KEY} is reserved`);
    const compression = opts.compression ?? 'none';
    if (compression !== 'none' && compression !== 'lz4') throw argumentError("options.compression must be 'none' or 'lz4'");
    const list = TensorList.from(tensors);
    const nativeOptions = toNativeOptions(opts);
    if (compression === 'none') return submit(list.pack(), metadata, nativeOptions).catch(rethrow);
    return compressTensors(list, opts.copy ?? false)
      .then(async (c) => {
        const result = await submit(c.tensors.pack(), { ...metadata, [COMPRESSION_KEY]: c.metadataValue }, { ...nativeOptions, copy: false });
        return { ...result, compression: c.report };
      })
      .catch(rethrow);
  } catch (err) {
    return Promise.reject(err instanceof CheckpointError ? err : argumentError(String(err))).catch(rethrow);
  }
}

/** Reads and validates a checkpoint. Tensors are views over one private, copy-on-write mapping of the file:
 * writing into them never changes the file, and the mapping lives until every view is garbage-collected. */
export function readCheckpoint(path: string, opts: ReadOptions = {}): Promise<ReadResult> {
  const rethrow = callSite(readCheckpoint);
  if (typeof path !== 'string' || path.length === 0) {
    return Promise.reject(argumentError('path must be a non-empty string')).catch(rethrow);
  }
  if (opts === null || typeof opts !== 'object' || (opts.verify !== undefined && typeof opts.verify !== 'boolean')) {
    return Promise.reject(argumentError('options must be an object; verify a boolean')).catch(rethrow);
  }
  return native
    .read(path, { verify: opts.verify ?? true })
    .then(async (r): Promise<ReadResult> => {
      const tensors = unpackRead(r.tensors);
      const { [COMPRESSION_KEY]: compressed, ...metadata } = r.metadata;
      if (compressed === undefined) return { tensors, metadata, bytes: r.bytes, verified: r.verified, compression: 'none' };
      return { tensors: await decompressTensors(tensors, compressed, path), metadata, bytes: r.bytes, verified: r.verified, compression: 'lz4' };
    })
    .catch(rethrow);
}

/** Writes small raw bytes (pointer files) through the same commit protocol. */
export function writeFileAtomic(path: string, data: Uint8Array): Promise<WriteResult> {
  const rethrow = callSite(writeFileAtomic);
  return native.writeFile(path, data).catch(rethrow);
}

/** Unlinks files in `dir`, then fsyncs the directory; queued behind every earlier write. */
export function removeFiles(dir: string, names: string[]): Promise<WriteResult> {
  const rethrow = callSite(removeFiles);
  return native.remove(dir, names).catch(rethrow);
}

/** A checkpoint's header: tensors (name, dtype, shape, bytes), every metadata entry (ckptio's own included),
 * file size, and the content id when it has checksums. */
export type HeaderInfo = NativeHeader;

/** Parses a checkpoint's header without reading its tensor data (digests are not verified). */
export function readHeader(path: string): Promise<HeaderInfo> {
  const rethrow = callSite(readHeader);
  if (typeof path !== 'string' || path.length === 0) return Promise.reject(argumentError('path must be a non-empty string')).catch(rethrow);
  return native.readHeader(path).catch(rethrow);
}
