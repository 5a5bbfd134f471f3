/** The inputs of the golden files in test/golden/ (docs/format.md "Byte-exact encoding"). */
import type { TensorEntry } from '../src';

export interface GoldenCase {
  name: string;
  tensors: Record<string, TensorEntry>;
  metadata: Record<string, string>;
  checksum: boolean;
}

export const goldenCases: GoldenCase[] = [
  {
    name: 'mixed',
    tensors: {
      'layer/kernel': { dtype: 'float32', shape: [2, 3], data: new Float32Array([0.5, -1, 2, 3.25, 0, 1e-3]) },
      bias: { dtype: 'float64', shape: [2], data: new Float64Array([Math.PI, -0]) },
      steps: { dtype: 'int64', shape: [1], data: new BigInt64Array([-7n]) },
      count: { dtype: 'int32', shape: [3], data: new Int32Array([1, -2, 2147483647]) },
      half: { dtype: 'float16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
      mask: { dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) },
      'é "quoted"\nname': { dtype: 'uint8', shape: [5], data: new Uint8Array([0, 1, 2, 254, 255]) },
      scalar: { dtype: 'float32', shape: [], data: new Float32Array([42]) },
      empty: { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
    },
    metadata: { 'ckptio.step': '7', b: 'x\ny\t"z"\\', a: '\u0001 é', '': 'empty key' },
    checksum: true,
  },
  { name: 'empty', tensors: {}, metadata: {}, checksum: true },
  {
    name: 'no-checksum',
    tensors: { w: { dtype: 'int16', shape: [3], data: new Int16Array([1, -1, 300]) } },
    metadata: { note: 'plain safetensors' },
    checksum: false,
  },
];
