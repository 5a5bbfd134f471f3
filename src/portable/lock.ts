/** The portable run lock. Node's `fs` has no open-file-description lock, so the portable writer holds a run
 * directory with a file of its own, `<lock file>.held`, created exclusively (O_EXCL) and holding the holder's text
 * (pid, host, start). Its mtime is a lease the writer thread touches every LEASE_REFRESH_MS. A held file is stale,
 * and taken over, when its holder is on this host and its pid is gone, or when its lease is older than LEASE_MS
 * (a holder on another host that stopped). docs/portable.md states what this does not cover. */
import * as fs from 'node:fs';
import * as os from 'node:os';

export const LEASE_REFRESH_MS = 5_000;
export const LEASE_MS = 30_000;

export function heldFile(lockPath: string): string {
  return `${lockPath}.held`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why an existing held file no longer holds, or null while it does. */
function staleness(text: string, mtimeMs: number): string | null {
  let holder: { pid?: unknown; host?: unknown } = {};
  try {
    holder = JSON.parse(text) as typeof holder;
  } catch {
    /* unreadable: only its lease decides */
  }
  if (holder.host === os.hostname() && typeof holder.pid === 'number' && holder.pid !== process.pid && !alive(holder.pid)) {
    return `its holder, pid ${holder.pid} on this host, is gone`;
  }
  const age = Date.now() - mtimeMs;
  if (age > LEASE_MS) return `its lease expired ${Math.round(age / 1000)} s ago`;
  return null;
}

/** Takes the lock or says who holds it. Throws fs errors (ENOENT for a missing directory, ...). */
export function acquire(lockPath: string, holder: string): { locked: false; file: string; takenOver?: string } | { locked: true; holder: string } {
  const file = heldFile(lockPath);
  let takenOver: string | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (fs.constants.O_NOFOLLOW ?? 0), 0o644);
      try {
        fs.writeSync(fd, holder);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return takenOver === undefined ? { locked: false, file } : { locked: false, file, takenOver };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let text: string;
    let mtimeMs: number;
    try {
      text = fs.readFileSync(file, 'utf8');
      mtimeMs = fs.statSync(file).mtimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw err;
    }
    const stale = staleness(text, mtimeMs);
    if (stale === null || attempt > 0) return { locked: true, holder: text };
    takenOver = stale;
    fs.rmSync(file, { force: true });
  }
  return { locked: true, holder: '' };
}

/** Removes the held file if it is still this holder's. */
export function release(file: string, holder: string): void {
  try {
    if (fs.readFileSync(file, 'utf8') === holder) fs.unlinkSync(file);
  } catch {
    /* already gone, or taken over after an expired lease: not ours to remove */
  }
}
