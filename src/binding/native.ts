/** The typed surface of the native addon (native/addon.cc). Nothing else in src/ loads it. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from './errors';

export type DType =
  | 'float64' | 'float32' | 'float16' | 'bfloat16' | 'float8_e4m3' | 'float8_e5m2'
  | 'int64' | 'int32' | 'int16' | 'int8' | 'uint64' | 'uint32' | 'uint16' | 'uint8' | 'bool';

export type TypedArray =
  | Float64Array | Float32Array | BigInt64Array | BigUint64Array | Int32Array | Uint32Array
  | Int16Array | Uint16Array | Int8Array | Uint8Array | Uint8ClampedArray;

export interface NativeTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: TypedArray | DataView;
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

export interface NativeReadResult {
  tensors: NativeTensor[];
  metadata: Record<string, string>;
  bytes: number;
  verified: boolean;
  checksummed: boolean;
}

export type FaultOp =
  | 'open' | 'openat' | 'pwrite' | 'pread' | 'fallocate' | 'ftruncate' | 'fdatasync' | 'fsync' | 'close'
  | 'rename' | 'unlink' | 'sync_file_range' | 'fadvise' | 'fstat' | 'mmap' | 'munmap' | 'mprotect';

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
  write(path: string, tensors: NativeTensor[], metadata: Record<string, string>, options: NativeWriteOptions): Promise<NativeWriteResult>;
  writeFile(path: string, data: Uint8Array): Promise<NativeWriteResult>;
  remove(dir: string, names: string[]): Promise<NativeWriteResult>;
  rawWrite(path: string, bytes: number, direct: boolean): Promise<NativeWriteResult>;
  read(path: string, options: { verify: boolean }): Promise<NativeReadResult>;
  /** `reset` zeroes the completion counters after reading them. */
  writerStats(reset?: boolean): { queued: number; copyPoolBytes: number; completions: number; completionMsTotal: number; completionMsMax: number };
  xxh3(data: Uint8Array): string;
  faults: {
    configure(config: FaultConfig): void;
    stats(): FaultStats;
    disable(): void;
  };
}

const root = path.resolve(__dirname, '..', '..', '..');

/** CKPTIO_ADDON picks a specific build (the ASan one, the node-gyp one); otherwise the cmake-js build, then
 * the node-gyp build. */
function addonPath(): string {
  const candidates = process.env.CKPTIO_ADDON
    ? [path.resolve(process.env.CKPTIO_ADDON)]
    : [path.join(root, 'build-cmake', 'Release', 'ckptio.node'), path.join(root, 'build', 'Release', 'ckptio.node')];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new CheckpointError(`ckptio native addon not found (looked in ${candidates.join(', ')}); run npm install`, {
      code: 'ECKPT_INTERNAL',
    });
  }
  return found;
}

export const addonFile = addonPath();
// eslint-disable-next-line @typescript-eslint/no-var-requires
export const native: NativeBinding = require(addonFile) as NativeBinding;
native.init(CheckpointError);
