/** The ckptio CLI (docs/cli.md), run as users run it: `node bin/ckptio.js ...` in a child process, on run
 * directories made by a real Checkpointer. Exit codes: 0 ok, 1 bad checkpoint, 2 usage, 3 locked, 4 I/O. */
import '../src/platform/node';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { readPointer } from '../src/checkpoint/directory';
import { keepBest } from '../src/checkpoint/retention';
import { writeCheckpoint } from '../src/format/file';
import { loadTf } from '../src/tfjs/backend';
import { ioHandler } from '../src/tfjs/io-handler';
import { cli as runCli, CliRun, pattern, tempDir } from './helpers';
import { checkpointName } from '../src/checkpoint/names';

const ESC = String.fromCharCode(0x1b);
const CSI = String.fromCharCode(0x9b);

const cli = (...args: string[]): CliRun => runCli(args);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the tests read many JSON shapes
function cliJson<T = any>(...args: string[]): T {
  const r = cli(...args, '--json');
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

const ACC: Record<number, number> = { 10: 0.5, 20: 0.9, 30: 0.7, 40: 0.6 };

/** Four saves with metrics (acc best at step 20), step 10 tagged v1_baseline. */
async function makeRun(
  dir = tempDir('ckptio-cli-'),
  opts: { retention?: ReturnType<typeof keepBest>[]; loss?: Record<number, number>; parent?: { run: string; step: number; contentId: string } } = {},
): Promise<string> {
  const ckpt = new Checkpointer({
    dir,
    keepLast: 10,
    ...(opts.retention ? { retention: opts.retention } : {}),
    ...(opts.parent ? { parent: opts.parent } : {}),
  });
  for (const step of [10, 20, 30, 40]) {
    const h = await ckpt.save(step, {
      tensors: { w: { dtype: 'float32', shape: [64], data: pattern(64, step) }, b: { dtype: 'int32', shape: [2], data: new Int32Array([step, 1]) } },
      metrics: { acc: ACC[step]!, loss: opts.loss?.[step] ?? 1 - ACC[step]! },
      state: { step },
    });
    await h.durable;
  }
  await ckpt.tag(10, 'v1_baseline');
  await ckpt.close();
  return dir;
}

/** Every file's name and bytes (to show that nothing changed); the lock file's holder line excepted (whoever
 * takes the lock writes its name there). */
function snapshotDir(dir: string): Record<string, string> {
  return Object.fromEntries(
    fs
      .readdirSync(dir)
      .sort()
      .map((n) => [n, n === 'ckptio.lock' ? 'lock' : fs.readFileSync(path.join(dir, n)).toString('base64')]),
  );
}

test('ls: one row per checkpoint with step, time, size, metrics, valid, pointers, tags and why kept; --json', async () => {
  const dir = await makeRun();
  const r = cli('ls', dir);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[1]!, /^STEP\s+TIME\s+SIZE\s+HEADER\s+METRICS\s+POINTERS\s+TAGS\s+KEPT BY$/);
  assert.equal(lines.length, 2 + 4);
  assert.match(lines[2]!, /^10\s+\d{4}-\d\d-\d\dT\S+Z\s+\d+ B\s+ok\s+acc=0\.5 loss=0\.5\s+-\s+v1_baseline\s+last 10, tag v1_baseline$/);
  assert.match(lines[5]!, /^40\s.*\sok\s+acc=0\.6 loss=0\.4\s+latest\s+-\s+last 10, newest, pointer latest$/);

  const j = cliJson('ls', dir);
  assert.equal(j.dir, dir);
  assert.equal(j.manifest, 'ok');
  assert.deepEqual(
    j.checkpoints.map((c: { step: number }) => c.step),
    [10, 20, 30, 40],
  );
  const c10 = j.checkpoints[0];
  assert.deepEqual(Object.keys(c10).sort(), [
    'bytes',
    'checked',
    'contentId',
    'file',
    'fileBytes',
    'inManifest',
    'keptBy',
    'metrics',
    'parent',
    'pointers',
    'present',
    'problem',
    'step',
    'tags',
    'time',
    'valid',
    'verified',
  ]);
  assert.equal(c10.file, checkpointName(10));
  assert.deepEqual(c10.metrics, { acc: 0.5, loss: 0.5 });
  assert.equal(c10.valid, true);
  assert.equal(c10.bytes, 64 * 4 + 2 * 4);
  assert.equal(c10.fileBytes, fs.statSync(path.join(dir, checkpointName(10))).size);
  assert.deepEqual(c10.tags, ['v1_baseline']);
  assert.match(c10.contentId, /^[0-9a-f]{16}$/);
  assert.equal(c10.verified, null, 'not verified without --verify');
  assert.deepEqual(j.checkpoints[3].pointers, ['latest']);
  assert.deepEqual(j.checkpoints[3].keptBy, ['last 10', 'newest', 'pointer latest']);
  assert.deepEqual(j.checkpoints[1].parent, { step: 10, contentId: c10.contentId });
  assert.deepEqual(
    j.pointers.map((p: { name: string }) => p.name),
    ['latest', 'tag.v1_baseline'],
  );
  const verified = cliJson('ls', dir, '--verify');
  assert.ok(verified.checkpoints.every((c: { verified: boolean }) => c.verified === true));
});

test('verify: exit 0 on a good run, and on one good file', async () => {
  const dir = await makeRun();
  const r = cli('verify', dir);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const s of [10, 20, 30, 40]) assert.match(r.stdout, new RegExp(`^ok   ${checkpointName(s)} \\(\\d+ bytes\\)$`, 'm'));
  assert.match(r.stdout, /^ok {3}latest \(pointer\)$/m);
  assert.match(r.stdout, /^ok {3}tag\.v1_baseline \(tag\)$/m);
  assert.equal(cli('verify', path.join(dir, checkpointName(20))).status, 0);
  const j = cliJson('verify', dir);
  assert.equal(j.ok, true);
  assert.equal(j.bad, 0);
});

test('verify: a flipped byte in a tensor is ECKPT_CHECKSUM, exit 1, naming the file; only that file fails', async () => {
  const dir = await makeRun();
  const file = path.join(dir, checkpointName(30));
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 3]! ^= 0x01; // the data region is last: a tensor byte
  fs.writeFileSync(file, bytes);
  const r = cli('verify', dir);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stdout, new RegExp(`^FAIL ${checkpointName(30)}: ECKPT_CHECKSUM: `, 'm'));
  assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('FAIL')).length, 1, r.stdout);
  assert.match(r.stdout, new RegExp(`^ok   ${checkpointName(40)} `, 'm'));
  const one = cli('verify', file);
  assert.equal(one.status, 1);
  assert.match(one.stdout, /ECKPT_CHECKSUM/);
  const j = JSON.parse(cli('verify', dir, '--json').stdout);
  assert.equal(j.ok, false);
  assert.deepEqual(
    j.checks.filter((c: { ok: boolean }) => !c.ok).map((c: { name: string; code: string }) => [c.name, c.code]),
    [[checkpointName(30), 'ECKPT_CHECKSUM']],
  );
  // ls shows it valid (its header parses) until --verify reads the data.
  const ls = cliJson('ls', dir, '--verify');
  assert.equal(ls.checkpoints[2].valid, false);
  assert.equal(ls.checkpoints[2].problem.code, 'ECKPT_CHECKSUM');
});

test('verify: a truncated file is ECKPT_FORMAT; the pointer naming it fails too', async () => {
  const dir = await makeRun();
  const file = path.join(dir, checkpointName(40));
  fs.truncateSync(file, fs.statSync(file).size - 20);
  const r = cli('verify', dir);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stdout, new RegExp(`^FAIL ${checkpointName(40)}: ECKPT_FORMAT: `, 'm'));
  assert.match(r.stdout, new RegExp(`^FAIL latest: ECKPT_FORMAT: latest points at ${checkpointName(40)} \\(step 40\\), which is not valid`, 'm'));
  const ls = cli('ls', dir);
  assert.equal(ls.status, 0);
  assert.match(ls.stdout, /^40 .*NO \(ECKPT_FORMAT\)/m);
});

test('verify: a file the manifest lists but that is missing is named (ENOENT), exit 1', async () => {
  const dir = await makeRun();
  fs.unlinkSync(path.join(dir, checkpointName(20)));
  const r = cli('verify', dir);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stdout, new RegExp(`^FAIL ${checkpointName(20)}: ENOENT: ${checkpointName(20)} is listed in the manifest but missing$`, 'm'));
  assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('FAIL')).length, 1, r.stdout);
  const ls = cliJson('ls', dir);
  assert.equal(ls.checkpoints[1].present, false);
  assert.match(cli('ls', dir).stdout, /^20 .*MISSING/m);
  // A tag whose checkpoint is gone.
  fs.unlinkSync(path.join(dir, checkpointName(10)));
  assert.match(
    cli('verify', dir).stdout,
    new RegExp(`^FAIL tag\\.v1_baseline: ENOENT: tag\\.v1_baseline points at ${checkpointName(10)} \\(step 10\\), which is missing$`, 'm'),
  );
  // A path given on the command line that is not there is an I/O error: exit 4.
  const gone = cli('verify', path.join(dir, checkpointName(20)));
  assert.equal(gone.status, 4);
  assert.match(gone.stderr, /^ckptio: ENOENT: /);
  // A directory that does not exist: exit 4.
  const noDir = cli('ls', path.join(dir, 'nope'));
  assert.equal(noDir.status, 4);
  assert.match(noDir.stderr, /^ckptio: ENOENT: /);
});

test('prune --dry-run changes nothing and says what would go', async () => {
  const dir = await makeRun();
  const before = snapshotDir(dir);
  const r = cli('prune', dir, '--keep-last', '1', '--dry-run');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^would remove ${checkpointName(20)}$`, 'm'));
  assert.match(r.stdout, new RegExp(`^would remove ${checkpointName(30)}$`, 'm'));
  assert.match(r.stdout, new RegExp(`^keep   ${checkpointName(10)}: .*tag v1_baseline`, 'm'));
  assert.match(r.stdout, /dry run: 2 would be removed, 2 kept/);
  assert.deepEqual(snapshotDir(dir), before);
  const j = cliJson('prune', dir, '--keep-last', '1', '--dry-run');
  assert.equal(j.dryRun, true);
  assert.deepEqual(j.removed, [checkpointName(20), checkpointName(30)]);
  assert.deepEqual(snapshotDir(dir), before);
});

test('prune --keep-last 1 --keep-best acc:max keeps the newest, the best and the tagged; the pointers resolve', async () => {
  const dir = await makeRun();
  const r = cli('prune', dir, '--keep-last', '1', '--keep-best', 'acc:max', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.removed, [checkpointName(30)]);
  const why = Object.fromEntries(j.kept.map((k: { step: number; keptBy: string[] }) => [k.step, k.keptBy]));
  assert.ok(why[40].includes('newest') && why[40].includes('last 1'), why[40]);
  assert.ok(why[20].includes('best acc #1') && why[20].includes('pointer best-acc'), why[20]);
  assert.ok(why[10].includes('tag v1_baseline'), why[10]);
  assert.deepEqual(
    fs
      .readdirSync(dir)
      .filter((n) => n.startsWith('ckpt-'))
      .sort(),
    [checkpointName(10), checkpointName(20), checkpointName(40)],
  );
  assert.equal((await readPointer(dir, 'latest'))?.step, 40);
  assert.equal((await readPointer(dir, 'best-acc'))?.step, 20);
  assert.equal(cli('verify', dir).status, 0, 'every pointer and tag resolves');
  assert.match(cli('ls', dir).stdout, /^20 .*best-acc .*best acc #1/m);
});

test('prune keeps what an existing pointer names even when the given policies do not maintain it', async () => {
  const loss = { 10: 0.9, 20: 0.8, 30: 0.1, 40: 0.7 };
  const dir = await makeRun(undefined, { retention: [keepBest({ metric: 'loss', mode: 'min' })], loss });
  assert.equal((await readPointer(dir, 'best-loss'))?.step, 30);
  const j = cliJson('prune', dir, '--keep-last', '1');
  assert.deepEqual(j.removed, [checkpointName(20)]);
  assert.ok(fs.existsSync(path.join(dir, checkpointName(30))), 'the best-loss checkpoint stays');
  assert.equal(cli('verify', dir).status, 0);
});

test('usage errors exit 2 as "ckptio: ECKPT_ARGS: ..."; --help documents the exit codes', async () => {
  const dir = await makeRun();
  for (const args of [
    ['prune', dir],
    ['prune', dir, '--keep-best', 'acc'],
    ['prune', dir, '--keep-last', '0'],
    ['tag', dir, 'x', 'y'],
    ['nosuch'],
    ['ls'],
    ['ls', dir, '--bogus'],
  ]) {
    const r = cli(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^ckptio: ECKPT_ARGS: /, args.join(' '));
  }
  const help = cli('--help');
  assert.equal(help.status, 0);
  for (const cmd of ['ls', 'inspect', 'verify', 'log', 'prune', 'diff', 'tag', 'export', 'import', 'train'])
    assert.match(help.stdout, new RegExp(`^  ${cmd} `, 'm'), cmd);
  assert.match(help.stdout, /Exit codes:\n\s+0\s+ok\n\s+1\s+.*\n\s+2\s+usage error.*\n\s+3\s+.*locked.*\n\s+4\s+I\/O error/);
  assert.equal(cli('prune', '--help').status, 0);
});

test('a trainer holding the lock: prune and tag exit 3 naming the holder; ls, verify and log still work', async (t) => {
  const dir = await makeRun();
  const src = path.resolve(__dirname, '..', 'src', 'index');
  const child = spawn(
    process.execPath,
    [
      '-e',
      `
    const { Checkpointer } = require(${JSON.stringify(src)});
    const c = new Checkpointer({ dir: ${JSON.stringify(dir)} });
    c.manifest().then(() => { process.stdout.write('locked\\n'); setInterval(() => {}, 1000); }, (e) => { console.error(e); process.exit(1); });
  `,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('locked')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`lock holder exited ${code}`)));
  });
  const before = snapshotDir(dir);
  for (const args of [
    ['prune', dir, '--keep-last', '1'],
    ['prune', dir, '--keep-last', '1', '--dry-run'],
    ['tag', dir, '20', 'x'],
  ]) {
    const r = cli(...args);
    assert.equal(r.status, 3, `${args.join(' ')}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^ckptio: ECKPT_LOCKED: .*in use by another writer \\(pid ${child.pid} on [^,]+, since \\d{4}-`));
  }
  assert.deepEqual(snapshotDir(dir), before, 'a refused prune removed nothing');
  const ls = cli('ls', dir, '--json');
  assert.equal(ls.status, 0, ls.stderr);
  assert.equal(JSON.parse(ls.stdout).checkpoints.length, 4);
  assert.equal(cli('verify', dir).status, 0);
  assert.equal(cli('log', dir).status, 0);
  assert.equal(cli('inspect', path.join(dir, checkpointName(10))).status, 0);
});

test('diff: only in A, only in B, dtype/shape changed, equal bytes and max abs difference (in chunks)', async () => {
  const dir = tempDir('ckptio-cli-');
  const big = 700_000; // 2.8 MB: several 1 MiB chunks
  const bigA = pattern(big, 7);
  const bigB = bigA.slice();
  bigB[big - 1] = bigB[big - 1]! + 0.25;
  bigB[3] = bigB[3]! - 0.125;
  const a = path.join(dir, 'a.safetensors');
  const b = path.join(dir, 'b.safetensors');
  await writeCheckpoint(a, {
    same: { dtype: 'int32', shape: [3], data: new Int32Array([1, 2, 3]) },
    w: { dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) },
    i64: { dtype: 'int64', shape: [2], data: new BigInt64Array([5n, -3n]) },
    f64: { dtype: 'float64', shape: [2], data: new Float64Array([NaN, 1]) },
    big: { dtype: 'float32', shape: [big], data: bigA },
    grows: { dtype: 'float32', shape: [2], data: new Float32Array(2) },
    gone: { dtype: 'uint8', shape: [1], data: new Uint8Array(1) },
  });
  await writeCheckpoint(b, {
    same: { dtype: 'int32', shape: [3], data: new Int32Array([1, 2, 3]) },
    w: { dtype: 'float32', shape: [3], data: new Float32Array([1, 2.5, 3]) },
    i64: { dtype: 'int64', shape: [2], data: new BigInt64Array([5n, 7n]) },
    f64: { dtype: 'float64', shape: [2], data: new Float64Array([NaN, 1]) },
    big: { dtype: 'float32', shape: [big], data: bigB },
    grows: { dtype: 'float32', shape: [3], data: new Float32Array(3) },
    added: { dtype: 'float16', shape: [1], data: new Uint16Array(1) },
  });
  const j = cliJson('diff', a, b);
  assert.deepEqual(
    j.onlyInA.map((t: { name: string }) => t.name),
    ['gone'],
  );
  assert.deepEqual(
    j.onlyInB.map((t: { name: string }) => t.name),
    ['added'],
  );
  assert.deepEqual(j.changed, [{ name: 'grows', a: { dtype: 'float32', shape: [2] }, b: { dtype: 'float32', shape: [3] } }]);
  const by = Object.fromEntries(j.common.map((c: { name: string }) => [c.name, c]));
  assert.equal(by.same.bytesEqual, true);
  assert.equal(by.same.maxAbsDiff, 0);
  assert.equal(by.f64.bytesEqual, true);
  assert.deepEqual([by.w.bytesEqual, by.w.differing, by.w.maxAbsDiff], [false, 1, 0.5]);
  assert.deepEqual([by.i64.bytesEqual, by.i64.differing, by.i64.maxAbsDiff], [false, 1, 10]);
  assert.equal(by.big.differing, 2);
  assert.ok(Math.abs(by.big.maxAbsDiff - 0.25) < 1e-6, String(by.big.maxAbsDiff));
  assert.equal(j.identical, false);
  const text = cli('diff', a, b);
  assert.equal(text.status, 0);
  assert.match(text.stdout, /^only in a: gone uint8 \[1\]$/m);
  assert.match(text.stdout, /^changed: {3}grows float32 \[2\] -> float32 \[3\]$/m);
  assert.match(text.stdout, /^w\s+float32\s+\[3\]\s+differ\s+1\s+0\.5/m);
  assert.match(text.stdout, /^same\s+int32\s+\[3\]\s+equal\s+0\s+0/m);
  assert.match(cli('diff', a, a).stdout, /identical tensors/);
  // Two checkpoints of a run.
  const run = await makeRun();
  const r = cliJson('diff', path.join(run, checkpointName(10)), path.join(run, checkpointName(20)));
  assert.deepEqual(
    r.common.map((c: { name: string; bytesEqual: boolean }) => [c.name, c.bytesEqual]),
    [
      ['b', false],
      ['w', false],
    ],
  );
});

test('tag DIR STEP NAME, then ls shows it and why it is kept', async () => {
  const dir = await makeRun();
  const r = cli('tag', dir, '30', 'release-1');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /tagged step 30 as release-1/);
  const j = cliJson('ls', dir);
  assert.deepEqual(j.checkpoints[2].tags, ['release-1']);
  assert.ok(j.checkpoints[2].keptBy.includes('tag release-1'), j.checkpoints[2].keptBy);
  assert.match(cli('ls', dir).stdout, /^30 .*release-1/m);
  const bad = cli('tag', dir, '30', 'bad/name');
  assert.equal(bad.status, 2, bad.stderr);
  const none = cli('tag', dir, '31', 'x');
  assert.notEqual(none.status, 0);
  assert.match(none.stderr, /^ckptio: ENOENT: no checkpoint for step 31/);
});

test('log: the lineage baseline -> fine-tune, following parent.run, with steps, metrics, dates and tags', async () => {
  const base = await makeRun();
  const manifest = cliJson('ls', base);
  const from = manifest.checkpoints[3];
  const tune = await makeRun(tempDir('ckptio-cli-tune-'), { parent: { run: base, step: 40, contentId: from.contentId } });
  const j = cliJson('log', tune);
  assert.deepEqual(
    j.runs.map((r: { dir: string }) => r.dir),
    [base, tune],
  );
  assert.equal(j.runs[0].from, null);
  assert.deepEqual(j.runs[1].from, { run: base, step: 40, contentId: from.contentId, found: 'ok', resolved: base });
  assert.deepEqual(j.runs[0].checkpoints[0].tags, ['v1_baseline']);
  assert.deepEqual(j.runs[1].checkpoints[0].parent, { run: base, step: 40, contentId: from.contentId });
  assert.deepEqual(j.runs[1].checkpoints[1].parent.step, 10);
  const text = cli('log', tune);
  assert.equal(text.status, 0, text.stderr);
  const baseAt = text.stdout.indexOf(`run ${base}`);
  const tuneAt = text.stdout.indexOf(`-> run ${tune}`);
  assert.ok(baseAt >= 0 && tuneAt > baseAt, text.stdout);
  assert.match(text.stdout, new RegExp(`from ${base} step 40, content ${from.contentId}\\n`));
  assert.match(text.stdout, /^ {3}10\s+\d{4}-\d\d-\d\dT\S+Z\s+acc=0\.5 loss=0\.5\s+v1_baseline/m);
  assert.match(text.stdout, new RegExp(`<- ${path.basename(base)}@40`));
  // The parent run gone: the link is shown, not followed.
  fs.rmSync(base, { recursive: true });
  const orphan = cliJson('log', tune);
  assert.equal(orphan.runs.length, 1);
  assert.equal(orphan.runs[0].from.found, 'missing-run');
});

test('export -> import round trip of a tfjs model (cpu backend), identical weights', async () => {
  const { tf } = await loadTf('cpu');
  const dir = tempDir('ckptio-cli-');
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4], activation: 'relu' }), tf.layers.dense({ units: 2 })] });
  const file = path.join(dir, 'model.safetensors');
  await model.save(ioHandler(file));
  const out = path.join(dir, 'tfjs');
  const ex = cli('export', file, out);
  assert.equal(ex.status, 0, ex.stderr);
  assert.match(ex.stdout, /exported .* -> .*model\.json/);
  const modelJson = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
  assert.equal(modelJson.weightsManifest[0].weights.length, 4);
  const back = path.join(dir, 'back.safetensors');
  const im = cli('import', out, back);
  assert.equal(im.status, 0, im.stderr);
  const d = cliJson('diff', file, back);
  assert.equal(d.identical, true, JSON.stringify(d));
  assert.equal(d.common.length, 4);
  const loaded = await tf.loadLayersModel(ioHandler(back));
  const x = tf.tensor2d([[1, 2, 3, 4]]);
  assert.deepEqual(Array.from((loaded.predict(x) as typeof x).dataSync()), Array.from((model.predict(x) as typeof x).dataSync()));
  // Import from a directory without model.json: an I/O error, exit 4.
  const bad = cli('import', path.join(dir, 'nope'), path.join(dir, 'x.safetensors'));
  assert.equal(bad.status, 4, bad.stderr);
  assert.match(bad.stderr, /^ckptio: ENOENT: /);
});

test('inspect: text by default, --json on request; control characters from the file are escaped, never echoed', async () => {
  const dir = tempDir('ckptio-cli-');
  const file = path.join(dir, 'evil.safetensors');
  const evil = `w${ESC}[2J${ESC}]0;pwned${String.fromCharCode(7)}${CSI}31m\u202e`;
  await writeCheckpoint(
    file,
    { [evil]: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } },
    { metadata: { [`note${ESC}[31m`]: `red${ESC}[0m` } },
  );
  const r = cli('inspect', file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^verified\s+yes/m);
  assert.match(r.stdout, /w\\x1b\[2J\\x1b\]0;pwned\\x07\\x9b31m\\u202e\s+float32\s+\[2\]/);
  assert.match(r.stdout, /note\\x1b\[31m = red\\x1b\[0m/);
  const j = cli('inspect', file, '--json');
  assert.equal(j.status, 0);
  for (const out of [r.stdout, j.stdout, cli('diff', file, file).stdout]) {
    // eslint-disable-next-line no-control-regex -- the test looks for raw control characters
    assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/.test(out), `raw control characters in ${JSON.stringify(out)}`);
  }
  const parsed = JSON.parse(j.stdout);
  assert.deepEqual(Object.keys(parsed.tensors), [evil], 'JSON escapes keep the name exact');
  assert.equal(parsed.verified, true);
  // A corrupt file: exit 1, "ckptio: ECKPT_...: message".
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 1]! ^= 0xff;
  fs.writeFileSync(file, bytes);
  const bad = cli('inspect', file);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^ckptio: ECKPT_CHECKSUM: /);
  assert.ok(!bad.stderr.includes(ESC));
  assert.equal(cli('inspect', file, '--no-verify').status, 0);
});
