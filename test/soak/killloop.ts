/** The kill -9 loop: train with a save every step, SIGKILL at random moments, restart with resume, and check
 * that nothing acknowledged as durable is lost, that every restart resumes, and that the final weights equal
 * an uninterrupted run's byte for byte. Used by test/killloop.test.ts and `npm run soak`. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCheckpoint } from '../../src/format/file';
import { listCheckpoints } from '../../src/checkpoint/directory';
import { runAndKill, runTrainer, SMALL } from './trainer-child';

export interface KillLoopResult {
  kills: number;
  restarts: number;
  lostAcknowledged: number;
  invalidLoaded: number;
  finalEqual: boolean;
  maxAcked: number;
}

export async function killLoop(opts: { dir: string; kills: number; steps: number; backend: string; seed?: number; log?: (m: string) => void }): Promise<KillLoopResult> {
  const args = [...SMALL, '--steps', String(opts.steps), '--save-every', '1', '--keep-last', '3', '--backend', opts.backend];
  const refDir = path.join(opts.dir, 'reference');
  const runDir = path.join(opts.dir, 'killed');
  runTrainer([...args, '--dir', refDir]);
  let seed = opts.seed ?? 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const result: KillLoopResult = { kills: 0, restarts: 0, lostAcknowledged: 0, invalidLoaded: 0, finalEqual: false, maxAcked: -1 };
  while (true) {
    const killNow = result.kills < opts.kills;
    const { events, killed } = await runAndKill([...args, '--dir', runDir], killNow ? Math.floor(rand() * 300) : null);
    const start = events.find((e) => e.event === 'start');
    if (start) {
      result.restarts++;
      const from = start.resumedFrom ?? -1;
      if (result.maxAcked >= 0 && from < result.maxAcked) {
        result.lostAcknowledged++;
        opts.log?.(`restart resumed from ${from} but step ${result.maxAcked} had been acknowledged durable`);
      }
    }
    for (const e of events) if (e.event === 'durable' && e.step !== undefined) result.maxAcked = Math.max(result.maxAcked, e.step);
    if (killed) result.kills++;
    if (!killed && events.some((e) => e.event === 'done')) break;
    if (result.kills % 50 === 0 && killed) opts.log?.(`${result.kills} kills, newest acknowledged step ${result.maxAcked}`);
  }
  // Every checkpoint the directory still has must validate (a torn one would have been loadable otherwise).
  for (const { file } of await listCheckpoints(runDir)) {
    try {
      await readCheckpoint(path.join(runDir, file));
    } catch {
      result.invalidLoaded++;
    }
  }
  const last = (d: string) => path.join(d, `ckpt-${String(opts.steps).padStart(10, '0')}.safetensors`);
  const [a, b] = [await readCheckpoint(last(refDir)), await readCheckpoint(last(runDir))];
  result.finalEqual = Object.keys(a.tensors).length > 0 && Object.entries(a.tensors).every(([k, t]) => {
    const u = b.tensors[k];
    return !!u && Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength));
  });
  fs.rmSync(opts.dir, { recursive: true, force: true });
  return result;
}
