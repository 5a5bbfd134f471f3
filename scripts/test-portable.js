#!/usr/bin/env node
// `npm run test:portable`: the writer-facing tests on the portable writer (CKPTIO_WRITER=portable; docs/portable.md
// lists them and why each). Extra arguments go to node --test.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const tests = [
  'roundtrip.test.js',
  'strace.test.js',
  'reliability/strace-inject.test.js',
  'reliability/powerloss.test.js',
  'killloop.test.js',
  'lock.test.js',
  'signal.test.js',
  'portable-writer.test.js',
].map((t) => path.join(root, 'dist', 'test', t));
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...process.argv.slice(2), ...tests], {
  stdio: 'inherit',
  env: { ...process.env, CKPTIO_WRITER: 'portable' },
});
process.exit(r.status ?? 1);
