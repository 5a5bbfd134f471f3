/** `ckptio diff A B`: two checkpoint files, tensor by tensor: only in A, only in B, dtype or shape changed, and
 * for the common ones whether the bytes are equal and the largest absolute difference of the values. The
 * tensors are views over the mapped files; they are compared in fixed-size chunks (an unaligned view is copied
 * one chunk at a time into a small scratch buffer), so nothing the size of a tensor is allocated. */
import { readCheckpoint, TensorEntry } from '../../format/file';

/** Every dtype a read can return (the raw-byte ones compare by bytes only). */
type DType = TensorEntry['dtype'];
import { out, printJson, safe, table } from './output';

const CHUNK = 1 << 20;

export interface TensorDiff {
  name: string;
  dtype: DType;
  shape: number[];
  bytesEqual: boolean;
  /** Elements that differ (NaN equals NaN here), null for dtypes compared only by bytes. */
  differing: number | null;
  /** max |a - b| over elements; 0 when equal; null for dtypes compared only by bytes. */
  maxAbsDiff: number | null;
  /** Elements where exactly one side is NaN (left out of maxAbsDiff). */
  nanMismatches: number;
}

export interface DiffResult {
  a: string;
  b: string;
  onlyInA: { name: string; dtype: DType; shape: number[] }[];
  onlyInB: { name: string; dtype: DType; shape: number[] }[];
  changed: { name: string; a: { dtype: DType; shape: number[] }; b: { dtype: DType; shape: number[] } }[];
  common: TensorDiff[];
  identical: boolean;
}

const ELEMENT: Partial<Record<DType, number>> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  uint64: 8,
  int32: 4,
  uint32: 4,
  int16: 2,
  uint16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

function bytesOf(t: TensorEntry): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

const f16Scratch = new DataView(new ArrayBuffer(4));
function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}
function bfloat(h: number): number {
  f16Scratch.setUint32(0, h << 16);
  return f16Scratch.getFloat32(0);
}

/** A typed view of `n` bytes at `off` of `bytes` for reading elements: direct when aligned, else copied into `scratch`. */
function view(dtype: DType, bytes: Uint8Array, off: number, n: number, scratch: Uint8Array): ArrayLike<number | bigint> {
  const size = ELEMENT[dtype]!;
  let buf = bytes.buffer as ArrayBuffer;
  let at = bytes.byteOffset + off;
  if (at % size !== 0) {
    scratch.set(bytes.subarray(off, off + n));
    buf = scratch.buffer as ArrayBuffer;
    at = scratch.byteOffset;
  }
  const count = n / size;
  switch (dtype) {
    case 'float64':
      return new Float64Array(buf, at, count);
    case 'float32':
      return new Float32Array(buf, at, count);
    case 'int64':
      return new BigInt64Array(buf, at, count);
    case 'uint64':
      return new BigUint64Array(buf, at, count);
    case 'int32':
      return new Int32Array(buf, at, count);
    case 'uint32':
      return new Uint32Array(buf, at, count);
    case 'int16':
      return new Int16Array(buf, at, count);
    case 'float16':
    case 'bfloat16':
    case 'uint16':
      return new Uint16Array(buf, at, count);
    case 'int8':
      return new Int8Array(buf, at, count);
    default:
      return new Uint8Array(buf, at, count);
  }
}

function compare(name: string, ta: TensorEntry, tb: TensorEntry): TensorDiff {
  const a = bytesOf(ta);
  const b = bytesOf(tb);
  const result: TensorDiff = { name, dtype: ta.dtype, shape: ta.shape, bytesEqual: true, differing: null, maxAbsDiff: null, nanMismatches: 0 };
  const size = ELEMENT[ta.dtype];
  const numeric = size !== undefined && a.byteLength === b.byteLength;
  if (numeric) {
    result.differing = 0;
    result.maxAbsDiff = 0;
  }
  if (a.byteLength !== b.byteLength) result.bytesEqual = false;
  const scratchA = new Uint8Array(Math.min(CHUNK, a.byteLength));
  const scratchB = new Uint8Array(Math.min(CHUNK, b.byteLength));
  const decode = ta.dtype === 'float16' ? half : ta.dtype === 'bfloat16' ? bfloat : null;
  for (let off = 0; off < Math.min(a.byteLength, b.byteLength); off += CHUNK) {
    const n = Math.min(CHUNK, a.byteLength - off);
    if (Buffer.compare(a.subarray(off, off + n), b.subarray(off, off + n)) === 0) continue;
    result.bytesEqual = false;
    if (!numeric) break;
    const va = view(ta.dtype, a, off, n, scratchA);
    const vb = view(ta.dtype, b, off, n, scratchB);
    for (let i = 0; i < va.length; i++) {
      let x = va[i]!;
      let y = vb[i]!;
      if (x === y) continue;
      if (typeof x === 'bigint') {
        const d = x > (y as bigint) ? x - (y as bigint) : (y as bigint) - x;
        result.differing!++;
        result.maxAbsDiff = Math.max(result.maxAbsDiff!, Number(d));
        continue;
      }
      if (decode) {
        x = decode(x);
        y = decode(y as number);
        if (x === y) continue;
      }
      const xn = Number.isNaN(x);
      const yn = Number.isNaN(y);
      if (xn && yn) continue;
      result.differing!++;
      if (xn || yn) {
        result.nanMismatches++;
        continue;
      }
      result.maxAbsDiff = Math.max(result.maxAbsDiff!, Math.abs((x as number) - (y as number)));
    }
  }
  return result;
}

export async function diffFiles(fileA: string, fileB: string, verify: boolean): Promise<DiffResult> {
  const [ra, rb] = [await readCheckpoint(fileA, { verify }), await readCheckpoint(fileB, { verify })];
  const names = new Set([...Object.keys(ra.tensors), ...Object.keys(rb.tensors)]);
  const r: DiffResult = { a: fileA, b: fileB, onlyInA: [], onlyInB: [], changed: [], common: [], identical: true };
  for (const name of [...names].sort()) {
    const ta = ra.tensors[name];
    const tb = rb.tensors[name];
    if (!tb) {
      r.onlyInA.push({ name, dtype: ta!.dtype, shape: ta!.shape });
      continue;
    }
    if (!ta) {
      r.onlyInB.push({ name, dtype: tb.dtype, shape: tb.shape });
      continue;
    }
    if (ta.dtype !== tb.dtype || ta.shape.length !== tb.shape.length || ta.shape.some((d, i) => d !== tb.shape[i])) {
      r.changed.push({ name, a: { dtype: ta.dtype, shape: ta.shape }, b: { dtype: tb.dtype, shape: tb.shape } });
      continue;
    }
    r.common.push(compare(name, ta, tb));
  }
  r.identical = !r.onlyInA.length && !r.onlyInB.length && !r.changed.length && r.common.every((c) => c.bytesEqual);
  return r;
}

export async function diff(fileA: string, fileB: string, o: { json?: boolean; verify: boolean }): Promise<void> {
  const r = await diffFiles(fileA, fileB, o.verify);
  if (o.json) {
    printJson(r);
    return;
  }
  const shape = (s: number[]) => `[${s.join(', ')}]`;
  out(`a: ${safe(fileA)}`);
  out(`b: ${safe(fileB)}`);
  for (const t of r.onlyInA) out(`only in a: ${safe(t.name)} ${t.dtype} ${shape(t.shape)}`);
  for (const t of r.onlyInB) out(`only in b: ${safe(t.name)} ${t.dtype} ${shape(t.shape)}`);
  for (const t of r.changed) out(`changed:   ${safe(t.name)} ${t.a.dtype} ${shape(t.a.shape)} -> ${t.b.dtype} ${shape(t.b.shape)}`);
  const rows = r.common.map((c) => [
    safe(c.name),
    c.dtype,
    shape(c.shape),
    c.bytesEqual ? 'equal' : 'differ',
    c.differing === null ? '-' : String(c.differing),
    c.maxAbsDiff === null ? '-' : String(c.maxAbsDiff),
    c.nanMismatches ? String(c.nanMismatches) : '-',
  ]);
  if (rows.length) for (const l of table(['TENSOR', 'DTYPE', 'SHAPE', 'BYTES', 'DIFFERING', 'MAX ABS DIFF', 'NAN MISMATCH'], rows)) out(l);
  const differing = r.common.filter((c) => !c.bytesEqual).length;
  out(
    r.identical
      ? 'identical tensors'
      : `${r.onlyInA.length} only in a, ${r.onlyInB.length} only in b, ${r.changed.length} changed dtype/shape, ${differing} of ${r.common.length} common differ`,
  );
}
