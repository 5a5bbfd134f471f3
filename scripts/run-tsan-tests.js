#!/usr/bin/env node
// npm run test:tsan: builds test/native/writer_concurrency.cc with ThreadSanitizer against the native
// sources and runs it. Node is not instrumented (a TSan addon inside it reports V8's own threads), so the
// writer's concurrency is driven directly: queue, backpressure, shutdown during in-flight saves, the
// O_DIRECT pipeline, the copy pool and the fault twin shared by threads. A testing build (CKPTIO_TESTING): every
// source under io/, format/ and writer/, the fault twin's and the raw writer's included.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'build-tsan');
fs.mkdirSync(out, { recursive: true });
const exe = path.join(out, 'writer_concurrency');
const xxhash = path.join('native', 'third_party', 'xxhash'); // vendored xxhash.h (BSD-2)
const sources = ['io', 'format', 'writer'].flatMap((d) =>
  fs
    .readdirSync(path.join(root, 'native', d))
    .filter((f) => f.endsWith('.cc'))
    .map((f) => path.join('native', d, f)),
);
execFileSync(
  'g++',
  [
    '-std=c++17',
    '-g',
    '-O1',
    '-fsanitize=thread',
    '-fno-omit-frame-pointer',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-Wno-unused-parameter',
    '-DCKPTIO_TESTING',
    '-I',
    'native',
    '-isystem',
    xxhash,
    'test/native/writer_concurrency.cc',
    ...sources,
    '-o',
    exe,
    '-pthread',
  ],
  { cwd: root, stdio: 'inherit' },
);
const r = spawnSync(exe, [], { stdio: 'inherit', env: { ...process.env, TSAN_OPTIONS: 'halt_on_error=1:exitcode=66:second_deadlock_stack=1' } });
process.exit(r.status ?? 1);
