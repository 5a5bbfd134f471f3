#!/usr/bin/env node
'use strict';
if (process.argv[2] === 'build-addon') {
  // Before the CLI is loaded: the CLI loads the addon, which is what is missing on a platform without a
  // prebuilt binary (docs/packaging.md).
  try {
    require('../scripts/build-from-source.js').main();
  } catch (err) {
    process.stderr.write(`ckptio: ${err && err.message ? err.message : err}\n`);
    process.exit(1);
  }
} else {
  require('../dist/src/cli/main.js')
    .main(process.argv)
    .catch((err) => {
      // One line on stderr and the exit status `ckptio --help` documents (5 for a missing optional package).
      require('../dist/src/cli/commands/output.js').reportError(err);
      process.exit(process.exitCode || 5);
    });
}
