/** The codec against the golden files in test/golden/ and against the byte-exact spec in docs/format.md: the
 * native encoder (encodeCheckpoint), the native writer (writeCheckpoint) and an encoder written here from the
 * spec's words alone all produce each golden file byte for byte; decodeCheckpoint reads each back and rejects a
 * flipped byte. CKPTIO_WRITE_GOLDEN=1 rewrites the golden files from the native encoder (only when the format
 * changes on purpose, with a new format version). */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { readCheckpoint, writeCheckpoint } from '../src';
import { native } from '../src/binding/native';
import { decodeCheckpoint, encodeCheckpoint } from '../src/format/codec';
import { bytesOf, tempDir } from './helpers';
import { GoldenCase, goldenCases } from './golden-cases';

const GOLDEN = path.resolve(__dirname, '..', '..', 'test', 'golden');

type Case = GoldenCase;
const cases = goldenCases;

const SAFETENSORS_DTYPE: Record<string, [string, number]> = {
  float64: ['F64', 64],
  float32: ['F32', 32],
  float16: ['F16', 16],
  bfloat16: ['BF16', 16],
  int64: ['I64', 64],
  int32: ['I32', 32],
  int16: ['I16', 16],
  int8: ['I8', 8],
  uint64: ['U64', 64],
  uint32: ['U32', 32],
  uint16: ['U16', 16],
  uint8: ['U8', 8],
  bool: ['BOOL', 8],
};

/** docs/format.md "Byte-exact encoding", followed literally; XXH3-64 is the only borrowed piece (native.xxh3). */
function encodeFromSpec(c: Case): Buffer {
  const utf8 = (s: string) => Buffer.from(s, 'utf8');
  const cmp = (a: Buffer, b: Buffer) => Buffer.compare(a, b);
  const u64 = (x: number | bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(x));
    return b;
  };
  const str = (s: string) => Buffer.concat([u64(utf8(s).length), utf8(s)]);
  const tensors = Object.entries(c.tensors).map(([name, t]) => ({
    name,
    dtype: SAFETENSORS_DTYPE[t.dtype]!,
    shape: t.shape,
    bytes: bytesOf(t.data),
    begin: 0,
    end: 0,
  }));
  tensors.sort((a, b) => (a.dtype[1] !== b.dtype[1] ? b.dtype[1] - a.dtype[1] : cmp(utf8(a.name), utf8(b.name))));
  let offset = 0;
  for (const t of tensors) {
    t.begin = offset;
    t.end = offset + t.bytes.length;
    offset = t.end;
  }
  const metadata: [string, string][] = Object.entries(c.metadata);
  if (c.checksum) {
    metadata.push(['ckptio.format', '1'], ['ckptio.checksum', 'xxh3-64'], ['ckptio.tensor_xxh3', tensors.map((t) => native.xxh3(t.bytes)).join(',')]);
    const sorted = [...metadata].sort((a, b) => cmp(utf8(a[0]), utf8(b[0])));
    const stream = Buffer.concat([
      u64(tensors.length),
      ...tensors.flatMap((t) => [str(t.name), str(t.dtype[0]), u64(t.shape.length), ...t.shape.map(u64), u64(t.begin), u64(t.end)]),
      u64(sorted.length),
      ...sorted.flatMap(([k, v]) => [str(k), str(v)]),
    ]);
    metadata.push(['ckptio.header_xxh3', native.xxh3(stream)]);
  }
  metadata.sort((a, b) => cmp(utf8(a[0]), utf8(b[0])) || cmp(utf8(a[1]), utf8(b[1])));
  const escape = (s: string) =>
    '"' +
    [...utf8(s)]
      .map((byte) => {
        if (byte === 0x22) return '\\"';
        if (byte === 0x5c) return '\\\\';
        if (byte === 0x0a) return '\\n';
        if (byte === 0x0d) return '\\r';
        if (byte === 0x09) return '\\t';
        if (byte < 0x20) return `\\u00${byte.toString(16).padStart(2, '0')}`;
        return String.fromCharCode(byte); // a latin1 code unit per byte: written back as the same byte below
      })
      .join('') +
    '"';
  let json = '{"__metadata__":{' + metadata.map(([k, v]) => `${escape(k)}:${escape(v)}`).join(',') + '}';
  for (const t of tensors) json += `,${escape(t.name)}:{"dtype":"${t.dtype[0]}","shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`;
  json += '}';
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  return Buffer.concat([u64(json.length), Buffer.from(json, 'latin1'), ...tensors.map((t) => t.bytes)]);
}

for (const c of cases) {
  test(`golden ${c.name}: native encoder, native writer and the spec's words give the golden bytes; decode reads it back`, async () => {
    const file = path.join(GOLDEN, `${c.name}.safetensors`);
    const encoded = await encodeCheckpoint(c.tensors, { metadata: c.metadata, checksum: c.checksum });
    if (process.env.CKPTIO_WRITE_GOLDEN === '1') fs.writeFileSync(file, encoded.bytes);
    const golden = fs.readFileSync(file);
    assert.ok(Buffer.from(encoded.bytes).equals(golden), 'encodeCheckpoint differs from the golden file');
    const written = path.join(tempDir(), 'w.safetensors');
    await writeCheckpoint(written, c.tensors, { metadata: c.metadata, checksum: c.checksum });
    assert.ok(fs.readFileSync(written).equals(golden), 'writeCheckpoint differs from the golden file');
    assert.ok(encodeFromSpec(c).equals(golden), 'the spec in docs/format.md, followed literally, differs from the golden file');
    if (c.checksum) assert.match(encoded.contentId ?? '', /^[0-9a-f]{16}$/);

    const decoded = await decodeCheckpoint(new Uint8Array(golden), { verify: c.checksum });
    assert.deepEqual(Object.keys(decoded.tensors).sort(), Object.keys(c.tensors).sort());
    for (const [name, t] of Object.entries(c.tensors)) {
      assert.equal(decoded.tensors[name]!.dtype, t.dtype, name);
      assert.deepEqual(decoded.tensors[name]!.shape, t.shape, name);
      assert.ok(bytesOf(decoded.tensors[name]!.data).equals(bytesOf(t.data)), name);
    }
    assert.deepEqual(decoded.metadata, c.metadata);
    const read = await readCheckpoint(file, { verify: c.checksum });
    assert.deepEqual(read.metadata, decoded.metadata);
  });
}

test('decodeCheckpoint rejects a flipped byte (header or data) with ECKPT_CHECKSUM or ECKPT_FORMAT, and a non-Uint8Array with ECKPT_ARGS', async () => {
  const golden = fs.readFileSync(path.join(GOLDEN, 'mixed.safetensors'));
  for (const at of [20, golden.length - 3]) {
    const bad = new Uint8Array(golden);
    bad[at]! ^= 0x08;
    await assert.rejects(decodeCheckpoint(bad), (err: { code?: string }) => err.code === 'ECKPT_CHECKSUM' || err.code === 'ECKPT_FORMAT');
  }
  // A view into a larger buffer: offsets are the view's.
  const padded = new Uint8Array(golden.length + 24);
  padded.set(golden, 16);
  const view = await decodeCheckpoint(padded.subarray(16, 16 + golden.length));
  assert.equal((view.tensors.bias!.data as Float64Array)[0], Math.PI);
  await assert.rejects(decodeCheckpoint(Buffer.from(golden).toString('hex') as unknown as Uint8Array), (err: { code?: string }) => err.code === 'ECKPT_ARGS');
});
