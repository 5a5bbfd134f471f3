/** The TypeScript codec (src/format/portable-codec.ts, used where the native addon is not loaded) against the native
 * one: the same dtype table, the golden files byte for byte, and the same verdict (accepted, or the same error code
 * and message) on the fuzz corpus and on thousands of byte flips, truncations and header edits of valid files. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { encodeCheckpoint } from '../src/format/codec';
import { native } from '../src/binding/native';
import { READ_DTYPES, WRITE_DTYPES } from '../src/format/dtype-table';
import { contentIdOf, decodeBytes, joinPlan, planFile, readResult } from '../src/format/portable-codec';
import { createXxh3 } from '../src/format/xxh3';
import { TensorList } from '../src/format/tensor-list';
import { goldenCases } from './golden-cases';

const ROOT = path.resolve(__dirname, '..', '..');

test("the TypeScript dtype table is the addon's, row for row (codes, names, sizes)", () => {
  assert.deepEqual(
    WRITE_DTYPES.map((r) => ({ name: r.name, bytes: r.bytes })),
    native.dtypes,
  );
  assert.deepEqual(
    READ_DTYPES.map((r) => r.name),
    native.readDtypes,
  );
});

test("XXH3 from hash-wasm equals the addon's on every length class (0, short, mid, long, streaming sizes)", async () => {
  const xxh3 = await createXxh3();
  for (const n of [0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 1025, 65_536, 1 << 20]) {
    const data = new Uint8Array(n).map((_, i) => (i * 131 + 7) & 0xff);
    assert.equal(xxh3(data), native.xxh3(data), `length ${n}`);
  }
});

for (const c of goldenCases) {
  test(`golden ${c.name}: the TypeScript encoder gives the golden bytes and the same content id as the native one`, async () => {
    const xxh3 = await createXxh3();
    const golden = fs.readFileSync(path.join(ROOT, 'test', 'golden', `${c.name}.safetensors`));
    const plan = planFile(TensorList.from(c.tensors).pack(), c.metadata, c.checksum, xxh3);
    assert.ok(Buffer.from(joinPlan(plan)).equals(golden), 'the TypeScript encoder differs from the golden file');
    const nativeEncoded = await encodeCheckpoint(c.tensors, { metadata: c.metadata, checksum: c.checksum });
    assert.equal(plan.contentId, nativeEncoded.contentId);
  });
}

/** The TypeScript decode's verdict in the native decode's terms. */
function portableDecode(
  bytes: Uint8Array,
  verify: boolean,
  xxh3: (d: Uint8Array) => string,
): { ok: true; metadata: Record<string, string>; names: string; contentId?: string } | { ok: false; code: string; message: string } {
  try {
    const h = decodeBytes(bytes, verify, xxh3);
    const r = readResult(h, bytes);
    const id = contentIdOf(h, xxh3);
    return { ok: true, metadata: r.metadata, names: r.tensors.names, ...(id !== undefined ? { contentId: id } : {}) };
  } catch (e) {
    const err = e as { code: string; message: string };
    return { ok: false, code: err.code, message: err.message };
  }
}

async function nativeDecode(bytes: Uint8Array, verify: boolean): Promise<ReturnType<typeof portableDecode>> {
  try {
    const r = await native.decode(bytes, { verify });
    return { ok: true, metadata: { ...r.metadata }, names: r.tensors.names, ...(r.contentId !== undefined ? { contentId: r.contentId } : {}) };
  } catch (e) {
    const err = e as { code: string; message: string };
    return { ok: false, code: err.code, message: err.message };
  }
}

test('decode: the TypeScript reader gives the native verdict (same code and message) on the fuzz corpus and on mutations of valid files', async () => {
  const xxh3 = await createXxh3();
  const inputs: { what: string; bytes: Uint8Array }[] = [];
  const corpus = path.join(ROOT, 'test', 'fuzz', 'corpus');
  for (const f of fs.readdirSync(corpus)) inputs.push({ what: f, bytes: new Uint8Array(fs.readFileSync(path.join(corpus, f))) });
  // Deterministic mutations: every golden file's byte flips (each header byte, a spread of data bytes), truncations,
  // and header texts edited into the shapes the rules name (duplicates, negative and fractional numbers, escapes).
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (const name of ['mixed', 'no-checksum', 'empty']) {
    const golden = new Uint8Array(fs.readFileSync(path.join(ROOT, 'test', 'golden', `${name}.safetensors`)));
    inputs.push({ what: `${name} as is`, bytes: golden });
    const headerLen = Number(new DataView(golden.buffer).getBigUint64(0, true));
    for (let at = 0; at < Math.min(golden.length, 8 + headerLen); at++) {
      const b = golden.slice();
      b[at] = b[at]! ^ (1 << Math.floor(rnd() * 8));
      inputs.push({ what: `${name} flip ${at}`, bytes: b });
    }
    for (let at = 8 + headerLen; at < golden.length; at += 3) {
      const b = golden.slice();
      b[at] = b[at]! ^ 0x40;
      inputs.push({ what: `${name} data flip ${at}`, bytes: b });
    }
    for (let n = 0; n < golden.length; n += 5) inputs.push({ what: `${name} cut ${n}`, bytes: golden.slice(0, n) });
    const text = Buffer.from(golden.subarray(8, 8 + headerLen)).toString('latin1');
    const edits: [RegExp, string][] = [
      [/"shape":\[2,3\]/, '"shape":[2,-3]'],
      [/"shape":\[2,3\]/, '"shape":[2,3.0]'],
      [/"shape":\[2,3\]/, '"shape":[02,3]'],
      [/"shape":\[2,3\]/, '"shape":[18446744073709551616,3]'],
      [/"shape":\[2,3\]/, '"shape":[1234567890123456789012345678901234567890,3]'],
      [/"shape":\[2,3\]/, '"shape":[4294967296,4294967296,4294967296,0]'],
      [/"shape":\[2,3\]/, '"shape":[9007199254740993,0]'],
      [/"dtype":"F32"/, '"dtype":"f32"'],
      [/"dtype":"F32"/, '"dtype":true'],
      [/"dtype":"F32"/, '"dtype":"F32","dtype":"F32"'],
      [/\{"__metadata__":/, '{"__metadata__":{},"__metadata__":'],
      [/"b":/, '"\\ud800":'],
      [/"b":/, '"\\udc00":'],
      [/"b":/, '"\\x":'],
      [/"b":"/, '"b":"\\u00e9'],
      [/"a":/, '"b":'],
      [/"data_offsets":\[/, '"extra":1,"data_offsets":['],
      [/"data_offsets":\[(\d+),/, '"data_offsets":[$1 ,'],
    ];
    for (const [re, to] of edits) {
      if (!re.test(text)) continue;
      const edited = text.replace(re, to);
      const json = Buffer.from(edited + ' '.repeat((8 - (edited.length % 8)) % 8), 'latin1');
      const head = Buffer.alloc(8);
      head.writeBigUInt64LE(BigInt(json.length));
      inputs.push({ what: `${name} edit ${to}`, bytes: new Uint8Array(Buffer.concat([head, json, golden.subarray(8 + headerLen)])) });
    }
  }
  let accepted = 0;
  let rejected = 0;
  for (const { what, bytes } of inputs) {
    for (const verify of [true, false]) {
      const expected = await nativeDecode(bytes, verify);
      const got = portableDecode(bytes, verify, xxh3);
      assert.deepEqual(got, expected, `${what} (verify: ${verify})`);
      if (expected.ok) accepted++;
      else rejected++;
    }
  }
  assert.ok(inputs.length > 1000 && accepted > 10 && rejected > 1000, `${inputs.length} inputs, ${accepted} accepted, ${rejected} rejected`);
});
