/** The typed surface of the native addon (native/addon/, entry point module.cc). Nothing else in src/ loads it. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from './errors';

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

const root = path.resolve(__dirname, '..', '..', '..');

/** The one command that builds the addon from source where no prebuilt binary matches (docs/packaging.md). */
export const BUILD_FROM_SOURCE = 'npx ckptio build-addon';

/** The command that builds the testing addon (`npm install` in a clone runs it too, through `prepare`). */
export const TESTING_BUILD = 'npm run build:native:testing';

/** The testing build's file: CKPTIO_TESTING_ADDON, else the development tree's build-cmake-testing/Release/ckptio.node. */
export function testingAddonPath(): string {
  return path.resolve(process.env.CKPTIO_TESTING_ADDON || path.join(root, 'build-cmake-testing', 'Release', 'ckptio.node'));
}

/** Where the addon comes from, first match wins:
 * 1. CKPTIO_ADDON, a specific build (the ASan one, the node-gyp one, a broken one for the crash tests);
 * 2. CKPTIO_TESTING=1: the testing build (testingAddonPath(); see testing() below);
 * 3. the development tree's (or a from-source) cmake-js build, build-cmake/Release/ckptio.node;
 * 4. node-gyp-build: build/Release (the node-gyp build), build/Debug, then the packed
 *    prebuilds/<platform>-<arch>/ckptio.glibc.node, matched on platform, arch and libc. */
function addonPath(): string {
  if (process.env.CKPTIO_ADDON) {
    const p = path.resolve(process.env.CKPTIO_ADDON);
    if (!fs.existsSync(p)) {
      throw new CheckpointError(`ckptio native addon not found: CKPTIO_ADDON=${p} does not exist`, { code: 'ECKPT_INTERNAL', path: p });
    }
    return p;
  }
  if (process.env.CKPTIO_TESTING === '1') {
    const p = testingAddonPath();
    if (!fs.existsSync(p)) {
      throw new CheckpointError(`the ckptio testing addon is not built (CKPTIO_TESTING=1 asks for ${p}): build it with ${TESTING_BUILD}`, {
        code: 'ECKPT_INTERNAL',
        path: p,
      });
    }
    return p;
  }
  const cmakeBuild = path.join(root, 'build-cmake', 'Release', 'ckptio.node');
  if (fs.existsSync(cmakeBuild)) return cmakeBuild;
  try {
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    return nodeGypBuild.resolve(root);
  } catch (err) {
    const libc = process.env.LIBC || (fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc');
    const detail = String((err as Error)?.message ?? err)
      .trim()
      .replace(/\s+/g, ' ');
    throw new CheckpointError(
      `ckptio has no native addon for platform=${process.platform} arch=${process.arch} libc=${libc} ` +
        `(node ${process.versions.node}, Node-API ${process.versions.napi}); prebuilt binaries cover linux-x64 glibc. ` +
        `Build it from source (needs a C++17 compiler and cmake >= 3.15) with: ${BUILD_FROM_SOURCE}. ` +
        `Looked for ${cmakeBuild}, ${path.join(root, 'build', 'Release')} and ${path.join(root, 'prebuilds')} (${detail})`,
      { code: 'ECKPT_INTERNAL' },
    );
  }
}

export const addonFile = addonPath();

export const native: NativeBinding = require(addonFile) as NativeBinding;
if (typeof native.tempNamePattern !== 'string') {
  // An addon built from older sources: without the pattern, start-up's sweep of stale temporaries cannot tell a
  // temporary from a checkpoint.
  throw new CheckpointError(
    `the ckptio addon at ${addonFile} is older than this ckptio (it exports no tempNamePattern): rebuild it (npm run build:native, or ${BUILD_FROM_SOURCE})`,
    { code: 'ECKPT_INTERNAL', path: addonFile },
  );
}
native.init(CheckpointError);

/** The testing hooks (faults, rawWrite, writerStats), which only the testing build exports.
 *
 * The scheme: the hooks act on the addon instance they belong to (each Node environment's own writer, Env and
 * counters), and a second copy of the addon loaded beside `native` would be a second instance whose fault twin
 * no save goes through. So the testing build is never loaded beside the release one: it is loaded AS `native`,
 * for the whole process, and testing() hands back that same object. A test or bench that uses the hooks selects
 * it before anything imports src/: its first import is test/testing-addon.ts, which sets CKPTIO_TESTING=1 (each
 * test file runs in its own process under node --test; children it spawns inherit the setting and so load the
 * same build). CKPTIO_ADDON still wins (the ASan and the deliberately broken builds are testing builds too).
 * Everything else, the package included, gets the release build, and test/build.test.ts checks that its exports
 * hold no hook. Throws ECKPT_INTERNAL when this process's addon is a release build. */
export function testing(): TestingBinding {
  const t = native as Partial<TestingBinding>;
  if (typeof t.rawWrite === 'function' && typeof t.writerStats === 'function' && typeof t.faults === 'object') return native as TestingBinding;
  throw new CheckpointError(
    `the ckptio addon this process loaded (${addonFile}) is a release build: it has no testing hooks (faults, rawWrite, writerStats). ` +
      `They act on the process's own addon, so load the testing build as that addon: set CKPTIO_TESTING=1 before ckptio is first imported ` +
      `(tests and benches import test/testing-addon first) or CKPTIO_ADDON=<a testing build>; build it with ${TESTING_BUILD}`,
    { code: 'ECKPT_INTERNAL', path: addonFile },
  );
}
