import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { readCheckpoint, writeCheckpoint, TensorEntry } from '../src';
import { writerKind } from '../src/binding/native';
import { assertSameTensors, bytesOf, parseFraming, pattern, tempDir } from './helpers';

/** Under the portable writer (CKPTIO_WRITER=portable), direct I/O is refused and reads copy the file: those tests
 * are the native writer's. */
const nativeOnly = (why: string) => (writerKind === 'native' ? false : `native writer only: ${why}`);

function allDtypes(): Record<string, TensorEntry> {
  return {
    f64: { dtype: 'float64', shape: [3], data: new Float64Array([1.5, -2.25, Math.PI]) },
    f32: { dtype: 'float32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    f16: { dtype: 'float16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
    bf16: { dtype: 'bfloat16', shape: [3], data: new Uint16Array([0x3f80, 0x4000, 0x0001]) },
    i64: { dtype: 'int64', shape: [2], data: new BigInt64Array([-(2n ** 62n), 7n]) },
    i32: { dtype: 'int32', shape: [1, 3], data: new Int32Array([-1, 0, 2 ** 31 - 1]) },
    i16: { dtype: 'int16', shape: [2], data: new Int16Array([-300, 300]) },
    i8: { dtype: 'int8', shape: [2], data: new Int8Array([-128, 127]) },
    u64: { dtype: 'uint64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
    u32: { dtype: 'uint32', shape: [1], data: new Uint32Array([4e9]) },
    u16: { dtype: 'uint16', shape: [1], data: new Uint16Array([65535]) },
    u8: { dtype: 'uint8', shape: [3], data: new Uint8Array([0, 128, 255]) },
    bool: { dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) },
    f8: { dtype: 'float8_e4m3', shape: [1], data: new Uint8Array([0x38]) },
    scalar: { dtype: 'float32', shape: [], data: new Float32Array([42]) },
    empty: { dtype: 'float32', shape: [0, 5], data: new Float32Array(0) },
    empty_i8: { dtype: 'int8', shape: [0], data: new Int8Array(0) },
  };
}

for (const direct of ['on', 'off'] as const) {
  test(`round trip of every dtype, scalars and empty tensors (direct ${direct})`, { skip: direct === 'on' && nativeOnly('O_DIRECT') }, async () => {
    const dir = tempDir();
    const file = path.join(dir, 'all.safetensors');
    const tensors = allDtypes();
    const res = await writeCheckpoint(file, tensors, { metadata: { note: 'héllo "quoted"\n', step: '7' }, direct });
    assert.equal(res.direct, direct === 'on');
    assert.equal(res.bytes, fs.statSync(file).size);
    const back = await readCheckpoint(file);
    assert.equal(back.verified, true);
    assertSameTensors(back.tensors, tensors);
    assert.deepEqual(back.metadata, { note: 'héllo "quoted"\n', step: '7' });
  });
}

test('the file is byte-for-byte the documented safetensors layout', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'layout.safetensors');
  const tensors = allDtypes();
  await writeCheckpoint(file, tensors, { metadata: { k: 'v' } });
  const buf = fs.readFileSync(file);
  const { headerLen, header, headerText, data } = parseFraming(buf);
  assert.equal(headerLen % 8, 0, 'header padded to a multiple of 8');
  const padding = headerText.length - headerText.trimEnd().length;
  assert.ok(headerText.trimEnd().endsWith('}') && headerText.startsWith('{'), 'header is one JSON object');
  assert.ok(padding < 8 && /^ *$/.test(headerText.slice(headerText.length - padding)), 'padded with fewer than 8 spaces');
  const meta = header.__metadata__ as Record<string, string>;
  assert.equal(meta['ckptio.format'], '1');
  assert.equal(meta['ckptio.checksum'], 'xxh3-64');
  assert.equal(meta.k, 'v');
  for (const v of Object.values(meta)) assert.equal(typeof v, 'string');
  // Tensors in data order: dtype size descending, then name; contiguous, no holes, ending at EOF.
  const sizes: Record<string, number> = { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1 };
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__') as [
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] },
  ][];
  const order = [...entries].sort((a, b) => sizes[b[1].dtype]! - sizes[a[1].dtype]! || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  assert.deepEqual(
    entries.map((e) => e[0]),
    order.map((e) => e[0]),
    'header lists tensors in data order',
  );
  let offset = 0;
  const digests = meta['ckptio.tensor_xxh3']!.split(',');
  assert.equal(digests.length, entries.length);
  const { native } = await import('../src/binding/native');
  entries.forEach(([name, e], i) => {
    assert.equal(e.data_offsets[0], offset, `${name} starts where the previous ended`);
    const n = e.shape.reduce((a, b) => a * b, 1) * sizes[e.dtype]!;
    assert.equal(e.data_offsets[1] - e.data_offsets[0], n);
    const slice = data.subarray(e.data_offsets[0], e.data_offsets[1]);
    assert.ok(slice.equals(bytesOf(tensors[name]!.data)), `data of ${name}`);
    assert.equal(digests[i], native.xxh3(slice), `digest of ${name}`);
    offset = e.data_offsets[1];
  });
  assert.equal(offset, data.length, 'data region ends at end of file');
});

test('identical input gives an identical file (deterministic bytes)', async () => {
  const dir = tempDir();
  const t = { a: { dtype: 'float32' as const, shape: [100], data: pattern(100, 1) }, b: { dtype: 'int32' as const, shape: [1], data: new Int32Array([5]) } };
  await writeCheckpoint(path.join(dir, '1'), t, { metadata: { x: 'y' } });
  await writeCheckpoint(path.join(dir, '2'), { b: t.b, a: t.a }, { metadata: { x: 'y' }, direct: 'off' });
  assert.ok(fs.readFileSync(path.join(dir, '1')).equals(fs.readFileSync(path.join(dir, '2'))));
});

test('1000+ tensors round trip', async () => {
  const dir = tempDir();
  const tensors: Record<string, TensorEntry> = {};
  for (let i = 0; i < 1200; i++) tensors[`layer.${i}.weight`] = { dtype: 'float32', shape: [i % 7, 3], data: pattern((i % 7) * 3, i + 1) };
  await writeCheckpoint(path.join(dir, 'many'), tensors);
  assertSameTensors((await readCheckpoint(path.join(dir, 'many'))).tensors, tensors);
});

test('copy: true snapshots the buffers before the call returns', async () => {
  const dir = tempDir();
  const data = pattern(1 << 20, 3);
  const original = Buffer.from(bytesOf(data));
  const p = writeCheckpoint(path.join(dir, 'c'), { w: { dtype: 'float32', shape: [data.length], data } }, { copy: true });
  data.fill(0); // allowed with copy: true
  const res = await p;
  assert.equal(res.copied, true);
  const back = await readCheckpoint(path.join(dir, 'c'));
  assert.ok(bytesOf(back.tensors.w!.data).equals(original));
});

test('views returned by read are copy-on-write: mutating them leaves the file alone', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'cow');
  await writeCheckpoint(file, { w: { dtype: 'float32', shape: [4], data: new Float32Array([1, 2, 3, 4]) } });
  const before = fs.readFileSync(file);
  const back = await readCheckpoint(file);
  (back.tensors.w!.data as Float32Array)[0] = 99;
  assert.ok(fs.readFileSync(file).equals(before));
  assert.equal((await readCheckpoint(file)).verified, true);
});

test(
  'a verified read shares the page cache: no page of the mapping is copied until a view is written',
  { skip: nativeOnly('reads map the file') },
  async () => {
    const dir = tempDir();
    const file = path.join(dir, 'shared');
    const n = 4 << 20; // 16 MiB of float32
    const a = new Float32Array(n);
    for (let i = 0; i < n; i += 1021) a[i] = i;
    await writeCheckpoint(file, { w: { dtype: 'float32', shape: [n], data: a } });
    // Private (copy-on-write) pages of every mapping of this file, from the kernel's page-table walk.
    const copiedKiB = (): number => {
      let total = 0;
      let inFile = false;
      for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
        if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inFile = line.endsWith(` ${file}`);
        else if (inFile && line.startsWith('Anonymous:')) total += Number(/(\d+)/.exec(line)![1]);
      }
      return total;
    };
    const back = await readCheckpoint(file);
    assert.equal(back.verified, true);
    assert.equal(copiedKiB(), 0, 'populating and verifying copied pages of the file');
    (back.tensors.w!.data as Float32Array)[1] = 5; // still writable: one page is copied, the file is untouched
    assert.equal((back.tensors.w!.data as Float32Array)[1], 5);
    assert.ok(copiedKiB() > 0 && copiedKiB() <= 8, `one written page is copied, not ${copiedKiB()} KiB`);
  },
);

test('a checkpoint larger than 1 GiB round trips', { skip: process.env.CKPTIO_SKIP_BIG === '1' ? 'CKPTIO_SKIP_BIG=1' : false }, async () => {
  const dir = tempDir();
  const file = path.join(dir, 'big');
  const n = (1 << 28) + 1000; // 4 bytes each: 1 GiB + 4000 bytes
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 4099) a[i] = i;
  a[n - 1] = -1;
  const res = await writeCheckpoint(file, {
    big: { dtype: 'float32', shape: [n], data: a },
    tail: { dtype: 'uint8', shape: [3], data: new Uint8Array([1, 2, 3]) },
  });
  assert.ok(res.bytes > 2 ** 30);
  const back = await readCheckpoint(file);
  assert.ok(bytesOf(back.tensors.big!.data).equals(bytesOf(a)));
  assert.deepEqual([...(back.tensors.tail!.data as Uint8Array)], [1, 2, 3]);
  fs.rmSync(dir, { recursive: true });
});

test('checksum: false writes plain safetensors (no ckptio keys), loadable only with verify: false', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'plain.safetensors');
  const data = new Float32Array([1, 2, 3, 4]);
  await writeCheckpoint(file, { a: { dtype: 'float32', shape: [2, 2], data } }, { checksum: false, metadata: { note: 'x' } });
  const { header } = parseFraming(fs.readFileSync(file));
  assert.deepEqual(header.__metadata__, { note: 'x' });
  await assert.rejects(readCheckpoint(file), { code: 'ECKPT_CHECKSUM' });
  const r = await readCheckpoint(file, { verify: false });
  assert.equal(r.verified, false);
  assert.deepEqual([...(r.tensors.a!.data as Float32Array)], [1, 2, 3, 4]);
  await assert.rejects(writeCheckpoint(file, {}, { checksum: 'no' as unknown as boolean }), { code: 'ECKPT_ARGS' });
});

test('data backed by a SharedArrayBuffer, or viewed at an offset through a DataView, round-trips byte for byte', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'shared.safetensors');
  const shared = new Float32Array(new SharedArrayBuffer(4 * 6));
  shared.set([1, 2, 3, 4, 5, 6]);
  const backing = new Uint8Array([9, 9, 9, 1, 2, 3, 4, 9]);
  const view = new DataView(backing.buffer, 3, 4);
  await writeCheckpoint(file, { s: { dtype: 'float32', shape: [2, 3], data: shared }, v: { dtype: 'uint8', shape: [4], data: view as unknown as Uint8Array } });
  const r = await readCheckpoint(file);
  assert.deepEqual([...(r.tensors.s!.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...bytesOf(r.tensors.v!.data)], [1, 2, 3, 4]);
});
