/** The dtypes, from the one table (dtype-table.ts, held to the addon's native/format/dtype.cc by
 * test/portable-codec.test.ts: its index is the code the packed tensor table carries); this adds only which JS array
 * type views each one. */
import type { DType, RawDType, TypedArray } from '../binding/contract';
import { READ_DTYPES, WRITE_DTYPES } from './dtype-table';

type ViewMaker = (buffer: ArrayBufferLike, byteOffset: number, length: number) => TypedArray;

const VIEWS: Readonly<Record<DType, ViewMaker>> = {
  float64: (b, o, n) => new Float64Array(b, o, n),
  float32: (b, o, n) => new Float32Array(b, o, n),
  float16: (b, o, n) => new Uint16Array(b, o, n),
  bfloat16: (b, o, n) => new Uint16Array(b, o, n),
  float8_e4m3: (b, o, n) => new Uint8Array(b, o, n),
  float8_e5m2: (b, o, n) => new Uint8Array(b, o, n),
  int64: (b, o, n) => new BigInt64Array(b, o, n),
  int32: (b, o, n) => new Int32Array(b, o, n),
  int16: (b, o, n) => new Int16Array(b, o, n),
  int8: (b, o, n) => new Int8Array(b, o, n),
  uint64: (b, o, n) => new BigUint64Array(b, o, n),
  uint32: (b, o, n) => new Uint32Array(b, o, n),
  uint16: (b, o, n) => new Uint16Array(b, o, n),
  uint8: (b, o, n) => new Uint8Array(b, o, n),
  bool: (b, o, n) => new Uint8Array(b, o, n),
};

const BY_NAME = new Map<string, { code: number; bytes: number }>(WRITE_DTYPES.map((d, code) => [d.name, { code, bytes: d.bytes }]));
const BY_CODE: readonly DType[] = WRITE_DTYPES.map((d) => d.name as DType);
const READ_CODES: readonly (DType | RawDType)[] = READ_DTYPES.map((d) => d.name);

export function isDType(name: unknown): name is DType {
  return typeof name === 'string' && BY_NAME.has(name);
}

export function dtypeCode(dtype: DType): number {
  return BY_NAME.get(dtype)!.code;
}

export function dtypeOfCode(code: number): DType {
  return BY_CODE[code]!;
}

/** The dtype of a code in a read's packed table (which includes the raw-byte dtypes). */
export function readDtypeOfCode(code: number): DType | RawDType {
  return READ_CODES[code]!;
}

/** Bytes per element. */
export function dtypeBytes(dtype: DType): number {
  return BY_NAME.get(dtype)!.bytes;
}

/** `byteLength` bytes of `buffer` from `byteOffset` as the array type that reads `dtype` (raw unsigned words for
 * the floats JavaScript has no array for). */
export function viewAs(dtype: DType | RawDType, buffer: ArrayBufferLike, byteOffset = 0, byteLength = buffer.byteLength - byteOffset): TypedArray {
  if (!isDType(dtype)) return new Uint8Array(buffer, byteOffset, byteLength); // a raw-byte dtype: its bytes as they are
  const size = dtypeBytes(dtype);
  // A foreign file may place a tensor at an offset its element type cannot view: that one is copied.
  if (byteOffset % size !== 0) return VIEWS[dtype](buffer.slice(byteOffset, byteOffset + byteLength), 0, byteLength / size);
  return VIEWS[dtype](buffer, byteOffset, byteLength / size);
}
