/** The portable run lock. Node's `fs` has no open-file-description lock, so the portable writer holds a run
 * directory with a file of its own, `<lock file>.held`, created exclusively (O_EXCL) and holding the holder's text
 * (pid, host, start). Its mtime is a lease the writer thread touches every LEASE_REFRESH_MS. A held file is stale,
 * and taken over, when its holder is on this host and its pid is gone, or when its lease is older than LEASE_MS
 * (a holder on another host that stopped). docs/portable.md states what this does not cover. */
import * as fs from 'node:fs';
import * as os from 'node:os';

export const LEASE_REFRESH_MS = 5_000;
export const LEASE_MS = 60_000;

/** Held files this process holds (a second Checkpointer on the same directory in this process is refused too). */
const heldHere = new Set<string>();

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

/** Why an existing held file no longer holds, or null while it does. On this host only the pid decides (a live
 * holder keeps its lock however long a save takes); a holder on another host holds while its lease is fresh. */
function staleness(file: string, text: string, mtimeMs: number): string | null {
  let holder: { pid?: unknown; host?: unknown } = {};
  try {
    holder = JSON.parse(text) as typeof holder;
  } catch {
    /* unreadable (a holder that died while writing it): only its lease decides */
  }
  if (holder.host === os.hostname() && typeof holder.pid === 'number') {
    if (holder.pid === process.pid) return heldHere.has(file) ? null : `it names this pid (${holder.pid}) from an earlier process`;
    return alive(holder.pid) ? null : `its holder, pid ${holder.pid} on this host, is gone`;
  }
  const age = Date.now() - mtimeMs;
  if (age > LEASE_MS) return `its lease expired ${Math.round(age / 1000)} s ago`;
  return null;
}

/** Takes the lock or says who holds it. The holder's text also goes into the lock file itself, where readers of a
 * run's holder (a sharded run's coordinator record) look, as with the native lock. Throws fs errors. */
export function acquire(lockPath: string, holder: string): { locked: false; file: string; takenOver?: string } | { locked: true; holder: string } {
  const file = heldFile(lockPath);
  let takenOver: string | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (fs.constants.O_NOFOLLOW ?? 0), 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let text: string;
      let mtimeMs: number;
      try {
        text = fs.readFileSync(file, 'utf8');
        mtimeMs = fs.statSync(file).mtimeMs;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
        throw e;
      }
      const stale = staleness(file, text, mtimeMs);
      if (stale === null || attempt > 0) return { locked: true, holder: text };
      // Move the stale file aside under a name of our own, then check it is the one judged: a rival may have
      // taken it over meanwhile, and its fresh file must not be removed.
      const aside = `${file}.stale.${process.pid}.${Date.now()}`;
      try {
        fs.renameSync(file, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      if (fs.readFileSync(aside, 'utf8') !== text) {
        try {
          fs.linkSync(aside, file); // put the rival's file back, unless yet another holder exists
        } catch {
          /* someone holds it now: the next attempt reads them */
        }
        fs.rmSync(aside, { force: true });
        continue;
      }
      fs.rmSync(aside, { force: true });
      takenOver = stale;
      continue;
    }
    try {
      fs.writeSync(fd, holder);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      const named = fs.openSync(lockPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | (fs.constants.O_NOFOLLOW ?? 0), 0o644);
      try {
        fs.writeSync(named, holder);
      } finally {
        fs.closeSync(named);
      }
    } catch (err) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
      fs.rmSync(file, { force: true });
      throw err;
    }
    heldHere.add(file);
    return takenOver === undefined ? { locked: false, file } : { locked: false, file, takenOver };
  }
  return { locked: true, holder: '' };
}

/** Removes the held file if it is still this holder's. */
export function release(file: string, holder: string): void {
  heldHere.delete(file);
  try {
    if (fs.readFileSync(file, 'utf8') === holder) fs.unlinkSync(file);
  } catch {
    /* already gone, or taken over after an expired lease: not ours to remove */
  }
}
