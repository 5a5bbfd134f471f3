/** The one table from tfjs dtypes to ckptio's (and safetensors') dtypes. string and complex64 tensors cannot be
 * checkpointed. */
import type { DType } from '../binding/contract';

export const TFJS_DTYPES: Readonly<Record<'float32' | 'int32' | 'bool', { dtype: DType; safetensors: string; bytes: number }>> = {
  float32: { dtype: 'float32', safetensors: 'F32', bytes: 4 },
  int32: { dtype: 'int32', safetensors: 'I32', bytes: 4 },
  bool: { dtype: 'bool', safetensors: 'BOOL', bytes: 1 },
};

export type TfjsDType = keyof typeof TFJS_DTYPES;

export function isTfjsDType(d: string): d is TfjsDType {
  return Object.hasOwn(TFJS_DTYPES, d);
}
