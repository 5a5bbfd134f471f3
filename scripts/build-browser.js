#!/usr/bin/env node
// Bundles the browser entry (src/browser.ts) and its writer worker (src/store/opfs/worker.ts) as ESM, side by side
// in dist/browser/ (the entry finds the worker at ./opfs-worker.mjs beside itself). platform 'browser': a Node
// built-in anywhere in either tree fails the build, which is how the checkpoint layer is kept free of Node.
// @tensorflow/tfjs stays an import of the page's own tfjs; hash-wasm is bundled into the worker.
'use strict';
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.join(__dirname, '..');
const out = path.join(root, 'dist', 'browser');

async function main() {
  const common = { bundle: true, format: 'esm', platform: 'browser', target: 'es2022', sourcemap: true, logLevel: 'warning', absWorkingDir: root };
  await esbuild.build({ ...common, entryPoints: ['src/browser.ts'], outfile: path.join(out, 'ckptio.mjs'), external: ['@tensorflow/tfjs'] });
  await esbuild.build({ ...common, entryPoints: ['src/store/opfs/worker.ts'], outfile: path.join(out, 'opfs-worker.mjs') });
}

main().catch((err) => {
  console.error(`build-browser: ${err.message}`);
  process.exit(1);
});
