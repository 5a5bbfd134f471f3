/** The layout of a checkpoint directory: `ckpt-<step>.safetensors` files, `latest` and `best` pointer files
 * (JSON, written through the same commit protocol), and our own stale temporary files to clean up. */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const POINTER_LATEST = 'latest';
export const POINTER_BEST = 'best';
const CHECKPOINT_RE = /^ckpt-(\d{10})\.safetensors$/;
const TEMP_RE = /\.tmp\.(\d+)\.[0-9a-f]{8}$/;

export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(10, '0')}.safetensors`;
}

export function stepOf(name: string): number | null {
  const m = CHECKPOINT_RE.exec(name);
  return m ? Number(m[1]) : null;
}

export interface Pointer {
  step: number;
  file: string;
  metric?: number;
}

/** Checkpoint files present in `dir`, newest step first. */
export async function listCheckpoints(dir: string): Promise<{ step: number; file: string }[]> {
  const names = await fs.promises.readdir(dir);
  return names
    .map((file) => ({ step: stepOf(file), file }))
    .filter((e): e is { step: number; file: string } => e.step !== null)
    .sort((a, b) => b.step - a.step);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temporary files left by crashed writers (of any process that is no longer alive). Returns them. */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.promises.readdir(dir)) {
    const m = TEMP_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    await fs.promises.unlink(path.join(dir, name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    removed.push(name);
  }
  return removed;
}

export async function readPointer(dir: string, name: string): Promise<Pointer | null> {
  let text: string;
  try {
    text = await fs.promises.readFile(path.join(dir, name), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const p = JSON.parse(text) as Pointer;
    return typeof p.step === 'number' && typeof p.file === 'string' ? p : null;
  } catch {
    return null;
  }
}
