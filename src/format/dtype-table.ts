/** The dtype table for code that runs without the native addon (the portable writer, the browser): the same rows,
 * in the same order, as native/format/dtype.cc, whose index is the code a packed tensor table carries.
 * test/portable-codec.test.ts checks that the addon's `dtypes` and `readDtypes` are exactly these. */
import type { DType, RawDType } from '../binding/contract';

export interface DTypeRow {
  /** ckptio's name (the TypeScript API's). */
  name: DType | RawDType;
  /** The safetensors header's name. */
  safetensors: string;
  /** Bytes per element as ckptio views it (1 for the raw-byte dtypes). */
  bytes: number;
  /** Bits per element in the file: what sizes a tensor and orders the layout. */
  bits: number;
}

/** What ckptio writes; index = code. */
export const WRITE_DTYPES: readonly DTypeRow[] = [
  { name: 'float64', safetensors: 'F64', bytes: 8, bits: 64 },
  { name: 'float32', safetensors: 'F32', bytes: 4, bits: 32 },
  { name: 'float16', safetensors: 'F16', bytes: 2, bits: 16 },
  { name: 'bfloat16', safetensors: 'BF16', bytes: 2, bits: 16 },
  { name: 'float8_e4m3', safetensors: 'F8_E4M3', bytes: 1, bits: 8 },
  { name: 'float8_e5m2', safetensors: 'F8_E5M2', bytes: 1, bits: 8 },
  { name: 'int64', safetensors: 'I64', bytes: 8, bits: 64 },
  { name: 'int32', safetensors: 'I32', bytes: 4, bits: 32 },
  { name: 'int16', safetensors: 'I16', bytes: 2, bits: 16 },
  { name: 'int8', safetensors: 'I8', bytes: 1, bits: 8 },
  { name: 'uint64', safetensors: 'U64', bytes: 8, bits: 64 },
  { name: 'uint32', safetensors: 'U32', bytes: 4, bits: 32 },
  { name: 'uint16', safetensors: 'U16', bytes: 2, bits: 16 },
  { name: 'uint8', safetensors: 'U8', bytes: 1, bits: 8 },
  { name: 'bool', safetensors: 'BOOL', bytes: 1, bits: 8 },
];

/** What a read can return: WRITE_DTYPES, then the reference's newer dtypes, returned as raw bytes; index = code. */
export const READ_DTYPES: readonly DTypeRow[] = [
  ...WRITE_DTYPES,
  { name: 'float8_e8m0', safetensors: 'F8_E8M0', bytes: 1, bits: 8 },
  { name: 'float8_e4m3fnuz', safetensors: 'F8_E4M3FNUZ', bytes: 1, bits: 8 },
  { name: 'float8_e5m2fnuz', safetensors: 'F8_E5M2FNUZ', bytes: 1, bits: 8 },
  { name: 'complex64', safetensors: 'C64', bytes: 1, bits: 64 },
  { name: 'float4', safetensors: 'F4', bytes: 1, bits: 4 },
  { name: 'float6_e2m3', safetensors: 'F6_E2M3', bytes: 1, bits: 6 },
  { name: 'float6_e3m2', safetensors: 'F6_E3M2', bytes: 1, bits: 6 },
];
