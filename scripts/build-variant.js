#!/usr/bin/env node
// Builds a variant of the addon into its own folder: asan (ASan+UBSan) or a deliberately broken
// one (broken-dir-sync, broken-data-sync) that the reliability tests must catch. Prints the addon path.
// Every variant is a testing build (CKPTIO_TESTING: the fault twin, rawWrite, writerStats), since the tests run
// against it as the process's addon (CKPTIO_ADDON).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const variants = {
  asan: ['--CDCKPTIO_SANITIZE=address,undefined', '--CDCMAKE_BUILD_TYPE=RelWithDebInfo', '--CDCKPTIO_TESTING=ON'],
  'broken-dir-sync': ['--CDCKPTIO_BROKEN=dir-sync', '--CDCKPTIO_TESTING=ON'],
  'broken-data-sync': ['--CDCKPTIO_BROKEN=data-sync', '--CDCKPTIO_TESTING=ON'],
};

function buildVariant(name, { quiet = false } = {}) {
  if (!variants[name]) throw new Error(`unknown variant ${name}; one of ${Object.keys(variants).join(', ')}`);
  const root = path.resolve(__dirname, '..');
  const out = path.join(root, `build-${name}`);
  const addon = path.join(out, 'Release', 'ckptio.node');
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  execFileSync(process.execPath, [cmakeJs, 'compile', '--directory', 'native', '--out', out, ...variants[name]], {
    cwd: root,
    stdio: quiet ? 'pipe' : ['ignore', 'inherit', 'inherit'],
  });
  if (!fs.existsSync(addon)) throw new Error(`build of ${name} produced no ${addon}`);
  return addon;
}

module.exports = { buildVariant };

if (require.main === module) {
  process.stdout.write(buildVariant(process.argv[2] || 'asan') + '\n');
}
