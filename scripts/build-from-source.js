#!/usr/bin/env node
// Builds the native addon from the sources the package ships (native/), for a platform without a prebuilt
// binary: `npx ckptio build-addon` (or `node node_modules/ckptio/scripts/build-from-source.js`). Needs a C++17
// compiler and cmake >= 3.15. cmake-js and node-addon-api are development dependencies of ckptio, so outside its
// own repository they are fetched from npm into a temporary folder (no install scripts; nothing else is
// downloaded: cmake-js builds against the node-api-headers package, not Node's headers from the web).
// The result, build-cmake/Release/ckptio.node inside the package, is what the loader tries first.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function resolveFrom(dir, request) {
  try {
    return require.resolve(request, { paths: [dir] });
  } catch {
    return undefined;
  }
}

function main() {
  const missing = [];
  if (!onPath('cmake')) missing.push('cmake (>= 3.15)');
  if (!['c++', 'g++', 'clang++'].some(onPath)) missing.push('a C++17 compiler (g++ or clang++)');
  if (missing.length) {
    throw new Error(`building ckptio from source needs ${missing.join(' and ')}; e.g. apt-get install g++ cmake, then run this again`);
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  let cmakeJs = resolveFrom(root, 'cmake-js/bin/cmake-js');
  let addonApi = resolveFrom(root, 'node-addon-api/package.json');
  let tmp;
  if (!cmakeJs || !addonApi) {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-build-'));
    fs.writeFileSync(path.join(tmp, 'package.json'), '{"private":true}\n');
    const want = ['cmake-js', 'node-addon-api', 'node-api-headers'].map((n) => `${n}@${pkg.devDependencies[n]}`);
    process.stderr.write(`ckptio: fetching ${want.join(' ')} into ${tmp}\n`);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts', ...want], {
      cwd: tmp,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [tmp] });
    addonApi = require.resolve('node-addon-api/package.json', { paths: [tmp] });
  }
  const out = path.join(root, 'build-cmake');
  execFileSync(
    process.execPath,
    [cmakeJs, 'compile', '--directory', path.join(root, 'native'), '--out', out, `--CDNODE_ADDON_API_DIR=${path.dirname(addonApi)}`],
    { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const addon = path.join(out, 'Release', 'ckptio.node');
  execFileSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], { stdio: 'inherit' });
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  process.stdout.write(`ckptio: built ${addon}; it is found before any prebuilt binary\n`);
}

module.exports = { main };

if (require.main === module) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`ckptio: ${err && err.message ? err.message : err}\n`);
    process.exit(1);
  }
}
