import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempDir } from './helpers';

test('npm run bench -- --quick runs and produces every figure (values not asserted)', { timeout: 300_000 }, () => {
  const out = tempDir();
  const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'benches', 'run.js'), '--quick', '--out', out], { encoding: 'utf8', env: { ...process.env, CKPTIO_BENCH_DIR: tempDir() } });
  assert.equal(r.status, 0, r.stderr);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as { results: Record<string, Record<string, unknown>> };
  for (const key of ['16MiB:ckptio writeCheckpoint (caller-owned buffers)', '16MiB:raw O_DIRECT 4 MiB blocks + fsync (disk limit)', '16MiB:fs.promises writeFile + fdatasync + rename', '16MiB:load',
    '16MiB:ckptio writeCheckpoint, checksum: false', '16MiB:tfjs-wasm', '16MiB:tfjs-cpu', 'steps:synthetic-wasm:every 10',
    'steps:synthetic-cpu:every 1', 'steps:trainer:every 10', 'steps:trainer:no saves', '16MiB:memory:raw:1', '16MiB:memory:raw-copy:2',
    '16MiB:memory:tfjs-wasm:2', 'compression:trained', 'compression:random-16MiB']) {
    assert.ok(json.results[key], `missing figure ${key}`);
    for (const v of Object.values(json.results[key]!)) assert.ok(v !== null && v !== undefined);
  }
  assert.match(fs.readFileSync(path.join(out, 'RESULTS.md'), 'utf8'), /Machine: .*cores.*Node v/);
});
