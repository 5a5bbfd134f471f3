/** The portable writer's selection and isolation: CKPTIO_WRITER=portable never loads the native addon; an addon that
 * does not load falls back to the portable writer with a one-line notice naming why; CKPTIO_WRITER=native insists;
 * the portable run lock's stale rules; and a checkpoint written by either writer reads back through the other. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempDir } from './helpers';

const SRC = path.resolve(__dirname, '..', 'src');

/** Runs a script in a child with the given environment; returns its last stdout line as JSON and its stderr. */
function child(script: string, env: NodeJS.ProcessEnv): { out: Record<string, unknown>; stderr: string; status: number | null } {
  const base = { ...process.env };
  delete base.CKPTIO_WRITER;
  delete base.CKPTIO_ADDON;
  delete base.CKPTIO_TESTING;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...base, ...env }, timeout: 60_000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let out: Record<string, unknown> = {};
  try {
    out = JSON.parse(last) as Record<string, unknown>;
  } catch {
    /* reported by the caller's assertions */
  }
  return { out, stderr: r.stderr, status: r.status };
}

/** Saves through a Checkpointer, reads back, and lists the ckptio addons mapped into the process. */
const SAVE_AND_MAP = (dir: string, src = SRC) => `
const fs = require('node:fs');
const { Checkpointer } = require(${JSON.stringify(src)});
const { writerKind } = require(${JSON.stringify(path.join(src, 'binding', 'native'))});
(async () => {
  const c = new Checkpointer({ dir: ${JSON.stringify(dir)}, keepLast: 2 });
  for (let step = 1; step <= 3; step++) await (await c.save(step, { tensors: { w: { dtype: 'float32', shape: [3], data: new Float32Array([step, 2, 3]) } } })).durable;
  await c.close();
  const again = new Checkpointer({ dir: ${JSON.stringify(dir)} });
  const back = await again.loadLatest();
  await again.close();
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && /ckptio[^/]*\\.node$/.test(p));
  console.log(JSON.stringify({ writerKind, step: back.step, first: back.tensors.w.data[0], addons: [...new Set(maps)], files: fs.readdirSync(${JSON.stringify(dir)}).sort() }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

test(
  'CKPTIO_WRITER=portable: saves, retention and resume work, and no ckptio addon is ever mapped into the process',
  { skip: process.platform !== 'linux' && 'reads /proc/self/maps' },
  () => {
    const dir = path.join(tempDir(), 'run');
    const r = child(SAVE_AND_MAP(dir), { CKPTIO_WRITER: 'portable' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.out.writerKind, 'portable');
    assert.equal(r.out.step, 3);
    assert.equal(r.out.first, 3);
    assert.deepEqual(r.out.addons, [], 'the native addon was loaded under CKPTIO_WRITER=portable');
    // ckptio.lock holds the last holder's name, as the native lock leaves it; the held file is gone after close().
    assert.deepEqual(r.out.files, [
      'ckpt-0000000002.safetensors',
      'ckpt-0000000003.safetensors',
      'ckptio-history.jsonl',
      'ckptio-manifest.json',
      'ckptio.lock',
      'latest',
    ]);
    assert.doesNotMatch(r.stderr, /manifest|rebuilt|warning/i, 'the manifest and pointers the portable writer commits read back clean');
    // The same program with the native writer maps the addon: the check above can fail.
    const native = child(SAVE_AND_MAP(path.join(tempDir(), 'run')), {});
    assert.equal(native.status, 0, native.stderr);
    assert.equal(native.out.writerKind, 'native');
    assert.equal((native.out.addons as string[]).length, 1);
  },
);

/** A copy of the compiled library as an installed package lays it out (dist/src, node_modules), whose only addon is
 * `prebuilt` (or none): what a user on a platform without a working binary gets. */
function installedTree(prebuilt: string | null): string {
  const root = tempDir();
  fs.mkdirSync(path.join(root, 'dist'));
  fs.cpSync(SRC, path.join(root, 'dist', 'src'), { recursive: true });
  fs.symlinkSync(path.resolve(__dirname, '..', '..', 'node_modules'), path.join(root, 'node_modules'));
  if (prebuilt !== null) {
    const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'ckptio.glibc.node'), prebuilt);
  }
  return path.join(root, 'dist', 'src');
}

test('an addon that does not load, or none for the platform: the portable writer is chosen with a one-line notice naming why; CKPTIO_WRITER=native throws instead; an unknown CKPTIO_WRITER is ECKPT_ARGS', () => {
  const cases: [string, string | null, RegExp][] = [
    ['a prebuilt that fails to load', 'not an ELF file', /invalid ELF header|file too short/],
    ['no prebuilt for the platform', null, /has no native addon for platform=/],
  ];
  for (const [what, prebuilt, reason] of cases) {
    const src = installedTree(prebuilt);
    const dir = path.join(tempDir(), 'run');
    const auto = child(SAVE_AND_MAP(dir, src), {});
    assert.equal(auto.status, 0, `${what}: ${auto.stderr}`);
    assert.equal(auto.out.writerKind, 'portable', what);
    assert.equal(auto.out.step, 3, what);
    const lines = auto.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, `${what}: one line on stderr, the notice: ${auto.stderr}`);
    const notices = lines;
    assert.match(
      notices[0]!,
      /^ckptio: using the portable writer, because the native addon did not load \(.*\); set CKPTIO_WRITER=portable to choose it without this notice, or CKPTIO_WRITER=native to insist on the addon$/,
      what,
    );
    assert.match(notices[0]!, reason, what);
    const insist = child(
      `try { require(${JSON.stringify(src)}); console.log('{"loaded":true}'); } catch (e) { console.log(JSON.stringify({ name: e.constructor.name, code: e.code })); }`,
      {
        CKPTIO_WRITER: 'native',
      },
    );
    assert.deepEqual(insist.out, { name: 'CheckpointError', code: 'ECKPT_INTERNAL' }, what);
  }
  // A build named on purpose (CKPTIO_ADDON) that does not load is thrown, never replaced.
  const broken = path.join(tempDir(), 'ckptio.node');
  fs.writeFileSync(broken, 'not an ELF file');
  const named = child(`try { require(${JSON.stringify(SRC)}); console.log('{"loaded":true}'); } catch (e) { console.log(JSON.stringify({ code: e.code })); }`, {
    CKPTIO_ADDON: broken,
  });
  assert.equal(named.out.code, 'ECKPT_INTERNAL', JSON.stringify(named));

  const unknown = child(
    `try { require(${JSON.stringify(SRC)}); console.log('{"loaded":true}'); } catch (e) { console.log(JSON.stringify({ name: e.constructor.name, code: e.code, message: e.message })); }`,
    {
      CKPTIO_WRITER: 'wasm',
    },
  );
  assert.equal(unknown.out.code, 'ECKPT_ARGS');
  assert.match(String(unknown.out.message), /CKPTIO_WRITER=wasm is not a writer/);
});

test('checkpoints move between the writers unchanged: each reads, verifies and resumes what the other wrote, byte for byte', () => {
  const a = path.join(tempDir(), 'a.safetensors');
  const b = path.join(tempDir(), 'b.safetensors');
  const write = (file: string) => `
const { writeCheckpoint, readCheckpoint } = require(${JSON.stringify(SRC)});
(async () => {
  const w = await writeCheckpoint(${JSON.stringify(file)}, { x: { dtype: 'float64', shape: [2, 2], data: new Float64Array([1, -2, 3.5, 4]) }, n: { dtype: 'int8', shape: [3], data: new Int8Array([-1, 0, 1]) } }, { metadata: { who: 'x' } });
  console.log(JSON.stringify({ contentId: w.contentId }));
})().catch((e) => { console.error(e); process.exit(1); });`;
  const read = (file: string) => `
const { readCheckpoint } = require(${JSON.stringify(SRC)});
(async () => {
  const r = await readCheckpoint(${JSON.stringify(file)});
  console.log(JSON.stringify({ verified: r.verified, x: Array.from(r.tensors.x.data), n: Array.from(r.tensors.n.data), who: r.metadata.who }));
})().catch((e) => { console.error(e); process.exit(1); });`;
  const wp = child(write(a), { CKPTIO_WRITER: 'portable' });
  const wn = child(write(b), {});
  assert.equal(wp.status, 0, wp.stderr);
  assert.equal(wn.status, 0, wn.stderr);
  assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)), 'the two writers wrote the same bytes');
  assert.equal(wp.out.contentId, wn.out.contentId);
  for (const [file, env] of [
    [a, {}],
    [b, { CKPTIO_WRITER: 'portable' }],
  ] as const) {
    const r = child(read(file), env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.out, { verified: true, x: [1, -2, 3.5, 4], n: [-1, 0, 1], who: 'x' });
  }
});

test('the portable run lock: a live holder refuses a second writer (ECKPT_LOCKED naming it); a dead pid on this host or an expired lease elsewhere is taken over', () => {
  const dir = tempDir();
  const script = (action: string) => `
const fs = require('node:fs');
const { Checkpointer } = require(${JSON.stringify(SRC)});
(async () => {
  ${action}
})().catch((e) => { console.log(JSON.stringify({ code: e.code, message: e.message })); });`;
  const held = path.join(dir, 'ckptio.lock.held');
  // A live holder: this test's own process, on this host.
  fs.writeFileSync(held, JSON.stringify({ pid: process.pid, host: os.hostname(), started: 'now' }));
  const refused = child(
    script(
      `new Checkpointer({ dir: ${JSON.stringify(dir)} }); await new Promise((r) => setTimeout(r, 50)); const c = new Checkpointer({ dir: ${JSON.stringify(dir)} }); await c.save(1, { tensors: {} }); console.log('{"saved":true}');`,
    ),
    {
      CKPTIO_WRITER: 'portable',
    },
  );
  assert.equal(refused.out.code, 'ECKPT_LOCKED', JSON.stringify(refused));
  assert.match(String(refused.out.message), new RegExp(`pid ${process.pid} on ${os.hostname()}`));
  // A holder on another host whose lease (the file's mtime) is fresh: refused too.
  fs.writeFileSync(held, JSON.stringify({ pid: 1, host: 'elsewhere.example', started: 'then' }));
  const fresh = child(
    script(
      `const c = new Checkpointer({ dir: ${JSON.stringify(dir)} }); await (await c.save(1, { tensors: {} })).durable; await c.close(); console.log('{"saved":true}');`,
    ),
    { CKPTIO_WRITER: 'portable' },
  );
  assert.equal(fresh.out.code, 'ECKPT_LOCKED', JSON.stringify(fresh));
  // The same holder after its lease expired: taken over.
  const old = new Date(Date.now() - 120_000);
  fs.utimesSync(held, old, old);
  const expired = child(
    script(
      `const c = new Checkpointer({ dir: ${JSON.stringify(dir)} }); await (await c.save(1, { tensors: {} })).durable; await c.close(); console.log('{"saved":true}');`,
    ),
    { CKPTIO_WRITER: 'portable' },
  );
  assert.deepEqual(expired.out, { saved: true }, expired.stderr);
  assert.equal(fs.existsSync(held), false, 'close() removes the held file');
  // A dead pid on this host, lease fresh: taken over.
  const gone = spawnSync(process.execPath, ['-e', 'process.pid'], { encoding: 'utf8' });
  fs.writeFileSync(held, JSON.stringify({ pid: gone.pid, host: os.hostname(), started: 'then' }));
  const dead = child(
    script(
      `const c = new Checkpointer({ dir: ${JSON.stringify(dir)} }); await (await c.save(2, { tensors: {} })).durable; await c.close(); console.log('{"saved":true}');`,
    ),
    { CKPTIO_WRITER: 'portable' },
  );
  assert.deepEqual(dead.out, { saved: true }, dead.stderr);
});
