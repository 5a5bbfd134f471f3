// Agreement with the reference safetensors reader on files it accepts (issue 15, item 2). Each test is written
// from the reference's rules, not from ckptio's code:
// - the header length N is accepted up to 100,000,000 bytes inclusive (its MAX_HEADER_SIZE), not 100 MiB;
// - shapes are unsigned 64-bit; a tensor's element count is the product of its dims, checked for overflow left
//   to right, then multiplied by the dtype's bit width (checked), which must be a whole number of bytes;
// - header strings are JSON strings: "\u0000" is a character like any other, so names and keys that differ
//   after a NUL are different;
// - dtypes include F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ (8 bits), C64 (64 bits), F4 (4 bits), F6_E2M3 and
//   F6_E3M2 (6 bits).
// ckptio's one documented departure (docs/format.md): a dimension above 2^53 - 1 cannot come back exactly as a
// JavaScript number, so it is rejected with ECKPT_FORMAT naming the tensor (only a zero-element tensor can have
// one in a file that exists).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError, readCheckpoint, writeCheckpoint } from '../src';
import { native } from '../src/binding/native';
import { readHeader } from '../src/format/file';
import { bytesOf, craftFile, tempDir } from './helpers';

const dir = tempDir('ckptio-refagree-');
let n = 0;

function put(file: Buffer): string {
  const p = path.join(dir, `f-${n++}`);
  fs.writeFileSync(p, file);
  return p;
}

/** Both read paths reject `p` with ECKPT_FORMAT and a message matching `message`. */
async function bothReject(p: string, message: RegExp): Promise<void> {
  const check = (err: unknown) => {
    assert.ok(err instanceof CheckpointError, `not a CheckpointError: ${String(err)}`);
    assert.equal(err.code, 'ECKPT_FORMAT', err.message);
    assert.match(err.message, message);
    assert.equal(err.path, p);
    return true;
  };
  await assert.rejects(readCheckpoint(p, { verify: false }), check);
  await assert.rejects(readHeader(p), check);
}

/** A file whose header is `json` padded with spaces (JSON whitespace, as the format allows) to exactly `len`. */
function paddedHeaderFile(json: string, len: number, data: Uint8Array): Buffer {
  const file = Buffer.alloc(8 + len + data.length, 0x20);
  file.writeBigUInt64LE(BigInt(len), 0);
  const text = Buffer.from(json, 'utf8');
  assert.ok(text.length <= len);
  text.copy(file, 8);
  Buffer.from(data).copy(file, 8 + len);
  return file;
}

test('header length: 100,000,000 bytes (the reference cap) is read, 100,000,001 is ECKPT_FORMAT', async () => {
  const json = JSON.stringify({ __metadata__: { k: 'v' }, t: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } });
  const ok = put(paddedHeaderFile(json, 100_000_000, new Uint8Array([7, 9])));
  try {
    const r = await readCheckpoint(ok, { verify: false });
    assert.deepEqual([...(r.tensors.t!.data as Uint8Array)], [7, 9]);
    assert.deepEqual(r.metadata, { k: 'v' });
    assert.equal(r.bytes, 8 + 100_000_000 + 2);
    const h = await readHeader(ok);
    assert.deepEqual(h.tensors, [{ name: 't', dtype: 'uint8', shape: [2], bytes: 2 }]);
  } finally {
    fs.rmSync(ok);
  }
  const over = put(paddedHeaderFile(json, 100_000_001, new Uint8Array([7, 9])));
  try {
    await bothReject(over, /header length 100000001 exceeds the 100000000-byte cap/);
  } finally {
    fs.rmSync(over);
  }
});

test('header length: 100 MiB (104,857,600) is over the cap', async () => {
  // Only the 8-byte prefix matters: the cap is checked before the length is compared with the file size.
  const p = put(craftFile('{}', new Uint8Array(), { lengthOverride: 100n << 20n }));
  await bothReject(p, /header length 104857600 exceeds the 100000000-byte cap/);
});

test('dimensions up to 2^53 - 1 come back exactly, on both read paths', async () => {
  const max = Number.MAX_SAFE_INTEGER; // 9007199254740991
  const text = `{"e":{"dtype":"F32","shape":[${max},0],"data_offsets":[0,0]},"f":{"dtype":"U8","shape":[0,${max}],"data_offsets":[0,0]}}`;
  const p = put(craftFile(text, new Uint8Array()));
  const r = await readCheckpoint(p, { verify: false });
  assert.deepEqual(r.tensors.e!.shape, [max, 0]);
  assert.deepEqual(r.tensors.f!.shape, [0, max]);
  assert.equal(r.tensors.e!.data.length, 0);
  const h = await readHeader(p);
  assert.deepEqual(h.tensors.map((t) => [t.name, t.shape]).sort(), [
    ['e', [max, 0]],
    ['f', [0, max]],
  ]);
});

test('a dimension above 2^53 - 1 is ECKPT_FORMAT naming the tensor, never rounded', async () => {
  // [2^53 + 1, 0] has zero elements, so it is a valid file for the reference; a JavaScript number would round
  // the dim to 2^53. 2^53 itself is rejected too: as a number it cannot be told apart from 2^53 + 1.
  for (const dim of ['9007199254740993', '9007199254740992', '18446744073709551615']) {
    const text = `{"ok":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"big\\u0000one":{"dtype":"I32","shape":[${dim},0],"data_offsets":[1,1]}}`;
    const p = put(craftFile(text, new Uint8Array([1])));
    await bothReject(p, new RegExp(`tensor "big\\\\u0000one": dimension ${dim} is above 2\\^53-1`));
  }
});

test('element count overflow follows the reference: elements first, then bits; a zero dim after large ones is valid', async () => {
  // Elements 2^31 * 2^31 * 0 = 0: valid for the reference, although 8 bytes x 2^31 x 2^31 passes 2^64.
  const p = put(craftFile(`{"z":{"dtype":"F64","shape":[2147483648,2147483648,0],"data_offsets":[0,0]}}`, new Uint8Array()));
  const r = await readCheckpoint(p, { verify: false });
  assert.deepEqual(r.tensors.z!.shape, [2147483648, 2147483648, 0]);
  assert.equal((r.tensors.z!.data as Float64Array).length, 0);
  assert.deepEqual((await readHeader(p)).tensors[0]!.shape, [2147483648, 2147483648, 0]);
  // The product of the dims overflows 64 bits before the zero is reached: the reference rejects it.
  const q = put(craftFile(`{"z":{"dtype":"U8","shape":[8589934592,8589934592,0],"data_offsets":[0,0]}}`, new Uint8Array()));
  await bothReject(q, /tensor "z": shape \[8589934592,8589934592,0\] overflows 64 bits/);
});

test('a NUL in tensor names, metadata keys and values round-trips through write and read', async () => {
  const p = path.join(dir, `nul-${n++}`);
  const metadata = { 'k\u0000x': 'one', 'k\u0000y': 'two\u0000three', k: 'plain' };
  await writeCheckpoint(
    p,
    {
      'a\u0000b': { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) },
      a: { dtype: 'float32', shape: [1], data: new Float32Array([3]) },
    },
    { metadata },
  );
  const r = await readCheckpoint(p); // verified: the header digest covers the names byte for byte
  assert.equal(r.verified, true);
  assert.deepEqual(Object.keys(r.tensors).sort(), ['a', 'a\u0000b']);
  assert.deepEqual([...(r.tensors['a\u0000b']!.data as Float32Array)], [1, 2]);
  assert.deepEqual([...(r.tensors.a!.data as Float32Array)], [3]);
  assert.deepEqual(r.metadata, metadata);
  const h = await readHeader(p);
  assert.deepEqual(h.tensors.map((t) => t.name).sort(), ['a', 'a\u0000b']);
  assert.equal(h.metadata['k\u0000x'], 'one');
  assert.equal(h.metadata['k\u0000y'], 'two\u0000three');
  assert.equal(h.metadata.k, 'plain');
});

test('keys "a\\u0000b" and "a\\u0000c" in a crafted file are two keys, and both are kept', async () => {
  const text =
    '{"__metadata__":{"a\\u0000b":"1","a\\u0000c":"2"},' +
    '"t\\u0000b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t\\u0000c":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
  const p = put(craftFile(text, new Uint8Array([5, 6])));
  const r = await readCheckpoint(p, { verify: false });
  assert.deepEqual(r.metadata, { 'a\u0000b': '1', 'a\u0000c': '2' });
  assert.deepEqual(Object.keys(r.tensors).sort(), ['t\u0000b', 't\u0000c']);
  assert.deepEqual([...(r.tensors['t\u0000b']!.data as Uint8Array)], [5]);
  assert.deepEqual([...(r.tensors['t\u0000c']!.data as Uint8Array)], [6]);
  const h = await readHeader(p);
  assert.deepEqual(h.metadata, { 'a\u0000b': '1', 'a\u0000c': '2' });
  assert.deepEqual(h.tensors.map((t) => t.name).sort(), ['t\u0000b', 't\u0000c']);
});

test('a metadata key "__proto__" is an ordinary key on both read paths', async () => {
  const p = put(craftFile('{"__metadata__":{"__proto__":"x","constructor":"y"}}', new Uint8Array()));
  const r = await readCheckpoint(p, { verify: false });
  assert.deepEqual(Object.entries(r.metadata).sort(), [
    ['__proto__', 'x'],
    ['constructor', 'y'],
  ]);
  const h = await readHeader(p);
  assert.deepEqual(Object.entries(h.metadata).sort(), [
    ['__proto__', 'x'],
    ['constructor', 'y'],
  ]);
});

// The reference's newer dtypes ckptio reads, as raw bytes: [safetensors name, ckptio name, bits per element].
const RAW_DTYPES: [string, string, number][] = [
  ['F8_E8M0', 'float8_e8m0', 8],
  ['F8_E4M3FNUZ', 'float8_e4m3fnuz', 8],
  ['F8_E5M2FNUZ', 'float8_e5m2fnuz', 8],
  ['C64', 'complex64', 64],
  ['F4', 'float4', 4],
  ['F6_E2M3', 'float6_e2m3', 6],
  ['F6_E3M2', 'float6_e3m2', 6],
];

test("the reference's newer dtypes are read as raw bytes (a Uint8Array) with their dtype name", async () => {
  for (const [st, js, bits] of RAW_DTYPES) {
    const shape = [2, 4]; // 8 elements: a whole number of bytes for every bit width
    const bytes = (8 * bits) / 8;
    const data = Uint8Array.from({ length: bytes }, (_, i) => (i * 37 + bits) & 0xff);
    // A one-byte tensor first, so this one starts at an odd offset: raw bytes need no alignment.
    const text = JSON.stringify({ pre: { dtype: 'U8', shape: [1], data_offsets: [0, 1] }, x: { dtype: st, shape, data_offsets: [1, 1 + bytes] } });
    const p = put(craftFile(text, Buffer.concat([Buffer.from([0xaa]), data])));
    const r = await readCheckpoint(p, { verify: false });
    const x = r.tensors.x!;
    assert.equal(x.dtype, js, st);
    assert.deepEqual(x.shape, shape, st);
    assert.ok(x.data instanceof Uint8Array, `${st}: ${x.data.constructor.name}`);
    assert.ok(bytesOf(x.data).equals(Buffer.from(data)), st);
    assert.deepEqual([...(r.tensors.pre!.data as Uint8Array)], [0xaa]);
    const h = await readHeader(p);
    assert.deepEqual(
      h.tensors.find((t) => t.name === 'x'),
      { name: 'x', dtype: js, shape, bytes },
      st,
    );
  }
});

test('sub-byte dtypes: byte size is elements x bits / 8, and a count that is not a whole number of bytes is ECKPT_FORMAT', async () => {
  // The reference's own F4 case: shape [1, 2] is one byte.
  const one = put(craftFile('{"attn.0":{"dtype":"F4","shape":[1,2],"data_offsets":[0,1]}}', new Uint8Array([0x5a])));
  const r = await readCheckpoint(one, { verify: false });
  assert.deepEqual([...(r.tensors['attn.0']!.data as Uint8Array)], [0x5a]);
  assert.equal((await readHeader(one)).tensors[0]!.bytes, 1);
  // F6 x 4 = 24 bits = 3 bytes; F4 x 0 = 0 bytes.
  const three = put(
    craftFile('{"a":{"dtype":"F6_E3M2","shape":[4],"data_offsets":[0,3]},"b":{"dtype":"F4","shape":[0,3],"data_offsets":[3,3]}}', new Uint8Array([1, 2, 3])),
  );
  const r3 = await readCheckpoint(three, { verify: false });
  assert.equal(r3.tensors.a!.data.length, 3);
  assert.equal(r3.tensors.b!.data.length, 0);
  // Not whole bytes: F4 x 3 = 12 bits, F6 x 1 = 6 bits, F6 x 2 = 12 bits (offsets rounded up or down alike).
  const cases: [dtype: string, shape: number[], end: number, bits: number][] = [
    ['F4', [1, 3], 2, 12],
    ['F4', [3], 1, 12],
    ['F6_E2M3', [1], 1, 6],
    ['F6_E2M3', [1], 0, 6],
    ['F6_E3M2', [2], 2, 12],
  ];
  for (const [dtype, shape, end, bits] of cases) {
    const p = put(craftFile(JSON.stringify({ w: { dtype, shape, data_offsets: [0, end] } }), new Uint8Array(end)));
    await bothReject(p, new RegExp(`tensor "w": shape \\[${shape.join(',')}\\] x ${dtype} is ${bits} bits, not a whole number of bytes`));
  }
  // A size mismatch is still reported as one.
  const p = put(craftFile('{"w":{"dtype":"F4","shape":[4],"data_offsets":[0,1]}}', new Uint8Array(1)));
  await bothReject(p, /tensor "w": shape \[4\] x F4 is 2 bytes but data_offsets span 1/);
});

test('dtypes the reference does not define are still rejected, naming the dtype', async () => {
  for (const dtype of ['C128', 'F8_E3M4', 'F4_E2M1', 'f32', 'F8_E8M0FNU', 'U4', '']) {
    const p = put(craftFile(JSON.stringify({ w: { dtype, shape: [1], data_offsets: [0, 1] } }), new Uint8Array(1)));
    await bothReject(p, new RegExp(`tensor "w": unknown dtype ${JSON.stringify(dtype)}`));
  }
});

test('the raw-byte dtypes are read only: writing one is an argument error', async () => {
  const p = path.join(dir, `w-${n++}`);
  for (const [, js] of RAW_DTYPES) {
    await assert.rejects(
      writeCheckpoint(p, { x: { dtype: js as never, shape: [8], data: new Uint8Array(8) } }),
      (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS' && /unknown dtype/.test(err.message),
    );
  }
  // The addon's own table refuses them too (the TypeScript check above comes first): where the addon exports
  // its writable dtypes, they are not among them; where it takes {name, dtype, ...} objects, it rejects them.
  const exported = (native as unknown as { dtypes?: { name: string }[] }).dtypes;
  if (exported) {
    const names = new Set(exported.map((d) => d.name));
    for (const [, js] of RAW_DTYPES) assert.equal(names.has(js), false, js);
  } else {
    for (const [, js] of RAW_DTYPES) {
      await assert.rejects(
        native.write(p, [{ name: 'x', dtype: js, shape: [8], data: new Uint8Array(8) }] as never, {}, {}),
        (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS' && /tensor "x": unknown dtype/.test(err.message),
      );
    }
  }
  assert.equal(fs.existsSync(p), false);
});

test("the writer refuses a header above the readers' cap instead of writing a file no reader opens", async () => {
  const dir = tempDir();
  const file = path.join(dir, 'big.safetensors');
  await assert.rejects(
    writeCheckpoint(file, { w: { dtype: 'float32', shape: [1], data: new Float32Array(1) } }, { metadata: { big: 'x'.repeat(100_000_000) } }),
    (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_ARGS' && /100000000-byte cap/.test(e.message),
  );
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing was left behind');
});
