#!/usr/bin/env node
// npm pack / npm publish run this (the `prepack` script): build the addon with cmake-js and the TypeScript,
// then put the addon where the published package's loader (node-gyp-build) finds it:
// prebuilds/<platform>-<arch>/ckptio.<libc>.node. The libc tag matters: node-gyp-build ignores unknown name
// parts, so an untagged ckptio.node would also be picked on musl (Alpine), where a glibc binary fails to load.
// prebuilds/ is git-ignored: binaries are built from the commit being packed, never committed.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const manifest = path.join(root, 'package.json');
const backup = path.join(root, '.package.json.prepack');

// `postpack`: put the repository's package.json back.
if (process.argv[2] === '--restore') {
  if (fs.existsSync(backup)) fs.renameSync(backup, manifest);
  process.exit(0);
}
// A pack that died between prepack and postpack left the backup: restore it before anything else.
if (fs.existsSync(backup)) fs.renameSync(backup, manifest);

const run = (args) => execFileSync('npm', ['run', '--silent', ...args], { cwd: root, stdio: ['ignore', 2, 2] });

if (!process.env.CKPTIO_PREPACK_NO_BUILD) {
  run(['build:native']);
  run(['build:ts']);
}

// dist/ is never cleaned (tests run from it, and others may be running them): drop compiled files whose source
// is gone, so a removed module is not shipped.
const distSrc = path.join(root, 'dist', 'src');
for (const file of fs.readdirSync(distSrc, { recursive: true })) {
  const m = /^(.*)\.(js|d\.ts|js\.map)$/.exec(file);
  if (!m) continue;
  if (!fs.existsSync(path.join(root, 'src', `${m[1]}.ts`))) {
    fs.rmSync(path.join(distSrc, file));
    process.stderr.write(`prepack: removed stale dist/src/${file}\n`);
  }
}

const libc = fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
const built = path.join(root, 'build-cmake', 'Release', 'ckptio.node');
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const dest = path.join(dir, `ckptio.${libc}.node`);
fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
fs.mkdirSync(dir, { recursive: true });
fs.copyFileSync(built, dest);

// The copy must load and work on its own (not through the dev-tree lookup).
const check = `const a = require(${JSON.stringify(dest)}); class E extends Error {}; a.init(E);
if (typeof a.xxh3(new Uint8Array([1, 2, 3])) !== 'string') throw new Error('xxh3 failed');`;
execFileSync(process.execPath, ['-e', check], { stdio: 'inherit' });
process.stderr.write(`prepack: ${path.relative(root, dest)} (${fs.statSync(dest).size} bytes)\n`);

// Last, so the window is short: the published package.json must not carry `prepare`. It builds the clone on
// `npm install` and never runs for a user installing the package from the registry, but npm 11 lists it as an
// install script for a tarball or git install ("install scripts not yet covered by allowScripts"), and
// `strict-allow-scripts` would refuse it. postpack (`--restore`) puts the original back.
const text = fs.readFileSync(manifest, 'utf8');
const pkg = JSON.parse(text);
if (pkg.scripts && pkg.scripts.prepare) {
  fs.writeFileSync(backup, text);
  delete pkg.scripts.prepare;
  fs.writeFileSync(manifest, JSON.stringify(pkg, null, 2) + '\n');
}
