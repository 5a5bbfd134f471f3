/** Opt-in lz4 compression of checkpoint tensors (docs/format.md, "Compression").
 *
 * Each tensor is cut into chunks of CHUNK_BYTES raw bytes; every chunk is compressed by lz4-napi on the libuv
 * thread pool (never on the calling thread) and stored as its own uint8 tensor named `<name>@lz4/<i>`, so the
 * writer thread reads the compressed chunks in place and nothing is concatenated on the main thread. A chunk's
 * bytes are lz4-napi's block format: u32 LE uncompressed length, then one LZ4 block (python-lz4's
 * `lz4.block.decompress` reads it as is). The `ckptio.compression` metadata entry maps each original tensor to
 * its dtype, shape and chunk count. A tensor whose chunks do not come out smaller is stored raw, under its own
 * name, and counted in the report: random fp32 data does not compress, and the caller sees that. */
import { CheckpointError, argumentError, toCheckpointError } from '../binding/errors';
import type { DType, RawDType, TypedArray } from '../binding/contract';
import { TensorList } from './tensor-list';
import { METADATA_KEYS } from './metadata-keys';

export type Compression = 'none' | 'lz4';

type Lz4 = { compress(data: Uint8Array): Promise<Buffer>; uncompress(data: Uint8Array): Promise<Buffer> };
let lz4Module: Lz4 | undefined;

/** lz4-napi is loaded on first use, not on import: its binary comes from a per-platform package, and a platform
 * without one must still load ckptio and save uncompressed. A failure names the platform and lz4-napi's reason. */
function lz4(): Lz4 {
  if (lz4Module) return lz4Module;
  try {
    lz4Module = require('lz4-napi') as Lz4;
  } catch (err) {
    const reason = String((err as Error)?.message ?? err).split('\n')[0];
    throw new CheckpointError(
      `lz4 compression needs lz4-napi's binary for ${process.platform}-${process.arch}, which did not load (${reason}); save with compression: 'none' or install lz4-napi for this platform`,
      { code: 'ECKPT_MISSING_PACKAGE' },
    );
  }
  return lz4Module;
}

export const COMPRESSION_KEY = METADATA_KEYS.compression;
export const CHUNK_BYTES = 4 << 20;
const CHUNK_SEPARATOR = '@lz4/';

export interface CompressionReport {
  codec: 'lz4';
  /** Bytes of tensor data before compression. */
  rawBytes: number;
  /** Bytes of tensor data in the file (compressed chunks plus tensors stored raw). */
  storedBytes: number;
  /** Tensors stored compressed, and tensors stored raw because compression did not make them smaller. */
  compressedTensors: number;
  rawTensors: number;
}

interface CompressedEntry {
  dtype: DType;
  shape: number[];
  chunks: number;
}

type ArrayMaker = (buffer: ArrayBuffer) => TypedArray;

const ELEMENTS: Readonly<Record<DType, { size: number; make: ArrayMaker }>> = {
  float64: { size: 8, make: (b) => new Float64Array(b) },
  float32: { size: 4, make: (b) => new Float32Array(b) },
  float16: { size: 2, make: (b) => new Uint16Array(b) },
  bfloat16: { size: 2, make: (b) => new Uint16Array(b) },
  float8_e4m3: { size: 1, make: (b) => new Uint8Array(b) },
  float8_e5m2: { size: 1, make: (b) => new Uint8Array(b) },
  int64: { size: 8, make: (b) => new BigInt64Array(b) },
  int32: { size: 4, make: (b) => new Int32Array(b) },
  int16: { size: 2, make: (b) => new Int16Array(b) },
  int8: { size: 1, make: (b) => new Int8Array(b) },
  uint64: { size: 8, make: (b) => new BigUint64Array(b) },
  uint32: { size: 4, make: (b) => new Uint32Array(b) },
  uint16: { size: 2, make: (b) => new Uint16Array(b) },
  uint8: { size: 1, make: (b) => new Uint8Array(b) },
  bool: { size: 1, make: (b) => new Uint8Array(b) },
};

function chunkName(name: string, i: number): string {
  return `${name}${CHUNK_SEPARATOR}${i}`;
}

function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Compresses every tensor off the calling thread. With `copy` the caller's bytes are copied first (on the
 * calling thread, as `copy` promises), because lz4-napi reads its input later, on the thread pool. */
export async function compressTensors(list: TensorList, copy: boolean): Promise<{ tensors: TensorList; metadataValue: string; report: CompressionReport }> {
  const tensors: { name: string; dtype: DType; shape: number[]; data: ArrayBufferView }[] = [];
  for (let i = 0; i < list.length; i++) {
    const t = { name: list.name(i), dtype: list.dtype(i), shape: list.shape(i), data: list.data(i) };
    if (t.name.includes(CHUNK_SEPARATOR)) {
      throw argumentError(`tensor "${t.name}": names containing "${CHUNK_SEPARATOR}" are reserved for compressed chunks`);
    }
    const expected = t.shape.reduce((n, d) => n * d, ELEMENTS[t.dtype].size);
    if (expected !== t.data.byteLength) {
      throw argumentError(`tensor "${t.name}": data is ${t.data.byteLength} bytes but shape x dtype needs ${expected}`);
    }
    tensors.push(t);
  }
  const jobs = tensors.map((t) => {
    const bytes = copy ? bytesOf(t.data).slice() : bytesOf(t.data);
    const chunks: Promise<Buffer>[] = [];
    for (let off = 0; off < bytes.byteLength; off += CHUNK_BYTES) {
      chunks.push(lz4().compress(bytes.subarray(off, Math.min(off + CHUNK_BYTES, bytes.byteLength))));
    }
    return { tensor: t, bytes, chunks };
  });
  let results: Buffer[][];
  try {
    results = await Promise.all(jobs.map((j) => Promise.all(j.chunks)));
  } catch (err) {
    throw toCheckpointError(err);
  }
  const out = new TensorList();
  const entries: Record<string, CompressedEntry> = {};
  const report: CompressionReport = { codec: 'lz4', rawBytes: 0, storedBytes: 0, compressedTensors: 0, rawTensors: 0 };
  jobs.forEach((job, j) => {
    const compressed = results[j]!;
    const stored = compressed.reduce((n, c) => n + c.byteLength, 0);
    report.rawBytes += job.bytes.byteLength;
    if (compressed.length > 0 && stored < job.bytes.byteLength) {
      compressed.forEach((c, i) => {
        out.push(chunkName(job.tensor.name, i), 'uint8', [c.byteLength], new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
      });
      // defineProperty: a tensor named "__proto__" is a key of the map like any other.
      Object.defineProperty(entries, job.tensor.name, {
        value: { dtype: job.tensor.dtype, shape: job.tensor.shape, chunks: compressed.length },
        enumerable: true,
      });
      report.compressedTensors++;
      report.storedBytes += stored;
    } else {
      out.push(job.tensor.name, job.tensor.dtype, job.tensor.shape, copy ? job.bytes : job.tensor.data);
      report.rawTensors++;
      report.storedBytes += job.bytes.byteLength;
    }
  });
  return { tensors: out, metadataValue: JSON.stringify({ codec: 'lz4', chunkBytes: CHUNK_BYTES, tensors: entries }), report };
}

function formatError(message: string, path: string): CheckpointError {
  return new CheckpointError(`${path}: ${message}`, { code: 'ECKPT_FORMAT', path });
}

function parseEntries(value: string, path: string): Record<string, CompressedEntry> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw formatError(`${COMPRESSION_KEY} is not JSON`, path);
  }
  const p = parsed as { codec?: unknown; chunkBytes?: unknown; tensors?: unknown };
  if (typeof p !== 'object' || p === null || p.codec !== 'lz4' || p.chunkBytes !== CHUNK_BYTES || typeof p.tensors !== 'object' || p.tensors === null) {
    throw formatError(`${COMPRESSION_KEY} names an unknown codec or chunk size`, path);
  }
  const entries = p.tensors as Record<string, Partial<CompressedEntry>>;
  for (const [name, e] of Object.entries(entries)) {
    if (
      typeof e !== 'object' ||
      e === null ||
      typeof e.dtype !== 'string' ||
      !Object.hasOwn(ELEMENTS, e.dtype) ||
      !Array.isArray(e.shape) ||
      !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      !Number.isSafeInteger(e.chunks) ||
      (e.chunks as number) < 1
    ) {
      throw formatError(`${COMPRESSION_KEY}: malformed entry for tensor "${name}"`, path);
    }
  }
  return entries as Record<string, CompressedEntry>;
}

/** Replaces the chunk tensors of a file read by the addon with the original tensors. Every chunk's length
 * prefix and the total are checked against the recorded shape; any mismatch is ECKPT_FORMAT. */
export async function decompressTensors<T extends { dtype: DType | RawDType; shape: number[]; data: TypedArray }>(
  tensors: Record<string, T>,
  metadataValue: string,
  path: string,
): Promise<Record<string, { dtype: DType | RawDType; shape: number[]; data: TypedArray }>> {
  const entries = parseEntries(metadataValue, path);
  const out: Record<string, { dtype: DType | RawDType; shape: number[]; data: TypedArray }> = {};
  const used = new Set<string>();
  const plan: { name: string; entry: CompressedEntry; target: Uint8Array; chunks: Uint8Array[] }[] = [];
  for (const [name, e] of Object.entries(entries)) {
    const rawBytes = e.shape.reduce((n, d) => n * d, ELEMENTS[e.dtype].size);
    if (!Number.isSafeInteger(rawBytes) || Math.ceil(rawBytes / CHUNK_BYTES) !== e.chunks) {
      throw formatError(`tensor "${name}": ${e.chunks} chunk(s) cannot hold ${rawBytes} bytes`, path);
    }
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < e.chunks; i++) {
      const chunk = tensors[chunkName(name, i)];
      if (!chunk || chunk.dtype !== 'uint8' || chunk.data.byteLength < 4) {
        throw formatError(`tensor "${name}": chunk ${i} is missing or malformed`, path);
      }
      used.add(chunkName(name, i));
      const bytes = new Uint8Array(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength);
      const expected = Math.min(CHUNK_BYTES, rawBytes - i * CHUNK_BYTES);
      const declared = (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0;
      if (declared !== expected) throw formatError(`tensor "${name}": chunk ${i} says ${declared} bytes, expected ${expected}`, path);
      chunks.push(bytes);
    }
    plan.push({ name, entry: e, target: new Uint8Array(0), chunks });
  }
  for (const [name] of Object.entries(tensors)) {
    if (!used.has(name) && name.includes(CHUNK_SEPARATOR)) throw formatError(`chunk tensor "${name}" belongs to no compressed tensor`, path);
    if (!used.has(name) && Object.hasOwn(entries, name)) throw formatError(`tensor "${name}" is stored both raw and compressed`, path);
  }
  await Promise.all(
    plan.map((p) => {
      const rawBytes = p.entry.shape.reduce((n, d) => n * d, ELEMENTS[p.entry.dtype].size);
      p.target = new Uint8Array(rawBytes);
      return Promise.all(
        p.chunks.map((bytes, i) =>
          lz4()
            .uncompress(bytes)
            .then(
              (raw) => {
                if (raw.byteLength !== Math.min(CHUNK_BYTES, rawBytes - i * CHUNK_BYTES)) {
                  throw formatError(`tensor "${p.name}": chunk ${i} decompressed to ${raw.byteLength} bytes`, path);
                }
                p.target.set(raw, i * CHUNK_BYTES);
              },
              (err: unknown) => {
                throw formatError(`tensor "${p.name}": chunk ${i} is not valid lz4 (${(err as Error)?.message ?? String(err)})`, path);
              },
            ),
        ),
      );
    }),
  );
  // defineProperty: assigning a tensor named "__proto__" would set the prototype instead.
  const put = (name: string, t: { dtype: DType | RawDType; shape: number[]; data: TypedArray }) =>
    Object.defineProperty(out, name, { value: t, enumerable: true, writable: true, configurable: true });
  for (const p of plan) put(p.name, { dtype: p.entry.dtype, shape: p.entry.shape, data: ELEMENTS[p.entry.dtype].make(p.target.buffer as ArrayBuffer) });
  for (const [name, t] of Object.entries(tensors)) {
    if (!used.has(name)) put(name, t);
  }
  return out;
}
