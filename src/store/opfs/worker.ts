/** The browser's writer thread: a dedicated Worker that owns every write to the Origin Private File System and runs
 * each request to its end on its own, in the order posted, so a save becomes durable while the page's thread
 * trains. A file is committed as: a temporary name, every byte written through a FileSystemSyncAccessHandle,
 * flush() (an fdatasync), close(), then move() onto its name (the atomic replace; docs/browser.md says what that
 * rename does and does not survive). A save is the checkpoint, then its small files (each the same way), then
 * retention's removals: nothing names a checkpoint before it is whole, nothing is removed before the record says so. */
import { withContentId } from '../../binding/contract';
import { headerResult, MAX_HEADER_LEN, parseHeader, planFile, readBytes, Xxh3 } from '../../format/portable-codec';
import { createXxh3 } from '../../format/xxh3';
import type { DirectoryHandle, ErrorReply, FileHandle, FromWorker, Reply, Request, SaveDone, ToWorker } from './protocol';
import { TEMP_NAME_RE } from './protocol';

interface WorkerScope {
  postMessage(message: FromWorker, transfer?: unknown[]): void;
  addEventListener(type: 'message' | 'messageerror', listener: (event: { data: ToWorker }) => void): void;
  navigator: {
    storage?: { getDirectory?(): Promise<DirectoryHandle> };
    locks?: { request(name: string, options: { ifAvailable: boolean }, callback: (lock: object | null) => Promise<void>): Promise<void> };
  };
  crypto: { getRandomValues(a: Uint8Array): Uint8Array };
  FileSystemFileHandle?: { prototype: object };
}
const scope = globalThis as unknown as WorkerScope;

class Failure extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly path?: string,
  ) {
    super(message);
  }
}

/** The errno-style code of what the browser threw. */
const DOM_CODES: Readonly<Record<string, string>> = {
  NotFoundError: 'ENOENT',
  QuotaExceededError: 'ENOSPC',
  TypeMismatchError: 'ENOTDIR',
  NoModificationAllowedError: 'EBUSY',
  InvalidModificationError: 'EBUSY',
  NotAllowedError: 'EACCES',
  SecurityError: 'EACCES',
  InvalidStateError: 'EIO',
  NotReadableError: 'EIO',
};

function errorOf(err: unknown, path: string): ErrorReply {
  if (err instanceof Failure) return { message: err.message, code: err.code, path: err.path ?? path };
  const e = err as { name?: string; message?: string; code?: unknown };
  if (typeof e?.code === 'string' && e.code.startsWith('ECKPT_')) return { message: String(e.message), code: e.code, path };
  const domName = typeof e?.name === 'string' ? e.name : 'Error';
  return { message: `${domName}: ${String(e?.message ?? err)} (${path})`, code: DOM_CODES[domName] ?? 'EIO', domName, path };
}

let xxh3: Xxh3 | undefined;
let root: DirectoryHandle | undefined;

/** What this browser lacks of what the store needs, or null. */
function missingApi(): string | null {
  if (typeof scope.navigator?.storage?.getDirectory !== 'function') return 'the origin private file system (navigator.storage.getDirectory)';
  const file = scope.FileSystemFileHandle?.prototype;
  if (!file || !('createSyncAccessHandle' in file)) return 'FileSystemFileHandle.createSyncAccessHandle';
  if (!('move' in file)) return 'FileSystemFileHandle.move';
  if (typeof scope.navigator.locks?.request !== 'function') return 'Web Locks (navigator.locks)';
  return null;
}

async function directory(parts: string[], create: boolean): Promise<DirectoryHandle> {
  root ??= await scope.navigator.storage!.getDirectory!();
  let d = root;
  for (const p of parts) d = await d.getDirectoryHandle(p, { create });
  return d;
}

function tempName(name: string): string {
  const r = scope.crypto.getRandomValues(new Uint8Array(4));
  return `${name}.tmp.0.${Array.from(r, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Writes `parts` under a temporary name, flushed and closed; returns its handle, not yet moved into place. */
async function writeTemp(dir: DirectoryHandle, name: string, parts: readonly Uint8Array[]): Promise<FileHandle> {
  const temp = tempName(name);
  const file = await dir.getFileHandle(temp, { create: true });
  let ok = false;
  try {
    const h = await file.createSyncAccessHandle();
    try {
      let at = 0;
      for (const p of parts) {
        let done = 0;
        while (done < p.byteLength) done += h.write(p.subarray(done), { at: at + done });
        at += p.byteLength;
      }
      h.flush();
    } finally {
      h.close();
    }
    ok = true;
    return file;
  } finally {
    if (!ok) await dir.removeEntry(temp).catch(() => {});
  }
}

/** Moves a written temporary file onto its name; if the move fails, the temporary is removed (best effort). */
async function moveInto(dir: DirectoryHandle, file: FileHandle, name: string): Promise<void> {
  try {
    await file.move(name);
  } catch (err) {
    await dir.removeEntry(file.name).catch(() => {});
    throw err;
  }
}

async function commitFile(dir: DirectoryHandle, name: string, parts: readonly Uint8Array[]): Promise<void> {
  await moveInto(dir, await writeTemp(dir, name, parts), name);
}

async function exists(dir: DirectoryHandle, name: string): Promise<boolean> {
  try {
    await dir.getFileHandle(name);
    return true;
  } catch (err) {
    if ((err as { name?: string }).name === 'NotFoundError') return false;
    throw err;
  }
}

/** Another tab may be moving a file of this directory into place: a read that loses that race (NotReadableError,
 * or once NotFoundError) is retried, up to 5 times. */
async function retried<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (err) {
      const n = (err as { name?: string }).name;
      if (attempt >= 5 || (n !== 'NotReadableError' && !(n === 'NotFoundError' && attempt < 2))) throw err;
      await new Promise((r) => setTimeout(r, 5 * attempt));
    }
  }
}

async function readWhole(dir: DirectoryHandle, name: string): Promise<Uint8Array> {
  return retried(async () => new Uint8Array(await (await (await dir.getFileHandle(name)).getFile()).arrayBuffer()));
}

const lanes = new Map<number, { generation: number; failure: string }>();
const locksHeld = new Map<string, () => void>();

async function save(req: Extract<Request, { op: 'save' }>, path: string, consumed: () => void): Promise<SaveDone> {
  const lane = req.lane !== undefined ? (lanes.get(req.lane) ?? { generation: 0, failure: '' }) : undefined;
  if (lane && req.lane !== undefined) lanes.set(req.lane, lane);
  if (lane && lane.generation !== req.generation) {
    consumed();
    throw Object.assign(
      new Failure(
        `aborted before writing: it was planned while an earlier save of this run was committing, and that save failed (${lane.failure}) ('${path}')`,
        'ECKPT_ABORTED',
        path,
      ),
      { stage: 'planned', dataDurable: false, generation: lane.generation },
    );
  }
  let stage = 'data';
  let dataDurable = false;
  let contentId: string | undefined;
  try {
    const dir = await directory(req.dir, false);
    let file: FileHandle;
    try {
      const plan = planFile({ ...req.tensors, data: req.tensors.data }, req.metadata, true, xxh3!);
      contentId = plan.contentId;
      file = await writeTemp(dir, req.name, [plan.header, ...plan.parts]);
    } finally {
      consumed(); // every byte is in the file (or the save failed): the page may reuse its buffer
    }
    await moveInto(dir, file, req.name);
    dataDurable = true;
    stage = 'files';
    // Every small file written and flushed before any is moved; on a failure the temporaries not moved are removed.
    const moves: [FileHandle, string][] = [];
    try {
      for (const [name, data] of req.files) moves.push([await writeTemp(dir, name, [withContentId(data, contentId)]), name]);
      while (moves.length) {
        const [f, name] = moves[0]!;
        await moveInto(dir, f, name);
        moves.shift();
      }
    } catch (err) {
      for (const [f] of moves) await dir.removeEntry(f.name).catch(() => {});
      throw err;
    }
    stage = 'remove';
    for (const name of req.remove)
      await dir.removeEntry(name).catch((err: { name?: string }) => {
        if (err?.name !== 'NotFoundError') throw err;
      });
    const total = (await (await dir.getFileHandle(req.name)).getFile()).size;
    return { bytes: total, removed: [...req.remove], generation: lane?.generation ?? 0, ...(contentId !== undefined ? { contentId } : {}) };
  } catch (err) {
    const e = errorOf(err, path);
    if (lane) {
      lane.generation++;
      lane.failure = `step file ${path}, stage ${stage}: ${e.code}`;
    }
    throw Object.assign(new Failure(e.message, e.code, e.path), { stage, dataDurable, generation: lane?.generation ?? 0 });
  }
}

async function handle(req: Request, consumed: () => void): Promise<{ reply: Reply; transfer: unknown[] }> {
  const where = (name?: string) => [...req.dir, ...(name !== undefined ? [name] : [])].join('/');
  switch (req.op) {
    case 'open':
      await directory(req.dir, true);
      return { reply: null, transfer: [] };
    case 'list': {
      const names: string[] = [];
      for await (const [name, h] of (await directory(req.dir, false)).entries()) if (h.kind === 'file') names.push(name);
      return { reply: { names }, transfer: [] };
    }
    case 'save':
      return { reply: await save(req, where(req.name), consumed), transfer: [] };
    case 'writeSmall': {
      const dir = await directory(req.dir, false);
      // One writer thread per page and one writer per run (the lock): no other create can race this check.
      if (req.exclusive && (await exists(dir, req.name))) return { reply: { created: false }, transfer: [] };
      await commitFile(dir, req.name, [req.data]);
      return { reply: { created: true }, transfer: [] };
    }
    case 'appendSmall': {
      const dir = await directory(req.dir, false);
      const h = await (await dir.getFileHandle(req.name, { create: true })).createSyncAccessHandle();
      try {
        h.write(req.data, { at: h.getSize() });
      } finally {
        h.close();
      }
      return { reply: null, transfer: [] };
    }
    case 'readSmall': {
      const dir = await directory(req.dir, false);
      if (!(await exists(dir, req.name))) return { reply: { data: null }, transfer: [] };
      const data = await readWhole(dir, req.name);
      if (data.byteLength > req.max)
        throw new Failure(`${where(req.name)} is larger than ${req.max} bytes, more than a pointer or manifest may be`, 'ECKPT_FORMAT');
      return { reply: { data }, transfer: [data.buffer] };
    }
    case 'read': {
      const file = await readWhole(await directory(req.dir, false), req.name);
      readBytes(file, req.verify, xxh3!, where(req.name)); // throws ECKPT_FORMAT / ECKPT_CHECKSUM naming the file
      return { reply: { file }, transfer: [file.buffer] };
    }
    case 'readHeader': {
      const dir = await directory(req.dir, false);
      const { head, size } = await retried(async () => {
        const f = await (await dir.getFileHandle(req.name)).getFile();
        const len = f.size >= 8 ? Number(new DataView(await f.slice(0, 8).arrayBuffer()).getBigUint64(0, true)) : 0;
        // The length and the header only: a bad length is parseHeader's to report, from what is there.
        return { head: new Uint8Array(await f.slice(0, 8 + Math.min(len, MAX_HEADER_LEN)).arrayBuffer()), size: f.size };
      });
      const h = parseHeader(head, size, where(req.name));
      return { reply: { header: headerResult(h, xxh3!) }, transfer: [] };
    }
    case 'remove': {
      const dir = await directory(req.dir, false);
      for (const name of req.names)
        await dir.removeEntry(name).catch((err: { name?: string }) => {
          if (err?.name !== 'NotFoundError') throw err;
        });
      return { reply: null, transfer: [] };
    }
    case 'lock': {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const granted = await new Promise<boolean>((resolve, reject) => {
        scope.navigator
          .locks!.request(req.name, { ifAvailable: true }, async (lock) => {
            resolve(lock !== null);
            if (lock !== null) await held; // held until unlock, or until this worker dies
          })
          .catch(reject);
      });
      if (granted) locksHeld.set(req.name, release);
      return { reply: { granted }, transfer: [] };
    }
    case 'unlock':
      locksHeld.get(req.name)?.();
      locksHeld.delete(req.name);
      return { reply: null, transfer: [] };
    case 'cleanStaleTemps': {
      const dir = await directory(req.dir, false);
      const names: string[] = [];
      for await (const [name, h] of dir.entries()) if (h.kind === 'file' && TEMP_NAME_RE.test(name)) names.push(name);
      const removed: string[] = [];
      for (const n of names) {
        try {
          await dir.removeEntry(n);
          removed.push(n);
        } catch (err) {
          // Still open in a writer that is going away (a reloaded page's), or already gone: not this run's to remove.
          const e = (err as { name?: string }).name;
          if (e !== 'NoModificationAllowedError' && e !== 'NotFoundError' && e !== 'InvalidModificationError') throw err;
        }
      }
      return { reply: { names: removed }, transfer: [] };
    }
  }
}

/** Set once the worker can serve requests; the reason when it cannot (every request is answered with it). */
const ready: Promise<Failure | null> = (async () => {
  const missing = missingApi();
  if (missing !== null) return new Failure(`this browser lacks ${missing}, which the browser store needs`, 'ECKPT_UNSUPPORTED');
  try {
    xxh3 = await createXxh3();
    return null;
  } catch (err) {
    return new Failure(`XXH3 (WebAssembly) could not start in the writer worker: ${String((err as Error)?.message ?? err)}`, 'ECKPT_UNSUPPORTED');
  }
})();

/** Requests run one at a time, in the order posted; one that fails never stops the next. */
let queue: Promise<void> = Promise.resolve();

scope.addEventListener('message', ({ data: { id, request } }) => {
  let sentConsumed = false;
  const consumed = () => {
    if (sentConsumed) return;
    sentConsumed = true;
    scope.postMessage({ id, consumed: true });
  };
  const job = async () => {
    const name = 'name' in request ? request.name : undefined;
    try {
      const unusable = await ready;
      if (unusable) throw unusable;
      const { reply, transfer } = await handle(request, consumed);
      consumed();
      scope.postMessage({ id, ok: true, reply }, transfer);
    } catch (err) {
      try {
        consumed();
        const e = errorOf(err, [...request.dir, ...(name !== undefined ? [name] : [])].join('/'));
        const extra = err as { stage?: string; dataDurable?: boolean; generation?: number };
        if (extra?.stage !== undefined) Object.assign(e, { stage: extra.stage, dataDurable: extra.dataDurable, generation: extra.generation });
        scope.postMessage({ id, ok: false, error: e });
      } catch {
        /* the page is gone */
      }
    }
  };
  queue = queue.then(job, job);
});
