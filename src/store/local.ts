/** LocalStore: a CheckpointStore over a local directory, through the native writer (commit protocol in
 * docs/commit-protocol.md) and an open-file-description lock. */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointError, argumentError, toCheckpointError } from '../binding/errors';
import { native } from '../binding/native';
import { HeaderInfo, ReadOptions, ReadResult, readCheckpoint, readHeader, removeFiles, saveCheckpoint, SaveResult, writeFileAtomic } from '../format/file';
import { CheckpointStore, CommitRequest, LockHolder, StoredObject, StoreLock } from './store';

export const LOCK_NAME = 'ckptio.lock';
/** The largest small object (pointer, tag, manifest) read back: a manifest of ~100,000 checkpoints. */
export const SMALL_OBJECT_MAX = 64 << 20;
/** The writer's temporary names: `<name>.tmp.<pid>.<8 hex>`, the pattern the addon exports (native/writer/commit.h). */
const TEMP_RE = new RegExp(native.tempNamePattern);

function plainName(name: string): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw argumentError(`"${String(name)}" is not a plain object name`);
  }
  return name;
}

/** Whether a process of this host exists (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** fsync of a directory: the names created, renamed or removed in it are durable once it returns. */
export async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory to fsync it (docs/portable.md: no directory fsync there).
  if (process.platform === 'win32') return;
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A directory entry is durable only once its parent is fsynced; without this a power cut right after the
 * first save could take the new directory, and every acknowledged checkpoint in it, away. */
async function syncNewDirectories(firstCreated: string, leaf: string): Promise<void> {
  const created: string[] = [];
  for (let d = leaf; ; d = path.dirname(d)) {
    created.push(d);
    if (d === firstCreated || path.dirname(d) === d) break;
  }
  for (const d of created) await syncDirectory(path.dirname(d));
}

/** Creates `dir` and its missing parents, durably (each new entry's parent fsynced). A path that exists but is
 * not a directory is ENOTDIR naming it. Every error is a CheckpointError. */
export async function ensureDirectory(dir: string): Promise<void> {
  try {
    const firstCreated = await fs.promises.mkdir(dir, { recursive: true });
    if (firstCreated !== undefined) await syncNewDirectories(firstCreated, dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new CheckpointError(`${dir} (or a parent of it) exists and is not a directory; give a directory path`, {
        code: 'ENOTDIR',
        errno: os.constants.errno.ENOTDIR,
        syscall: 'mkdir',
        path: dir,
      });
    }
    throw toCheckpointError(err);
  }
}

export class LocalStore implements CheckpointStore {
  readonly location: string;

  constructor(dir: string) {
    if (typeof dir !== 'string' || dir === '' || dir.includes('\0')) throw argumentError('dir must be a non-empty string without NUL bytes');
    this.location = path.resolve(dir);
  }

  private at(name: string): string {
    return path.join(this.location, plainName(name));
  }

  async open(): Promise<void> {
    await ensureDirectory(this.location);
    try {
      await fs.promises.access(this.location, fs.constants.W_OK);
    } catch (err) {
      throw toCheckpointError(err);
    }
  }

  async lock(name: string = LOCK_NAME): Promise<StoreLock> {
    const holder: LockHolder = { pid: process.pid, host: os.hostname(), started: new Date().toISOString() };
    const file = this.at(name);
    const r = native.lock(file, JSON.stringify(holder));
    if ('locked' in r) {
      let who = 'another process';
      try {
        const h = JSON.parse(r.holder) as Partial<LockHolder>;
        who = `pid ${Number(h.pid)} on ${String(h.host)}, since ${String(h.started)}`;
      } catch {
        /* the holder may not have written its name yet */
      }
      throw new CheckpointError(`${this.location} is in use by another writer (${who}); one writer per run directory`, { code: 'ECKPT_LOCKED', path: file });
    }
    let fd: number | null = r.fd;
    return {
      release: () => {
        if (fd !== null) {
          native.unlock(fd);
          fd = null;
        }
      },
    };
  }

  async list(): Promise<StoredObject[]> {
    const names = await fs.promises.readdir(this.location).catch((err: unknown) => {
      throw toCheckpointError(err);
    });
    return names.map((name) => ({ name }));
  }

  commit(request: CommitRequest): Promise<SaveResult> {
    return saveCheckpoint(this.at(request.name), request.tensors, request.options, {
      files: request.files.map((f) => [this.at(f.name), f.data] as [string, Uint8Array]),
      ...(request.remove.length ? { removeDir: this.location, remove: request.remove.map(plainName) } : {}),
      ...(request.onConsumed ? { onConsumed: request.onConsumed } : {}),
      // A compressed save's result carries its compression report, which only the promise has.
      ...(request.onSettled && (request.options.compression ?? 'none') === 'none' ? { onSettled: request.onSettled } : {}),
      ...(request.lane ? { lane: request.lane.id, generation: request.lane.generation } : {}),
    });
  }

  poll(): void {
    native.drain();
  }

  async writeSmall(name: string, data: Uint8Array): Promise<void> {
    await writeFileAtomic(this.at(name), data);
  }

  /** Written whole under a temporary name (the writer's pattern, so a dead process's leftover is swept at start),
   * fdatasynced, then hard-linked to its name: link() fails with EEXIST instead of replacing, which is what makes
   * the creation exclusive. The directory is fsynced before it returns true. */
  async createSmall(name: string, data: Uint8Array): Promise<boolean> {
    const final = this.at(name);
    const temp = `${final}.tmp.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      const handle = await fs.promises.open(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
      try {
        await handle.writeFile(data);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      try {
        await fs.promises.link(temp, final);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
      await syncDirectory(this.location);
      return true;
    } catch (err) {
      throw toCheckpointError(err);
    } finally {
      await fs.promises.unlink(temp).catch(() => {});
    }
  }

  /** Never through a symlink (O_NOFOLLOW): a link planted under the name cannot redirect the append. */
  async appendSmall(name: string, data: Uint8Array): Promise<void> {
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(
        this.at(name),
        fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
        0o644,
      );
    } catch (err) {
      throw toCheckpointError(err);
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new CheckpointError(`${name} is not a regular file`, { code: 'ECKPT_FORMAT', path: this.at(name) });
      await handle.write(data);
    } catch (err) {
      throw toCheckpointError(err);
    } finally {
      await handle.close();
    }
  }

  /** Small objects are untrusted: never through a symlink, never a FIFO or device (O_NONBLOCK: no hang), never a
   * directory, at most SMALL_OBJECT_MAX bytes. */
  async readSmall(name: string): Promise<Uint8Array | null> {
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(this.at(name), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw toCheckpointError(err);
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new CheckpointError(`${name} is not a regular file`, { code: 'ECKPT_FORMAT', path: this.at(name) });
      if (st.size > SMALL_OBJECT_MAX)
        throw new CheckpointError(`${name} is ${st.size} bytes, more than the ${SMALL_OBJECT_MAX} a pointer or manifest may be`, {
          code: 'ECKPT_FORMAT',
          path: this.at(name),
        });
      return new Uint8Array(await handle.readFile());
    } catch (err) {
      throw toCheckpointError(err);
    } finally {
      await handle.close();
    }
  }

  read(name: string, options?: ReadOptions): Promise<ReadResult> {
    return readCheckpoint(this.at(name), options);
  }

  readHeader(name: string): Promise<HeaderInfo> {
    return readHeader(this.at(name));
  }

  async remove(names: string[]): Promise<void> {
    if (names.length) await removeFiles(this.location, names.map(plainName));
  }

  async cleanStaleTemps(): Promise<string[]> {
    const removed: string[] = [];
    for (const { name } of await this.list()) {
      const m = TEMP_RE.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || processAlive(pid)) continue;
      await fs.promises.unlink(path.join(this.location, name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw toCheckpointError(err);
      });
      removed.push(name);
    }
    return removed;
  }
}
