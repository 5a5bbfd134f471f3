import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { withoutTestContext } from '../helpers';

// A crash test that cannot fail proves nothing: build the addon without the directory fsync, and without
// the data fsync, and check that the crash-enumeration test reports the loss for each.

const { buildVariant } = require(path.resolve(__dirname, '..', '..', '..', 'scripts', 'build-variant.js')) as {
  buildVariant(name: string, opts?: { quiet?: boolean }): string;
};

for (const variant of ['broken-dir-sync', 'broken-data-sync']) {
  test(`the crash-enumeration test catches a build that skips ${variant.replace('broken-', '')}`, { timeout: 600_000 }, () => {
    const addon = buildVariant(variant, { quiet: true });
    const r = spawnSync(
      process.execPath,
      ['--test', '--test-reporter=spec', '--test-name-pattern=crash at every', path.join(__dirname, '..', 'faults.test.js')],
      {
        env: { ...withoutTestContext(), CKPTIO_ADDON: addon },
        encoding: 'utf8',
      },
    );
    assert.notEqual(r.status, 0, 'the crash test passed against a broken build');
    assert.match(r.stdout, /an acknowledged write was lost|ECKPT_FORMAT|ECKPT_CHECKSUM|got/);
  });
}
