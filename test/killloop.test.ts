import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from './helpers';
import { killLoop } from './soak/killloop';

// CKPTIO_KILLS shortens the loop where a process start is slow (linux-arm64 under qemu: scripts/arm64-qemu.sh).
const KILLS = Number(process.env.CKPTIO_KILLS ?? 25);

test(`kill -9 loop: ${KILLS} SIGKILLs, nothing acknowledged lost, nothing invalid, final weights byte-identical`, { timeout: 1_800_000 }, async (t) => {
  const log: string[] = [];
  // Kill i lands at a random step of the i-th of KILLS + 1 stretches of the 100 x KILLS steps, then up to 300 ms later (inside a
  // step, a save or an eval); every 5th lands within 300 ms of the run's first line instead (its start-up:
  // stale-file removal, loadLatest, the restore), where it may come before the start event.
  const r = await killLoop({ dir: tempDir(), kills: KILLS, steps: 100 * KILLS, backend: 'wasm', spread: true, startupKillEvery: 5, log: (m) => log.push(m) });
  // Everything the loop saw goes into each failure message: a failure in CI is then diagnosable from its log.
  const seen = `\n${JSON.stringify(r)}\n${log.join('\n')}`;
  t.diagnostic(
    `${r.kills} kills (${r.killedBeforeStart} before the start event), ${r.runs} runs; per kill, last step reported and where the next run resumed: ${JSON.stringify(r.killedAt)}`,
  );
  assert.ok(r.kills >= KILLS, `kills: ${r.kills}${seen}`);
  assert.equal(r.runs, r.kills + 1, `every run but the last was killed${seen}`);
  assert.equal(r.restarts + r.killedBeforeStart, r.runs, `every run printed its start event or was killed before it${seen}`);
  assert.ok(
    r.killedAt.filter((k) => k.lastStep >= 100).length >= Math.floor(0.6 * KILLS),
    `the kills are spread over the run, not all in its first steps${seen}`,
  );
  assert.equal(r.lostAcknowledged, 0, `acknowledged steps lost${seen}`);
  assert.equal(r.invalidLoaded, 0, `checkpoints that do not validate${seen}`);
  assert.equal(r.finalEqual, true, `final weights differ from the uninterrupted run's${seen}`);
});
