import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TensorEntry } from '../src';

export function tempDir(prefix = 'ckptio-test-'): string {
  return fs.mkdtempSync(path.join(process.env.CKPTIO_TEST_TMP ?? os.tmpdir(), prefix));
}

export function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** A safetensors file from a header object (or raw header text) and a data region, for malformed-file tests. */
export function craftFile(header: object | string | Buffer, data: Uint8Array, opts: { pad?: boolean; lengthOverride?: bigint } = {}): Buffer {
  let json = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  if (opts.pad !== false && json.length % 8 !== 0) json = Buffer.concat([json, Buffer.alloc(8 - (json.length % 8), 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.lengthOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, Buffer.from(data)]);
}

/** Parses the framing of a safetensors file (test-side, independent of the native reader). */
export function parseFraming(file: Buffer): { headerLen: number; header: Record<string, unknown>; headerText: string; data: Buffer } {
  const headerLen = Number(file.readBigUInt64LE(0));
  const headerText = file.subarray(8, 8 + headerLen).toString('utf8');
  return { headerLen, header: JSON.parse(headerText) as Record<string, unknown>, headerText, data: file.subarray(8 + headerLen) };
}

export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function commandExists(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((p) => fs.existsSync(path.join(p, cmd)));
}

/** Deterministic pseudo-random floats for test data (not the library's PRNG, on purpose). */
export function pattern(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = (x / 0xffffffff) * 2 - 1;
  }
  return out;
}

/** The environment for a nested `node --test`: without NODE_TEST_CONTEXT, which the runner sets for its
 * children and which makes a nested run report to the parent and exit 0 whatever happened. */
export function withoutTestContext(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

/** Same names, dtypes, shapes, array types and bytes. */
export function assertSameTensors(actual: Record<string, TensorEntry>, expected: Record<string, TensorEntry>): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, t] of Object.entries(expected)) {
    const got = actual[name]!;
    assert.equal(got.dtype, t.dtype, name);
    assert.deepEqual(got.shape, t.shape, name);
    assert.ok(bytesOf(got.data).equals(bytesOf(t.data)), `bytes of ${name}`);
    assert.equal(got.data.constructor.name, t.data.constructor.name, `array type of ${name}`);
  }
}
