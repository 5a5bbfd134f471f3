import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { withoutTestContext } from './helpers';

const root = path.resolve(__dirname, '..', '..');

test('binding.gyp and native/CMakeLists.txt build the same sources', () => {
  const cmake = fs.readFileSync(path.join(root, 'native', 'CMakeLists.txt'), 'utf8');
  const listed = /set\(CKPTIO_CORE_SOURCES([^)]*)\)/.exec(cmake)![1]!.trim().split(/\s+/).map((s) => `native/${s}`);
  const gyp = JSON.parse(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8')) as { targets: { sources: string[] }[] };
  assert.deepEqual([...gyp.targets[0]!.sources].sort(), ['native/addon.cc', ...listed].sort());
  const onDisk = fs.readdirSync(path.join(root, 'native'), { recursive: true }).map(String).filter((f) => f.endsWith('.cc')).map((f) => `native/${f}`);
  assert.deepEqual(onDisk.sort(), [...gyp.targets[0]!.sources].sort(), 'every .cc file under native/ is built');
});

test('the node-gyp build, when present, passes a round trip', { skip: !fs.existsSync(path.join(root, 'build', 'Release', 'ckptio.node')) && 'no node-gyp build (CI builds one)' }, async () => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--test', path.join(__dirname, 'roundtrip.test.js')], {
    env: { ...withoutTestContext(), CKPTIO_ADDON: path.join(root, 'build', 'Release', 'ckptio.node'), CKPTIO_SKIP_BIG: '1' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
