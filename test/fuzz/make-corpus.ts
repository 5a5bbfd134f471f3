/** Regenerates the committed seed corpus of the header fuzzer (test/fuzz/corpus): valid checkpoints written
 * by the library itself (every dtype, scalars, empty tensors, metadata) and one file per malformed class.
 * Run: node dist/test/fuzz/make-corpus.js */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeCheckpoint, TensorEntry, DType } from '../../src/format/file';
import { craftFile, pattern } from '../helpers';

const CORPUS = path.resolve(__dirname, '..', '..', '..', 'test', 'fuzz', 'corpus');

async function main(): Promise<void> {
  fs.rmSync(CORPUS, { recursive: true, force: true });
  fs.mkdirSync(CORPUS, { recursive: true });
  const bytes = (n: number, seed: number) => new Uint8Array(pattern(Math.ceil(n / 4), seed).buffer, 0, n);
  const sizes: Record<DType, number> = {
    float64: 8,
    float32: 4,
    float16: 2,
    bfloat16: 2,
    float8_e4m3: 1,
    float8_e5m2: 1,
    int64: 8,
    int32: 4,
    int16: 2,
    int8: 1,
    uint64: 8,
    uint32: 4,
    uint16: 2,
    uint8: 1,
    bool: 1,
  };
  const valid: Record<string, Record<string, TensorEntry>> = {
    empty: {},
    scalar: { s: { dtype: 'float32', shape: [], data: new Float32Array([1.5]) } },
    zero_dim: { z: { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) } },
    mlp: {
      'dense/kernel': { dtype: 'float32', shape: [8, 4], data: pattern(32, 1) },
      'dense/bias': { dtype: 'float32', shape: [4], data: pattern(4, 2) },
      'adam/m/dense/kernel': { dtype: 'float32', shape: [8, 4], data: pattern(32, 3) },
    },
    all_dtypes: Object.fromEntries(
      Object.entries(sizes).map(([d, s], i) => [`t_${d}`, { dtype: d as DType, shape: [2, 3], data: new Uint8Array(bytes(6 * s, i + 10)) }]),
    ),
  };
  for (const [name, tensors] of Object.entries(valid)) {
    const file = path.join(CORPUS, `valid_${name}.safetensors`);
    await writeCheckpoint(file, tensors, { metadata: name === 'mlp' ? { 'ckptio.step': '42', 'ckptio.state': '{"epoch":1,"rng":[1,2,3,4]}' } : {} });
  }
  // A plain safetensors file without ckptio keys (what other tools write).
  const plain = { __metadata__: { format: 'pt' }, w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };
  fs.writeFileSync(path.join(CORPUS, 'foreign_plain.safetensors'), craftFile(plain, bytes(16, 5)));
  const malformed: Record<string, Buffer> = {
    overlapping: craftFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, bytes(12, 6)),
    hole: craftFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, bytes(8, 7)),
    shape_mismatch: craftFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, bytes(8, 8)),
    bad_dtype: craftFile({ a: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, bytes(4, 9)),
    duplicate_key: craftFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', bytes(1, 10)),
    deep_nesting: craftFile(`{"__metadata__":${'['.repeat(40)}${']'.repeat(40)}}`, new Uint8Array(0)),
    length_past_end: craftFile(plain, bytes(16, 11), { lengthOverride: 1n << 40n }),
    truncated: craftFile(plain, bytes(16, 12)).subarray(0, 40),
    not_json: craftFile('this is not json', new Uint8Array(0)),
    trailing_data: craftFile(plain, bytes(20, 13)),
  };
  for (const [name, buf] of Object.entries(malformed)) fs.writeFileSync(path.join(CORPUS, `bad_${name}.safetensors`), buf);
  console.log(`${fs.readdirSync(CORPUS).length} seed files in ${CORPUS}`);
}

void main();
