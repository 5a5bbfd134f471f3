import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { withoutTestContext } from './helpers';

const root = path.resolve(__dirname, '..', '..');

test('binding.gyp and native/CMakeLists.txt build the same sources', () => {
  const cmake = fs.readFileSync(path.join(root, 'native', 'CMakeLists.txt'), 'utf8');
  const list = (name: string) =>
    new RegExp(`set\\(${name}([^)]*)\\)`)
      .exec(cmake)![1]!
      .trim()
      .split(/\s+/)
      .map((s) => `native/${s}`);
  const release = [...list('CKPTIO_ADDON_SOURCES'), ...list('CKPTIO_CORE_SOURCES')];
  const testingOnly = list('CKPTIO_TESTING_SOURCES');
  const gyp = JSON.parse(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8')) as { targets: { sources: string[] }[] };
  // binding.gyp builds the release addon: exactly the release sources, none of the testing variant's.
  assert.deepEqual([...gyp.targets[0]!.sources].sort(), release.sort());
  assert.deepEqual(
    testingOnly.filter((f) => release.includes(f)),
    [],
    'a testing source is also a release source',
  );
  const onDisk = fs
    .readdirSync(path.join(root, 'native'), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.cc'))
    .map((f) => `native/${f}`);
  assert.deepEqual(onDisk.sort(), [...release, ...testingOnly].sort(), 'every .cc file under native/ is built (release or testing variant)');
});

// The hooks only the testing variant may export; everything else is the release API.
const TESTING_HOOKS = ['faults', 'rawWrite', 'writerStats'];
const cmakeAddon = path.join(root, 'build-cmake', 'Release', 'ckptio.node');
const testingAddon = path.join(root, 'build-cmake-testing', 'Release', 'ckptio.node');

test('the release addon exports no testing hooks; the testing build is the release exports plus exactly them', () => {
  // Both are what `npm install` (scripts/prepare.js) builds; a missing one is a failure, not a skip.
  for (const f of [cmakeAddon, testingAddon]) assert.ok(fs.existsSync(f), `${f} is missing: npm run build:native && npm run build:native:testing`);

  const release = Object.keys(require(cmakeAddon) as object).sort();
  for (const hook of TESTING_HOOKS) assert.ok(!release.includes(hook), `the release addon exports ${hook}`);

  const testingExports = Object.keys(require(testingAddon) as object).sort();
  assert.deepEqual(testingExports, [...release, ...TESTING_HOOKS].sort());
  // The node-gyp build (release only), when present and fresh.
  if (!gypSkip()) {
    assert.deepEqual(Object.keys(require(gypAddon) as object).sort(), release, 'the node-gyp build exports what the cmake release build does');
  }
});

const gypAddon = path.join(root, 'build', 'Release', 'ckptio.node');
/** Why the node-gyp round trip is skipped: no build, or one older than the sources (CI rebuilds it first). */
function gypSkip(): string | false {
  if (!fs.existsSync(gypAddon)) return 'no node-gyp build (.ci/run builds one: npm run build:native:gyp)';
  const built = fs.statSync(gypAddon).mtimeMs;
  const sources = fs
    .readdirSync(path.join(root, 'native'), { recursive: true })
    .map(String)
    .filter((f) => /\.(cc|h)$/.test(f));
  const newer = sources.filter((f) => fs.statSync(path.join(root, 'native', f)).mtimeMs > built);
  return newer.length ? `the node-gyp build is older than ${newer.join(', ')}: run npm run build:native:gyp` : false;
}

test('the node-gyp build, when present, passes a round trip', { skip: gypSkip() }, async () => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--test', path.join(__dirname, 'roundtrip.test.js')], {
    env: { ...withoutTestContext(), CKPTIO_ADDON: path.join(root, 'build', 'Release', 'ckptio.node'), CKPTIO_SKIP_BIG: '1' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('testing() in a process whose addon is the release build, and CKPTIO_TESTING=1 without a testing build, fail with the command that builds it', () => {
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const probe = `const n = require(${JSON.stringify(path.join(root, 'dist', 'src', 'binding', 'native.js'))});
    try { n.testing(); console.log(JSON.stringify({ ok: true })); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
  const env = withoutTestContext();
  delete env.CKPTIO_ADDON;
  delete env.CKPTIO_TESTING;
  delete env.CKPTIO_TESTING_ADDON;
  const release = spawnSync(process.execPath, ['-e', probe], { env, encoding: 'utf8' });
  const r = JSON.parse(release.stdout) as { code: string; message: string };
  assert.equal(r.code, 'ECKPT_INTERNAL', release.stdout + release.stderr);
  assert.match(r.message, /release build.*no testing hooks.*CKPTIO_TESTING=1.*npm run build:native:testing/);
  const testingRun = spawnSync(process.execPath, ['-e', probe], { env: { ...env, CKPTIO_TESTING: '1' }, encoding: 'utf8' });
  assert.deepEqual(JSON.parse(testingRun.stdout), { ok: true }, testingRun.stderr);
  const absent = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(root, 'dist', 'src', 'binding', 'native.js'))})`], {
    env: { ...env, CKPTIO_TESTING: '1', CKPTIO_TESTING_ADDON: path.join(root, 'no-such-build', 'ckptio.node') },
    encoding: 'utf8',
  });
  assert.notEqual(absent.status, 0);
  assert.match(absent.stderr, /testing addon is not built.*build it with npm run build:native:testing/);
});
