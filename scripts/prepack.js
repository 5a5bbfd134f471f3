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

// The prebuilt addons the package carries, one per platform it installs on without a compiler: the host's own
// build, and linux-arm64 cross-built from linux-x64 with Debian's g++-aarch64-linux-gnu (scripts/arm64-qemu.sh
// tests it under qemu). `machine` is the ELF e_machine the file must have.
const TARGETS = [
  { platform: 'linux', arch: 'x64', libc: 'glibc', build: 'build-cmake', script: 'build:native', machine: 62 },
  { platform: 'linux', arch: 'arm64', libc: 'glibc', build: 'build-arm64', script: 'build:native:arm64', machine: 183, compiler: 'aarch64-linux-gnu-g++' },
];
const hostLibc = fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
const host = { platform: process.platform, arch: process.arch, libc: hostLibc, build: 'build-cmake', script: 'build:native' };
const isHost = (t) => t.platform === host.platform && t.arch === host.arch && t.libc === host.libc;
const onPath = (cmd) => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
// Cross targets are built from linux-x64 glibc only; elsewhere the package carries the host's build alone.
const crossHost = host.platform === 'linux' && host.arch === 'x64' && host.libc === 'glibc';
const targets = [TARGETS.find(isHost) ?? host, ...(crossHost ? TARGETS.filter((t) => !isHost(t)) : [])];
// A tarball without a platform's prebuilt must not be packed unnoticed: a missing cross compiler fails the pack
// unless CKPTIO_PREPACK_PARTIAL=1 says a partial tarball is wanted (a development machine's `npm test`).
const skipped = targets.filter((t) => t.compiler && !onPath(t.compiler));
if (skipped.length > 0) {
  const what = skipped.map((t) => `${t.platform}-${t.arch} needs ${t.compiler}`).join('; ');
  if (process.env.CKPTIO_PREPACK_PARTIAL !== '1') {
    process.stderr.write(
      `prepack: cannot build every prebuilt addon: ${what} (Debian: apt-get install g++-aarch64-linux-gnu). ` +
        'Set CKPTIO_PREPACK_PARTIAL=1 to pack without them.\n',
    );
    process.exit(1);
  }
  process.stderr.write(
    `prepack: WARNING: packing without ${skipped.map((t) => `prebuilds/${t.platform}-${t.arch}/`).join(', ')} (${what}; CKPTIO_PREPACK_PARTIAL=1)\n`,
  );
}
const built = targets.filter((t) => !skipped.includes(t));

if (!process.env.CKPTIO_PREPACK_NO_BUILD) {
  for (const t of built) run([t.script]);
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

// prebuilds/<platform>-<arch>/ckptio.<libc>.node, where node-gyp-build looks.
fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
for (const t of built) {
  const dir = path.join(root, 'prebuilds', `${t.platform}-${t.arch}`);
  const dest = path.join(dir, `ckptio.${t.libc}.node`);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(root, t.build, 'Release', 'ckptio.node'), dest);
  if (t.machine !== undefined) {
    const header = Buffer.alloc(20);
    const fd = fs.openSync(dest, 'r');
    fs.readSync(fd, header, 0, 20, 0);
    fs.closeSync(fd);
    const machine = header.readUInt16LE(18);
    if (header.readUInt32BE(0) !== 0x7f454c46 || machine !== t.machine) {
      process.stderr.write(`prepack: ${dest} is not an ELF file for ${t.arch} (e_machine ${machine}, expected ${t.machine})\n`);
      process.exit(1);
    }
  }
  if (isHost(t)) {
    // The host's copy must load and work on its own (not through the dev-tree lookup).
    const check = `const a = require(${JSON.stringify(dest)}); class E extends Error {}; a.init(E);
if (typeof a.xxh3(new Uint8Array([1, 2, 3])) !== 'string') throw new Error('xxh3 failed');`;
    execFileSync(process.execPath, ['-e', check], { stdio: 'inherit' });
  }
  process.stderr.write(`prepack: ${path.relative(root, dest)} (${fs.statSync(dest).size} bytes)\n`);
}

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
