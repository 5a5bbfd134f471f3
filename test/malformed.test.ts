import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError, readCheckpoint, writeCheckpoint } from '../src';
import { craftFile, parseFraming, tempDir } from './helpers';

const dir = tempDir();
let n = 0;

async function rejects(file: Buffer, code: string, message: RegExp): Promise<void> {
  const p = path.join(dir, `bad-${n++}`);
  fs.writeFileSync(p, file);
  await assert.rejects(readCheckpoint(p), (err: unknown) => {
    assert.ok(err instanceof CheckpointError, `not a CheckpointError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    assert.equal(err.path, p);
    return true;
  });
}

async function validFile(): Promise<Buffer> {
  const p = path.join(dir, `valid-${n++}`);
  await writeCheckpoint(
    p,
    {
      alpha: { dtype: 'float32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      beta: { dtype: 'int64', shape: [2], data: new BigInt64Array([7n, 8n]) },
      gamma: { dtype: 'uint8', shape: [5], data: new Uint8Array([1, 2, 3, 4, 5]) },
    },
    { metadata: { note: 'x' } },
  );
  return fs.readFileSync(p);
}

const f32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

test('truncated anywhere', async () => {
  const good = await validFile();
  const { headerLen } = parseFraming(good);
  for (const at of [0, 1, 7, 8, 9, 8 + (headerLen >> 1), 8 + headerLen - 1, 8 + headerLen, 8 + headerLen + 5, good.length - 1]) {
    await rejects(good.subarray(0, at), 'ECKPT_FORMAT', /too short|runs past|out of range|not valid JSON|truncated|cover/);
  }
});

test('header length beyond the file, and beyond the cap', async () => {
  const good = await validFile();
  const bad = Buffer.from(good);
  bad.writeBigUInt64LE(BigInt(good.length));
  await rejects(bad, 'ECKPT_FORMAT', /runs past the end of the file/);
  bad.writeBigUInt64LE(2n ** 63n);
  await rejects(bad, 'ECKPT_FORMAT', /exceeds the .*cap/);
});

test('header not JSON', async () => {
  await rejects(craftFile('this is not json', new Uint8Array()), 'ECKPT_FORMAT', /not valid JSON/);
  await rejects(craftFile('[1,2]   ', new Uint8Array()), 'ECKPT_FORMAT', /not a JSON object/);
  await rejects(craftFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} x', new Uint8Array(4)), 'ECKPT_FORMAT', /not valid JSON: unexpected bytes/);
  await rejects(craftFile('{"a":' + '['.repeat(5000), new Uint8Array()), 'ECKPT_FORMAT', /nested too deeply/);
});

test('header not UTF-8', async () => {
  const json = Buffer.from('{"a\xff":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 'latin1');
  await rejects(craftFile(json, new Uint8Array(4)), 'ECKPT_FORMAT', /not valid UTF-8/);
  const overlong = Buffer.from('{"a\xc0\xaf":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 'latin1');
  await rejects(craftFile(overlong, new Uint8Array(4)), 'ECKPT_FORMAT', /not valid UTF-8/);
  await rejects(craftFile('{"a\\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), 'ECKPT_FORMAT', /surrogate/);
});

test('unknown dtype', async () => {
  await rejects(craftFile({ a: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), 'ECKPT_FORMAT', /tensor "a": unknown dtype "F33"/);
});

test('shape and byte size disagree', async () => {
  await rejects(
    craftFile({ w: f32([2, 3], 0, 20) }, new Uint8Array(20)),
    'ECKPT_FORMAT',
    /tensor "w": shape \[2,3\] x F32 is 24 bytes but data_offsets span 20/,
  );
  await rejects(craftFile({ w: f32([2 ** 40, 2 ** 40], 0, 4) }, new Uint8Array(4)), 'ECKPT_FORMAT', /overflows 64 bits/);
});

test('overlapping offsets', async () => {
  await rejects(craftFile({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, new Uint8Array(12)), 'ECKPT_FORMAT', /tensor "b": data_offsets overlap/);
});

test('offsets out of range', async () => {
  await rejects(craftFile({ a: f32([2], 0, 8), b: f32([2], 8, 16) }, new Uint8Array(12)), 'ECKPT_FORMAT', /tensor "b": data_offsets \[8,16\] out of range/);
  await rejects(craftFile({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, new Uint8Array(8)), 'ECKPT_FORMAT', /begin > end/);
});

test('holes in the data region, and trailing bytes', async () => {
  await rejects(craftFile({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, new Uint8Array(12)), 'ECKPT_FORMAT', /tensor "b": hole of 4 bytes/);
  await rejects(craftFile({ a: f32([1], 0, 4) }, new Uint8Array(9)), 'ECKPT_FORMAT', /trailing bytes/);
});

test('duplicate names', async () => {
  const text = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
  await rejects(craftFile(text, new Uint8Array(8)), 'ECKPT_FORMAT', /duplicate tensor name "a"/);
  const meta = '{"__metadata__":{"k":"1","k":"2"}}';
  await rejects(craftFile(meta, new Uint8Array()), 'ECKPT_FORMAT', /duplicate metadata key "k"/);
});

test('bit flip in the data is a checksum error naming the tensor', async () => {
  const good = await validFile();
  const { headerLen, header } = parseFraming(good);
  const beta = header.beta as { data_offsets: [number, number] };
  const bad = Buffer.from(good);
  bad[8 + headerLen + beta.data_offsets[0] + 3]! ^= 0x10;
  await rejects(bad, 'ECKPT_CHECKSUM', /checksum mismatch in tensor "beta"/);
});

test('bit flip in the header that keeps it valid JSON is a checksum error', async () => {
  const good = await validFile();
  const bad = Buffer.from(good);
  const at = bad.indexOf('"gamma"') + 1; // 'g' -> 'f': still a valid name
  bad[at]! ^= 0x01;
  await rejects(bad, 'ECKPT_CHECKSUM', /header checksum mismatch/);
  const bad2 = Buffer.from(good);
  bad2[bad2.indexOf('"note":"x"') + 8]! ^= 0x01; // metadata value
  await rejects(bad2, 'ECKPT_CHECKSUM', /header checksum mismatch/);
});

test('every single-bit flip anywhere in a file is rejected, never accepted', async () => {
  const good = await validFile();
  const p = path.join(dir, 'flip');
  let accepted = 0;
  for (let i = 0; i < good.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const bad = Buffer.from(good);
      bad[i]! ^= bit;
      fs.writeFileSync(p, bad);
      try {
        await readCheckpoint(p);
        accepted++;
      } catch (err) {
        assert.ok(err instanceof CheckpointError);
        assert.ok(err.code === 'ECKPT_FORMAT' || err.code === 'ECKPT_CHECKSUM', err.code);
      }
    }
  }
  assert.equal(accepted, 0);
});

test('plain safetensors without ckptio checksums: rejected by default, readable with verify: false', async () => {
  const file = craftFile({ __metadata__: { format: 'pt' }, w: f32([2], 0, 8) }, new Uint8Array(new Float32Array([1, 2]).buffer));
  await rejects(file, 'ECKPT_CHECKSUM', /no ckptio checksums/);
  const p = path.join(dir, 'plain');
  fs.writeFileSync(p, file);
  const r = await readCheckpoint(p, { verify: false });
  assert.equal(r.verified, false);
  assert.deepEqual([...(r.tensors.w!.data as Float32Array)], [1, 2]);
  assert.deepEqual(r.metadata, { format: 'pt' });
});

test('not a regular file, missing file', async () => {
  await assert.rejects(readCheckpoint(dir), (e: unknown) => e instanceof CheckpointError && e.code === 'ECKPT_FORMAT');
  await assert.rejects(readCheckpoint(path.join(dir, 'nope')), (e: unknown) => e instanceof CheckpointError && e.code === 'ENOENT' && e.syscall === 'open');
});
