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
const SAVE_AND_MAP = (dir: string) => `
const fs = require('node:fs');
const { Checkpointer, readCheckpoint, writeCheckpoint } = require(${JSON.stringify(SRC)});
const { writerKind } = require(${JSON.stringify(path.join(SRC, 'binding', 'native'))});
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
    assert.deepEqual(r.out.files, ['ckpt-0000000002.safetensors', 'ckpt-0000000003.safetensors', 'ckptio-history.jsonl', 'ckptio-manifest.json', 'latest']);
    assert.doesNotMatch(r.stderr, /manifest|rebuilt|warning/i, 'the manifest and pointers the portable writer commits read back clean');
    // The same program with the native writer maps the addon: the check above can fail.
    const native = child(SAVE_AND_MAP(path.join(tempDir(), 'run')), {});
    assert.equal(native.status, 0, native.stderr);
    assert.equal(native.out.writerKind, 'native');
    assert.equal((native.out.addons as string[]).length, 1);
  },
);

test('an addon that does not load: the portable writer is chosen with a one-line notice naming why; CKPTIO_WRITER=native throws instead; an unknown CKPTIO_WRITER is ECKPT_ARGS', () => {
  const broken = path.join(tempDir(), 'ckptio.node');
  fs.writeFileSync(broken, 'not an ELF file');
  const dir = path.join(tempDir(), 'run');
  const auto = child(SAVE_AND_MAP(dir), { CKPTIO_ADDON: broken });
  assert.equal(auto.status, 0, auto.stderr);
  assert.equal(auto.out.writerKind, 'portable');
  assert.equal(auto.out.step, 3);
  const notices = auto.stderr.split('\n').filter((l) => l.includes('CKPTIO_PORTABLE_WRITER'));
  assert.equal(notices.length, 1, auto.stderr);
  assert.match(
    notices[0]!,
    /using the portable writer, because the native addon did not load \(.*(invalid ELF header|not an ELF|too short).*\); CKPTIO_WRITER=native insists/,
  );

  const insist = child(
    `try { require(${JSON.stringify(SRC)}); console.log('{"loaded":true}'); } catch (e) { console.log(JSON.stringify({ name: e.constructor.name, code: e.code })); }`,
    {
      CKPTIO_ADDON: broken,
      CKPTIO_WRITER: 'native',
    },
  );
  assert.deepEqual(insist.out, { name: 'CheckpointError', code: 'ECKPT_INTERNAL' });

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
