import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError, TensorEntry, writeCheckpoint, readCheckpoint } from '../src';
import { native } from '../src/binding/native';
import { isRoot, listDir, tempDir } from './helpers';

const ok: Record<string, TensorEntry> = { w: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } };

async function argError(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CheckpointError, String(err));
    assert.equal(err.code, 'ECKPT_ARGS');
    assert.match(err.message, message);
    return true;
  });
}

test('wrong argument types are rejected with ECKPT_ARGS, never thrown synchronously', async () => {
  const dir = tempDir();
  const f = path.join(dir, 'x');
  const w = writeCheckpoint as unknown as (...args: unknown[]) => Promise<unknown>;
  await argError(w(42, ok), /path must be a non-empty string/);
  await argError(w('', ok), /path must be a non-empty string/);
  await argError(w(f, null), /tensors must be an object/);
  await argError(w(f, [1, 2]), /tensors must be an object/);
  await argError(w(f, { a: 5 }), /tensor "a" must be/);
  await argError(w(f, { a: { dtype: 'float33', shape: [1], data: new Float32Array(1) } }), /unknown dtype "float33"/);
  await argError(w(f, { a: { dtype: 'float32', shape: [-1], data: new Float32Array(1) } }), /non-negative integers/);
  await argError(w(f, { a: { dtype: 'float32', shape: [1.5], data: new Float32Array(1) } }), /non-negative integers/);
  await argError(w(f, { a: { dtype: 'float32', shape: [1], data: [1] } }), /must be a TypedArray/);
  await argError(w(f, { a: { dtype: 'float32', shape: [3], data: new Float32Array(2) } }), /data is 8 bytes but shape x dtype needs 12/);
  await argError(w(f, ok, { metadata: { a: 1 } }), /metadata value for "a" must be a string/);
  await argError(w(f, ok, { metadata: { 'ckptio.format': '2' } }), /reserved/);
  await argError(w(f, ok, { direct: 'maybe' }), /direct must be/);
  await argError(w(f, { __metadata__: ok.w }), /reserved/);
  await argError(w(f + '\0x', ok), /NUL/);
  await argError((readCheckpoint as unknown as (p: unknown) => Promise<unknown>)(7), /path must be/);
  assert.deepEqual(listDir(dir), []);
});

test('a detached buffer is rejected', async () => {
  const dir = tempDir();
  const data = new Float32Array(4);
  structuredClone(data.buffer, { transfer: [data.buffer] });
  await argError(writeCheckpoint(path.join(dir, 'x'), { w: { dtype: 'float32', shape: [0], data } }), /detached/);
});

test('a missing directory is ENOENT with syscall and path', async () => {
  const dir = tempDir();
  await assert.rejects(writeCheckpoint(path.join(dir, 'no', 'such', 'x'), ok), (err: unknown) => {
    assert.ok(err instanceof CheckpointError);
    assert.equal(err.code, 'ENOENT');
    assert.equal(err.errno, 2);
    assert.equal(err.syscall, 'open');
    assert.equal(err.path, path.join(dir, 'no', 'such'));
    assert.match(err.stack ?? '', /args\.test/, 'stack points at the caller');
    return true;
  });
});

test('a read-only directory is rejected with the OS code and leaves nothing behind', async (t) => {
  const dir = tempDir();
  let expected: string;
  let cleanup = () => {};
  if (isRoot()) {
    // Root ignores permission bits, so use a read-only mount.
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir]);
    } catch {
      t.skip('cannot mount a read-only tmpfs here');
      return;
    }
    expected = 'EROFS';
    cleanup = () => execFileSync('umount', [dir]);
  } else {
    fs.chmodSync(dir, 0o555);
    expected = 'EACCES';
  }
  try {
    await assert.rejects(writeCheckpoint(path.join(dir, 'x'), ok), (err: unknown) => {
      assert.ok(err instanceof CheckpointError);
      assert.equal(err.code, expected);
      assert.equal(err.syscall, 'openat');
      return true;
    });
    assert.deepEqual(listDir(dir), []);
  } finally {
    cleanup();
  }
});

test('the packed table is untrusted: shared-memory columns, a getter that detaches an earlier view, lone surrogates', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'x');
  const shared = new Uint32Array(new SharedArrayBuffer(4));
  shared[0] = 1;
  // A column over a SharedArrayBuffer is read through its view, not rejected by a null pointer (it used to crash).
  const table = {
    names: 'a',
    nameLengths: shared,
    dtypes: Uint8Array.of(native.dtypes.findIndex((d) => d.name === 'uint8')),
    ranks: Uint8Array.of(1),
    dims: Float64Array.of(1),
    data: [new Uint8Array(1)],
  };
  await native.write(file, table, {}, {});
  assert.equal((await readCheckpoint(file)).tensors.a!.data.length, 1);
  // An index getter that transfers an earlier view's buffer: every element is read before any memory is located,
  // so the earlier view is seen detached (0 bytes) and the write is refused instead of reading freed memory.
  const first = new Uint8Array(4096);
  const data: ArrayBufferView[] = [first];
  Object.defineProperty(data, 1, {
    get: () => {
      structuredClone(first.buffer, { transfer: [first.buffer] });
      return new Uint8Array(1);
    },
    enumerable: true,
  });
  const u8 = native.dtypes.findIndex((d) => d.name === 'uint8');
  await argError(
    native.write(
      path.join(dir, 'y'),
      { names: 'ab', nameLengths: Uint32Array.of(1, 1), dtypes: Uint8Array.of(u8, u8), ranks: Uint8Array.of(1, 1), dims: Float64Array.of(4096, 1), data },
      {},
      {},
    ),
    /detached/,
  );
  assert.deepEqual(
    listDir(dir).filter((f) => f.startsWith('y')),
    [],
    'nothing written',
  );
  // A lone surrogate has no UTF-8 form: refused, not silently renamed (lz4 would then lose the tensor's chunks).
  await argError(writeCheckpoint(path.join(dir, 'z'), { 'w\uD800': { dtype: 'uint8', shape: [1], data: new Uint8Array(1) } }), /lone UTF-16 surrogate/);
});

test('a tensor named "__proto__" round-trips, compressed or not', async () => {
  const dir = tempDir();
  for (const compression of ['none', 'lz4'] as const) {
    const tensors: Record<string, TensorEntry> = {};
    Object.defineProperty(tensors, '__proto__', { value: { dtype: 'float32', shape: [1024], data: new Float32Array(1024) }, enumerable: true });
    const file = path.join(dir, `p-${compression}`);
    await writeCheckpoint(file, tensors, { compression });
    const back = await readCheckpoint(file);
    assert.deepEqual(Object.keys(back.tensors), ['__proto__'], compression);
    assert.equal(Object.getPrototypeOf(back.tensors), Object.prototype, `${compression}: the prototype is untouched`);
  }
});

test("save's after.onConsumed must be a function; when it is, it runs once, before the save resolves, and a throw in it does not escape", async () => {
  const dir = tempDir();
  const u8 = native.dtypes.findIndex((d) => d.name === 'uint8');
  const table = () => ({
    names: 'a',
    nameLengths: Uint32Array.of(1),
    dtypes: Uint8Array.of(u8),
    ranks: Uint8Array.of(1),
    dims: Float64Array.of(8),
    data: [new Uint8Array(8)],
  });
  await argError(native.save(path.join(dir, 'x'), table(), {}, {}, { onConsumed: 42 as unknown as () => void }), /after\.onConsumed must be a function/);
  assert.deepEqual(listDir(dir), [], 'nothing written');
  const calls: string[] = [];
  const p = native.save(
    path.join(dir, 'y'),
    table(),
    {},
    {},
    {
      onConsumed: () => {
        calls.push('consumed');
      },
    },
  );
  calls.push('called');
  await p;
  calls.push('resolved');
  assert.deepEqual(calls, ['called', 'consumed', 'resolved']);
  await native.save(
    path.join(dir, 'z'),
    table(),
    {},
    {},
    {
      onConsumed: () => {
        throw new Error('thrown by the callback');
      },
    },
  );
  assert.equal((await readCheckpoint(path.join(dir, 'z'))).tensors.a!.data.length, 8, 'the save completed');
});
