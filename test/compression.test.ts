import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as lz4 from 'lz4-napi';
import { Checkpointer, CheckpointError, readCheckpoint, TensorEntry, writeCheckpoint } from '../src';
import { native } from '../src/binding/native';
import { TensorList } from '../src/format/tensor-list';
import { unpackRead } from '../src/format/file';

const packed = (list: (TensorEntry & { name: string })[]) => TensorList.fromRecord(Object.fromEntries(list.map(({ name, ...t }) => [name, t]))).pack();
import { assertSameTensors, bytesOf, parseFraming, pattern, tempDir } from './helpers';

const CHUNK = 4 << 20;

/** Values that repeat, so lz4 finds matches, in every dtype family. */
function compressible(): Record<string, TensorEntry> {
  const f32 = new Float32Array(300_000);
  for (let i = 0; i < f32.length; i++) f32[i] = (i % 97) / 8;
  return {
    f32,
    f64: new Float64Array(5000).map((_, i) => i % 13),
    i64: new BigInt64Array(4000).map((_, i) => BigInt(i % 5) - 2n),
    u16: new Uint16Array(9000).map((_, i) => i % 7),
    bool: new Uint8Array(4096).map((_, i) => (i % 3 === 0 ? 1 : 0)),
  } as unknown as Record<string, TensorEntry>;
}

function entries(): Record<string, TensorEntry> {
  const c = compressible() as unknown as Record<string, ArrayBufferView>;
  return {
    'layer/f32': { dtype: 'float32', shape: [300, 1000], data: c.f32 as Float32Array },
    'layer/f64': { dtype: 'float64', shape: [5000], data: c.f64 as Float64Array },
    i64: { dtype: 'int64', shape: [40, 100], data: c.i64 as BigInt64Array },
    bf16: { dtype: 'bfloat16', shape: [9000], data: c.u16 as Uint16Array },
    mask: { dtype: 'bool', shape: [4096], data: c.bool as Uint8Array },
    random: { dtype: 'float32', shape: [4096], data: pattern(4096, 7) },
    empty: { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) },
    scalar: { dtype: 'int32', shape: [], data: new Int32Array([-5]) },
  };
}

test('lz4: byte-exact round trip of every dtype family; data that does not shrink is stored raw and counted', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'c.safetensors');
  const tensors = entries();
  const r = await writeCheckpoint(file, tensors, { compression: 'lz4', metadata: { note: 'kept' } });
  assert.ok(r.compression);
  assert.equal(r.compression.codec, 'lz4');
  assert.equal(r.compression.compressedTensors, 5, 'the five repeating tensors');
  assert.equal(r.compression.rawTensors, 3, 'random floats, the empty tensor and the 4-byte scalar stay raw');
  const raw = Object.values(tensors).reduce((n, t) => n + t.data.byteLength, 0);
  assert.equal(r.compression.rawBytes, raw);
  assert.ok(r.compression.storedBytes < raw / 3, `stored ${r.compression.storedBytes} of ${raw}`);
  assert.equal(fs.statSync(file).size, r.bytes);

  const back = await readCheckpoint(file);
  assert.equal(back.verified, true);
  assert.equal(back.compression, 'lz4');
  assert.deepEqual(back.metadata, { note: 'kept' }, 'the compression entry is not user metadata');
  assertSameTensors(back.tensors, tensors);
});

test('lz4: the file is plain safetensors of uint8 chunks, each an lz4-napi block with its u32 length prefix', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'big.safetensors');
  const big = new Float32Array((CHUNK * 2 + 4096) / 4);
  for (let i = 0; i < big.length; i++) big[i] = Math.floor(i / 1000);
  await writeCheckpoint(file, { w: { dtype: 'float32', shape: [big.length], data: big } }, { compression: 'lz4' });

  const { header } = parseFraming(fs.readFileSync(file));
  const meta = header.__metadata__ as Record<string, string>;
  const map = JSON.parse(meta['ckptio.compression']!) as { codec: string; chunkBytes: number; tensors: Record<string, unknown> };
  assert.equal(map.codec, 'lz4');
  assert.equal(map.chunkBytes, CHUNK);
  assert.deepEqual(map.tensors, { w: { dtype: 'float32', shape: [big.length], chunks: 3 } });
  assert.deepEqual(
    Object.keys(header)
      .filter((k) => k !== '__metadata__')
      .sort(),
    ['w@lz4/0', 'w@lz4/1', 'w@lz4/2'],
  );

  const stored = unpackRead((await native.read(file, { verify: true })).tensors);
  const pieces: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    const chunk = stored[`w@lz4/${i}`]!;
    assert.equal(chunk.dtype, 'uint8');
    const bytes = bytesOf(chunk.data);
    assert.equal(bytes.readUInt32LE(0), i < 2 ? CHUNK : 4096);
    pieces.push(lz4.uncompressSync(bytes));
  }
  assert.ok(Buffer.concat(pieces).equals(bytesOf(big)), 'the chunks decode independently to the original bytes');
  const back = await readCheckpoint(file);
  assert.ok(bytesOf(back.tensors.w!.data).equals(bytesOf(big)));
});

test('lz4 with copy: the caller may overwrite its buffers as soon as the call returns, compressed or stored raw', async () => {
  const dir = tempDir();
  const data = new Float32Array(CHUNK / 4 + 100).fill(3);
  const noise = pattern(50_000, 3); // does not compress: stored raw from the copy
  const expected = [data.slice(), noise.slice()];
  const p = writeCheckpoint(
    path.join(dir, 'c.safetensors'),
    {
      w: { dtype: 'float32', shape: [data.length], data },
      noise: { dtype: 'float32', shape: [noise.length], data: noise },
    },
    { compression: 'lz4', copy: true },
  );
  data.fill(-1);
  noise.fill(-1);
  const r = await p;
  assert.deepEqual([r.compression?.compressedTensors, r.compression?.rawTensors], [1, 1]);
  const back = await readCheckpoint(path.join(dir, 'c.safetensors'));
  assert.ok(bytesOf(back.tensors.w!.data).equals(bytesOf(expected[0]!)));
  assert.ok(bytesOf(back.tensors.noise!.data).equals(bytesOf(expected[1]!)));
  assert.equal(back.tensors.noise!.data.constructor, Float32Array);
});

test('lz4: bad arguments are ECKPT_ARGS before anything is written', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'c.safetensors');
  const one = { dtype: 'float32' as const, shape: [1], data: new Float32Array(1) };
  const cases: [string, Promise<unknown>][] = [
    ['reserved tensor name', writeCheckpoint(file, { 'a@lz4/0': one }, { compression: 'lz4' })],
    ['reserved metadata key', writeCheckpoint(file, { a: one }, { compression: 'lz4', metadata: { 'ckptio.compression': '{}' } })],
    ['unknown codec', writeCheckpoint(file, { a: one }, { compression: 'zstd' as 'lz4' })],
    ['shape mismatch', writeCheckpoint(file, { a: { dtype: 'float32', shape: [2], data: new Float32Array(1) } }, { compression: 'lz4' })],
    ['copy not boolean', writeCheckpoint(file, { a: one }, { compression: 'lz4', copy: 'yes' as unknown as boolean })],
  ];
  for (const [what, p] of cases) {
    await assert.rejects(p, (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_ARGS', what);
  }
  assert.deepEqual(fs.readdirSync(dir), []);
  assert.throws(
    () => new Checkpointer({ dir, compression: 'gzip' as 'lz4' }),
    (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_ARGS',
  );
});

test('lz4: a malformed compression map or chunk is ECKPT_FORMAT, even when every checksum is right', async () => {
  const dir = tempDir();
  const good = lz4.compressSync(Buffer.alloc(400, 1));
  const chunk = (bytes: Buffer) => ({ name: 'w@lz4/0', dtype: 'uint8' as const, shape: [bytes.length], data: new Uint8Array(bytes) });
  const map = (tensors: object, extra: object = {}) => JSON.stringify({ codec: 'lz4', chunkBytes: CHUNK, tensors, ...extra });
  const w = { dtype: 'float32', shape: [100], chunks: 1 };
  const badBlock = Buffer.concat([good.subarray(0, 4), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])]);
  const wrongPrefix = Buffer.from(good);
  wrongPrefix.writeUInt32LE(399, 0);
  const cases: [string, string, ReturnType<typeof chunk>[]][] = [
    ['not JSON', '{', [chunk(good)]],
    ['unknown codec', JSON.stringify({ codec: 'zstd', chunkBytes: CHUNK, tensors: {} }), [chunk(good)]],
    ['other chunk size', map({ w }, { chunkBytes: 1024 }), [chunk(good)]],
    ['unknown dtype', map({ w: { ...w, dtype: 'complex64' } }), [chunk(good)]],
    ['chunk count does not fit the shape', map({ w: { ...w, chunks: 2 } }), [chunk(good)]],
    ['missing chunk', map({ v: w }), [chunk(good)]],
    ['orphan chunk', map({}), [chunk(good)]],
    ['length prefix disagrees with the shape', map({ w }), [chunk(wrongPrefix)]],
    ['not an lz4 block', map({ w }), [chunk(badBlock)]],
    ['stored raw and compressed', map({ w }), [chunk(good), { name: 'w', dtype: 'uint8', shape: [1], data: new Uint8Array(1) }]],
  ];
  for (const [i, [what, value, tensors]] of cases.entries()) {
    const file = path.join(dir, `bad-${i}.safetensors`);
    await native.write(file, packed(tensors), { 'ckptio.compression': value }, {});
    await assert.rejects(readCheckpoint(file), (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_FORMAT' && e.path === file, what);
  }
  const ok = path.join(dir, 'ok.safetensors');
  await native.write(ok, packed([chunk(good)]), { 'ckptio.compression': map({ w }) }, {});
  const back = await readCheckpoint(ok);
  assert.deepEqual(Array.from(new Uint8Array(back.tensors.w!.data.buffer)), new Array(400).fill(1), 'the well-formed control decodes');
});

test('Checkpointer with compression: saves report what they saved, and load returns the original tensors', async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, compression: 'lz4', onWarning: () => {} });
  const tensors = entries();
  const h = await ckpt.save(5, { tensors, state: { epoch: 1 } });
  const info = await h.durable;
  assert.ok(info?.compression && info.compression.storedBytes < info.compression.rawBytes);
  await ckpt.close();
  const loaded = await new Checkpointer({ dir, onWarning: () => {} }).loadLatest();
  assert.ok(loaded);
  assert.equal(loaded.step, 5);
  assert.deepEqual(loaded.state, { epoch: 1 });
  assertSameTensors(loaded.tensors, tensors);
});

test('lz4-napi is loaded on first use: where its binary does not load, ckptio still saves uncompressed, and lz4 is ECKPT_MISSING_PACKAGE naming the platform', () => {
  // A child where requiring lz4-napi fails as it does on a platform without its per-platform binary package.
  const script = `
const Module = require('node:module');
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === 'lz4-napi') throw new Error('Cannot find module @antoniomuso/lz4-napi-test-platform');
  return load.call(this, request, ...rest);
};
const fs = require('node:fs');
const path = require('node:path');
const { writeCheckpoint, readCheckpoint } = require(${JSON.stringify(path.resolve(__dirname, '..', 'src'))});
(async () => {
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'ckptio-nolz4-'));
  const t = { w: { dtype: 'float32', shape: [4096], data: new Float32Array(4096) } };
  await writeCheckpoint(path.join(dir, 'plain.safetensors'), t);
  const back = await readCheckpoint(path.join(dir, 'plain.safetensors'));
  let error;
  try { await writeCheckpoint(path.join(dir, 'lz4.safetensors'), t, { compression: 'lz4' }); } catch (e) { error = { code: e.code, message: e.message, name: e.constructor.name }; }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ plain: back.tensors.w.data.length, error }));
})().catch((e) => { console.error(e); process.exit(1); });
`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as { plain: number; error?: { code: string; message: string; name: string } };
  assert.equal(out.plain, 4096, 'an uncompressed save and load work without lz4-napi');
  assert.equal(out.error?.name, 'CheckpointError');
  assert.equal(out.error?.code, 'ECKPT_MISSING_PACKAGE');
  assert.match(out.error!.message, new RegExp(`lz4-napi's binary for ${process.platform}-${process.arch}.*lz4-napi-test-platform`));
});
