/** The kill -9 loop: train with a save every step, SIGKILL at random moments, restart with resume, and check
 * that nothing acknowledged as durable is lost, that every restart resumes, and that the final weights equal
 * an uninterrupted run's byte for byte. Used by test/killloop.test.ts and `npm run soak`. */
import '../../src/platform/node';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCheckpoint } from '../../src/format/file';
import { listCheckpoints } from '../../src/checkpoint/directory';
import { runAndKill, runTrainer, SMALL } from './trainer-child';
import { checkpointName } from '../../src/checkpoint/names';

export interface KillLoopResult {
  kills: number;
  /** Trainer processes started (every one is either killed or runs to the end). */
  runs: number;
  /** Runs that printed their start event (a run killed during start-up may not have). */
  restarts: number;
  /** Killed before the start event: during start-up (stale-file removal, loadLatest, the restore). */
  killedBeforeStart: number;
  lostAcknowledged: number;
  invalidLoaded: number;
  finalEqual: boolean;
  maxAcked: number;
  /** Per kill: the last step the killed run reported (-1: none) and the step the next run resumed from. */
  killedAt: { lastStep: number; resumedFrom: number | null }[];
}

export interface KillLoopOptions {
  dir: string;
  kills: number;
  steps: number;
  backend: string;
  seed?: number;
  log?: (m: string) => void;
  /** Trainer flags other than --steps/--save-every/--keep-last/--backend/--dir (default SMALL). */
  trainArgs?: string[];
  /** A checkpoint every N steps (default 1). */
  saveEvery?: number;
  /** Each kill lands uniformly within this many ms after the run's first line (default 300). */
  maxDelayMs?: number;
  /** Spread the kills over the run: kill i waits for a step line in the i-th of kills + 1 equal stretches of
   * the steps (a random step within it), then maxDelayMs as above. For slow steps (webgpu in software), where a
   * delay after the first line alone would keep every kill near the start. */
  spread?: boolean;
  /** With spread: every Nth kill lands within maxDelayMs of the run's first line instead, inside its start-up. */
  startupKillEvery?: number;
}

export async function killLoop(opts: KillLoopOptions): Promise<KillLoopResult> {
  const args = [
    ...(opts.trainArgs ?? SMALL),
    '--steps',
    String(opts.steps),
    '--save-every',
    String(opts.saveEvery ?? 1),
    '--keep-last',
    '3',
    '--backend',
    opts.backend,
  ];
  const refDir = path.join(opts.dir, 'reference');
  const runDir = path.join(opts.dir, 'killed');
  runTrainer([...args, '--dir', refDir]);
  let seed = opts.seed ?? 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const result: KillLoopResult = {
    kills: 0,
    runs: 0,
    restarts: 0,
    killedBeforeStart: 0,
    lostAcknowledged: 0,
    invalidLoaded: 0,
    finalEqual: false,
    maxAcked: -1,
    killedAt: [],
  };
  const maxDelayMs = opts.maxDelayMs ?? 300;
  let lastKillStep: number | null = null; // the killed run's last step, until the next run says where it resumed
  while (true) {
    const killNow = result.kills < opts.kills;
    const stretch = opts.steps / (opts.kills + 1);
    const inStartup = opts.startupKillEvery !== undefined && (result.kills + 1) % opts.startupKillEvery === 0;
    const afterStep = opts.spread && killNow && !inStartup ? Math.floor(stretch * result.kills + 1 + rand() * stretch) : undefined;
    const { events, killed } = await runAndKill([...args, '--dir', runDir], killNow ? Math.floor(rand() * maxDelayMs) : null, afterStep);
    result.runs++;
    const start = events.find((e) => e.event === 'start');
    if (!start && killed) result.killedBeforeStart++;
    if (start) {
      result.restarts++;
      const from = start.resumedFrom ?? -1;
      opts.log?.(
        `run ${result.restarts}: resumed from ${start.resumedFrom ?? 'nothing'} (${start.path ?? '-'}), newest acknowledged before it ${result.maxAcked}`,
      );
      if (lastKillStep !== null) result.killedAt.push({ lastStep: lastKillStep, resumedFrom: start.resumedFrom ?? null });
      lastKillStep = null;
      if (result.maxAcked >= 0 && from < result.maxAcked) {
        result.lostAcknowledged++;
        opts.log?.(`restart resumed from ${from} but step ${result.maxAcked} had been acknowledged durable`);
      }
    }
    for (const e of events) if (e.event === 'durable' && e.step !== undefined) result.maxAcked = Math.max(result.maxAcked, e.step);
    if (killed) {
      result.kills++;
      const steps = events.filter((e) => e.event === 'step').map((e) => e.step ?? -1);
      lastKillStep = steps.length ? steps[steps.length - 1]! : -1;
    }
    if (!killed && events.some((e) => e.event === 'done')) break;
    if (result.kills % 50 === 0 && killed) opts.log?.(`${result.kills} kills, newest acknowledged step ${result.maxAcked}`);
  }
  // Every checkpoint the directory still has must validate (a torn one would have been loadable otherwise).
  for (const { file } of await listCheckpoints(runDir)) {
    try {
      await readCheckpoint(path.join(runDir, file));
    } catch (e) {
      result.invalidLoaded++;
      opts.log?.(`${file} does not validate: ${(e as Error).message}`);
    }
  }
  const last = (d: string) => path.join(d, checkpointName(opts.steps));
  const [a, b] = [await readCheckpoint(last(refDir)), await readCheckpoint(last(runDir))];
  result.finalEqual =
    Object.keys(a.tensors).length > 0 &&
    Object.entries(a.tensors).every(([k, t]) => {
      const u = b.tensors[k];
      const same =
        !!u && Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength));
      if (!same) opts.log?.(`tensor ${k} differs from the uninterrupted run's`);
      return same;
    });
  fs.rmSync(opts.dir, { recursive: true, force: true });
  return result;
}
