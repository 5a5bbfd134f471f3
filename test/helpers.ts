import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
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

/** One system call of an `strace -f` log. `line` is where the call started (an interrupted call's
 * `<unfinished ...>` line), so calls compare in the order they began. */
export interface StraceCall {
  line: number;
  pid: number;
  name: string;
  args: string;
  result: string;
}

/** Parses an `strace -f -qq` log, joining each `<unfinished ...>` line with its `<... name resumed>` line (other
 * threads' calls are logged in between: the libuv pool, the writer thread). */
export function parseStrace(trace: string): StraceCall[] {
  const calls: StraceCall[] = [];
  const open = new Map<number, { line: number; text: string }>();
  const complete = /^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)$/;
  trace.split('\n').forEach((raw, line) => {
    const head = /^(\d+)\s+(.*)$/.exec(raw);
    if (!head) return;
    const pid = Number(head[1]);
    let text = head[2]!;
    let start = line;
    const unfinished = /^(.*?)\s*<unfinished \.\.\.>$/.exec(text);
    if (unfinished) {
      open.set(pid, { line, text: unfinished[1]! });
      return;
    }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(text);
    if (resumed) {
      const begun = open.get(pid);
      if (!begun) return;
      open.delete(pid);
      text = begun.text + resumed[1]!;
      start = begun.line;
    }
    const m = complete.exec(text);
    if (m) calls.push({ line: start, pid, name: m[1]!, args: m[2]!, result: m[3]! });
  });
  return calls.sort((a, b) => a.line - b.line);
}

/** The CLI of this checkout. */
export const CLI = path.resolve(__dirname, '..', '..', 'bin', 'ckptio.js');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `ckptio ...args` to completion. */
export function cli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): CliRun {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    maxBuffer: 2 ** 28,
    ...(options.env ? { env: options.env } : {}),
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `node -e script ...args` under `strace -f`, tracing `syscalls`, and returns its calls (parseStrace). */
export function straceNode(script: string, args: string[], syscalls: string[], traceFile: string, env?: NodeJS.ProcessEnv): StraceCall[] {
  execFileSync('strace', ['-f', '-qq', '-s', '256', '-o', traceFile, '-e', `trace=${syscalls.join(',')}`, process.execPath, '-e', script, ...args], {
    stdio: 'pipe',
    ...(env ? { env } : {}),
  });
  return parseStrace(fs.readFileSync(traceFile, 'utf8'));
}
