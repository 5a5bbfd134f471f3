import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { withoutTestContext } from './helpers';

const root = path.resolve(__dirname, '..', '..');

test('binding.gyp and native/CMakeLists.txt build the same sources', () => {
  const cmake = fs.readFileSync(path.join(root, 'native', 'CMakeLists.txt'), 'utf8');
  const list = (name: string) => new RegExp(`set\\(${name}([^)]*)\\)`).exec(cmake)![1]!.trim().split(/\s+/).map((s) => `native/${s}`);
  const listed = [...list('CKPTIO_ADDON_SOURCES'), ...list('CKPTIO_CORE_SOURCES')];
  const gyp = JSON.parse(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8')) as { targets: { sources: string[] }[] };
  assert.deepEqual([...gyp.targets[0]!.sources].sort(), listed.sort());
  const onDisk = fs.readdirSync(path.join(root, 'native'), { recursive: true }).map(String).filter((f) => f.endsWith('.cc')).map((f) => `native/${f}`);
  assert.deepEqual(onDisk.sort(), [...gyp.targets[0]!.sources].sort(), 'every .cc file under native/ is built');
});

const gypAddon = path.join(root, 'build', 'Release', 'ckptio.node');
/** Why the node-gyp round trip is skipped: no build, or one older than the sources (CI rebuilds it first). */
function gypSkip(): string | false {
  if (!fs.existsSync(gypAddon)) return 'no node-gyp build (.ci/run builds one: npm run build:native:gyp)';
  const built = fs.statSync(gypAddon).mtimeMs;
  const sources = fs.readdirSync(path.join(root, 'native'), { recursive: true }).map(String).filter((f) => /\.(cc|h)$/.test(f));
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
