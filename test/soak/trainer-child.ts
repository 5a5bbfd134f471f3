/** Runs the ckptio CLI's trainer as a child process, for resume and kill -9 tests. */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';

import { CLI } from '../helpers';

export { CLI };

export const SMALL = ['--epochs', '8', '--layers', '32', '--batch', '32', '--train-limit', '640', '--warmup', '10', '--eval-every', '10', '--log', 'json'];

export interface TrainEventLine {
  event: string;
  step?: number;
  path?: string;
  resumedFrom?: number | null;
}

export function runTrainer(args: string[]): TrainEventLine[] {
  // A long reference run prints tens of MB of event lines; spawnSync's default 1 MiB cap would kill it.
  const r = spawnSync(process.execPath, [CLI, 'train', ...args], { encoding: 'utf8', maxBuffer: 2 ** 30 });
  if (r.status !== 0) throw new Error(`trainer exited ${r.status}: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as TrainEventLine);
}

export interface Killed {
  events: TrainEventLine[];
  killed: boolean;
}

/** Starts the trainer and SIGKILLs it `delayMs` after its first line, or after its first `step` line at or past
 * `afterStep` when given (or lets it finish: delayMs null). */
export function runAndKill(args: string[], delayMs: number | null, afterStep?: number): Promise<Killed> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [CLI, 'train', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | null = null;
    let killed = false;
    const reached = () =>
      afterStep === undefined ||
      out
        .split('\n')
        .slice(0, -1)
        .some((l) => {
          const m = /^\{"event":"step","step":(\d+)/.exec(l);
          return m !== null && Number(m[1]) >= afterStep;
        });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (delayMs !== null && !timer && reached()) {
        timer = setTimeout(() => {
          killed = child.kill('SIGKILL');
        }, delayMs);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (code !== 0 && signal !== 'SIGKILL') return reject(new Error(`trainer exited ${code}: ${err}`));
      const events = out
        .split('\n')
        .filter((l) => l.trim().startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l) as TrainEventLine;
          } catch {
            return null; // a line cut by the kill
          }
        })
        .filter((e): e is TrainEventLine => e !== null);
      resolve({ events, killed: killed && signal === 'SIGKILL' });
    });
  });
}
