import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Checkpointer, CheckpointError, readCheckpoint, writeCheckpoint } from '../../src';
import { removeFiles, writeFileAtomic } from '../../src/format/file';
import { tempDir } from '../helpers';

// A seeded fuzz of the public API's arguments: random values of every JavaScript kind, near-valid tensors
// with one thing wrong, and getters that answer differently each time they are read (so a check in
// TypeScript followed by a second read in C++ would be fooled). Every call must either succeed or fail with
// a CheckpointError carrying a code; nothing else may escape, and the process must not crash.

const ITERATIONS = Number(process.env.CKPTIO_API_FUZZ_ITERATIONS ?? 20000);

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32;
}

const DTYPES = [
  'float32',
  'float64',
  'float16',
  'bfloat16',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'int64',
  'uint64',
  'bool',
  'float8_e4m3',
  'float8_e5m2',
];

function fuzzer(seed: number, dir: string) {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (n: number) => Math.floor(r() * n);
  const scalar = (): unknown =>
    pick([
      undefined,
      null,
      true,
      false,
      0,
      -1,
      1.5,
      NaN,
      Infinity,
      -0,
      2 ** 53,
      2 ** 64,
      10n,
      Symbol('s'),
      '',
      'x',
      '\0',
      'a'.repeat(5000),
      () => 1,
      [],
      {},
      new Date(0),
      /re/,
      new Map(),
    ]);
  const typed = (): unknown => {
    const n = int(6) === 0 ? 0 : int(64);
    const make = pick([
      () => new Float32Array(n),
      () => new Float64Array(n),
      () => new Uint8Array(n),
      () => new Int16Array(n),
      () => new BigInt64Array(n),
      () => new DataView(new ArrayBuffer(n)),
      () => Buffer.alloc(n),
      () => new Float32Array(new ArrayBuffer(n * 4 + 8), 4, n),
      () => new Uint8Array(new SharedArrayBuffer(n)),
      () => {
        const a = new Float32Array(n);
        structuredClone(a.buffer, { transfer: [a.buffer] }); // detached
        return a;
      },
      () => new ArrayBuffer(n),
      () => Array.from({ length: n }, () => 0),
    ]);
    return make();
  };
  const shape = (): unknown =>
    pick([
      () => [int(70)],
      () => [int(8), int(8)],
      () => [],
      () => [-1],
      () => [1.5],
      () => [NaN],
      () => [2 ** 60, 2 ** 60],
      () => ['3'],
      () => scalar(),
      () => Array.from({ length: 40 }, () => 1),
      () => [0, 2 ** 62],
    ])();
  // A getter that returns `a` the first time and `b` afterwards.
  const fickle = (a: unknown, b: unknown) => {
    let reads = 0;
    return { get: () => (reads++ === 0 ? a : b), enumerable: true };
  };
  const tensor = (): unknown => {
    const n = int(64);
    const base: Record<string, unknown> = { dtype: 'float32', shape: [n], data: new Float32Array(n) };
    switch (int(8)) {
      case 0:
        base.dtype = int(2) ? pick(DTYPES) : scalar();
        break;
      case 1:
        base.shape = shape();
        break;
      case 2:
        base.data = typed();
        break;
      case 3:
        return scalar();
      case 4:
        Object.defineProperty(base, 'shape', fickle([n], [n * 1000 + 1]));
        break;
      case 5:
        Object.defineProperty(base, 'data', fickle(new Float32Array(n), new Float32Array(0)));
        break;
      case 6:
        Object.defineProperty(base, 'dtype', fickle('float32', 'float64'));
        break;
      default:
        break; // valid
    }
    return base;
  };
  const tensors = (): unknown => {
    if (int(10) === 0) return scalar();
    const out: Record<string, unknown> = {};
    const names = ['w', 'b', '', '__metadata__', 'a/b', 'x'.repeat(300), 'ü', '\ud800', 'w'];
    for (let i = int(4); i > 0; i--) out[pick(names)] = tensor();
    return out;
  };
  // Never a relative path: the fuzz must not write into the working directory.
  const inDir = (v: unknown): unknown => (typeof v === 'string' && v !== '' && !path.isAbsolute(v) ? path.join(dir, v) : v);
  const file = (): unknown =>
    pick([
      path.join(dir, 'f.safetensors'),
      path.join(dir, 'g.safetensors'),
      dir,
      path.join(dir, 'missing', 'x'),
      '',
      path.join(dir, 'nul\0.safetensors'),
      path.join(dir, 'y'.repeat(300)),
      inDir(scalar()),
    ]);
  const options = (): unknown => {
    if (int(3) === 0) return scalar();
    const o: Record<string, unknown> = {};
    if (int(2)) o.metadata = pick([{ k: 'v' }, { k: 1 }, { 'ckptio.format': '2' }, { '': '' }, scalar(), { bad: '\ud800' }]);
    if (int(2)) o.direct = pick(['on', 'off', 'auto', 'maybe', true, 1]);
    if (int(3) === 0) o.copy = scalar();
    if (int(3) === 0) o.preallocate = scalar();
    if (int(3) === 0) o.writeBehindBytes = pick([0, -1, 1.5, 2 ** 70, 'x']);
    if (int(3) === 0) o.verify = scalar();
    return o;
  };
  const call = (): [string, () => unknown] => {
    switch (int(6)) {
      case 0:
      case 1:
        return ['writeCheckpoint', () => writeCheckpoint(file() as string, tensors() as never, options() as never)];
      case 2:
        return ['readCheckpoint', () => readCheckpoint(file() as string, options() as never)];
      case 3:
        return ['writeFileAtomic', () => writeFileAtomic(file() as string, pick([typed(), scalar()]) as never)];
      case 4:
        return [
          'removeFiles',
          () =>
            removeFiles(pick([dir, '', path.join(dir, 'missing'), inDir(scalar())]) as string, pick([[], ['nope'], ['a/b'], [''], scalar(), ['..']]) as never),
        ];
      default:
        return [
          'Checkpointer',
          () => {
            const c = new Checkpointer({
              dir: pick([path.join(dir, 'ck'), '', inDir(scalar())]),
              keepLast: pick([1, 0, -1, 2.5, 'x', undefined]),
              maxInflight: pick([1, 0, NaN, undefined]),
              onFull: pick(['wait', 'skip', 'drop', undefined]),
              onWarning: () => {},
            } as never);
            return c
              .save(pick([1, -1, 1.5, NaN]) as number, { tensors: tensors() as never })
              .then((h) => h.durable)
              .finally(() => c.close());
          },
        ];
    }
  };
  return call;
}

test(`API argument fuzz: ${ITERATIONS} seeded calls succeed or fail with a coded CheckpointError`, { timeout: 600_000 }, async (t) => {
  const dir = tempDir();
  const before = new Set(fs.readdirSync(process.cwd()));
  const next = fuzzer(20261122, dir);
  const tally = { ok: 0, rejected: 0, thrown: 0 };
  const codes = new Map<string, number>();
  const check = (what: string, err: unknown) => {
    assert.ok(err instanceof CheckpointError, `${what}: ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`);
    assert.match(err.code, /^E[A-Z_]+$/, `${what}: code ${err.code}`);
    codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
  };
  for (let i = 0; i < ITERATIONS; i++) {
    const [name, fn] = next();
    let result: unknown;
    try {
      result = fn();
    } catch (err) {
      tally.thrown++;
      check(`#${i} ${name} threw`, err);
      continue;
    }
    try {
      await result;
      tally.ok++;
    } catch (err) {
      tally.rejected++;
      check(`#${i} ${name} rejected`, err);
    }
  }
  assert.deepEqual(
    fs.readdirSync(process.cwd()).filter((f) => !before.has(f)),
    [],
    'the fuzz wrote into the working directory',
  );
  t.diagnostic(`${JSON.stringify(tally)}; codes ${[...codes].map(([c, n]) => `${c} ${n}`).join(', ')}`);
  assert.ok(tally.ok > 0 && tally.rejected > 0, 'the fuzz reaches both outcomes');
  fs.rmSync(dir, { recursive: true, force: true });
});
