import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from './helpers';
import { killLoop } from './soak/killloop';

test('kill -9 loop: 25 SIGKILLs, nothing acknowledged lost, nothing invalid, final weights byte-identical', { timeout: 900_000 }, async () => {
  const r = await killLoop({ dir: tempDir(), kills: 25, steps: 2500, backend: 'wasm' });
  assert.ok(r.kills >= 25, `kills: ${r.kills}`);
  assert.equal(r.lostAcknowledged, 0);
  assert.equal(r.invalidLoaded, 0);
  assert.ok(r.restarts > r.kills);
  assert.equal(r.finalEqual, true);
});
