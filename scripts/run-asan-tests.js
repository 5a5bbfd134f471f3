#!/usr/bin/env node
// npm run test:asan: builds the addon with ASan+UBSan and runs the native-facing tests against it.
// Node itself is not instrumented, so the ASan runtime is preloaded; leak checking is off because Node
// keeps allocations alive until exit by design (the fuzz target checks leaks in the parser instead).
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const path = require('node:path');
const { buildVariant } = require('./build-variant');

const addon = buildVariant('asan');
const libasan = execFileSync('g++', ['-print-file-name=libasan.so']).toString().trim();
const tests = [
  'roundtrip',
  'malformed',
  'args',
  'faults',
  'eventloop',
  'checkpointer',
  'retention',
  'manifest',
  'lock',
  'save-crash',
  'dedup',
  'checkpointer-regressions',
  'format-codec',
  'history',
].map((t) => path.join(__dirname, '..', 'dist', 'test', `${t}.test.js`));
// A renamed test must be renamed here too: a missing one fails the run instead of leaving it uncovered.
const missing = tests.filter((f) => !require('node:fs').existsSync(f));
if (missing.length) {
  console.error(`test:asan: missing ${missing.join(', ')} (build the TypeScript first, or update this list)`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...tests], {
  stdio: 'inherit',
  env: {
    ...process.env,
    CKPTIO_ADDON: addon,
    CKPTIO_SKIP_BIG: '1',
    LD_PRELOAD: libasan,
    ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1:halt_on_error=1',
    UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
  },
});
process.exit(r.status ?? 1);
