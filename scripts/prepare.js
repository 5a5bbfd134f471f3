#!/usr/bin/env node
// `prepare`: npm runs it on `npm install` in a clone of the repository (never for a user installing the package),
// so a fresh clone gets from `npm install` alone what the tests need: the release addon (build-cmake/), the
// testing one with the test hooks (build-cmake-testing/, -DCKPTIO_TESTING=ON) and dist/ (`npm run build`). npm also runs it while packing, after
// `prepack` (scripts/prepack.js) has just built everything: skip the second build then.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

if (['pack', 'publish'].includes(process.env.npm_command)) process.exit(0);
execFileSync('npm', ['run', 'build'], { cwd: path.resolve(__dirname, '..'), stdio: 'inherit' });
