import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

// The writer's concurrency tests under ThreadSanitizer (scripts/run-tsan-tests.js explains why they run
// outside Node). A data race, a failed check or a build error fails this test.
test('writer concurrency under ThreadSanitizer: queue, backpressure, shutdown during in-flight saves', { timeout: 600_000 }, () => {
  const r = spawnSync(process.execPath, [path.resolve(__dirname, '..', '..', '..', 'scripts', 'run-tsan-tests.js')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr.slice(-6000)}`);
  assert.doesNotMatch(r.stderr, /ThreadSanitizer/);
  assert.match(r.stdout, /all checks passed/);
});
