/** The portable writer: the writer contract (src/binding/contract.ts) in TypeScript over Node's `fs`, for every
 * platform without a matching native addon (macOS, Windows, musl, an addon that fails to load) or under
 * CKPTIO_WRITER=portable. Its writer thread is a worker_threads worker (writer-worker.ts) that commits each job on
 * its own, so a save becomes durable without the training loop yielding. The training thread copies each tensor's
 * bytes inside `await save()` (the worker cannot read the caller's memory): that copy is this writer's cost per
 * save (docs/portable.md measures it). Reads parse and verify with the TypeScript codec on the calling thread. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { CheckpointError } from '../binding/errors';
import type {
  NativeBinding,
  NativeHeader,
  NativeReadResult,
  NativeSaveAfter,
  NativeSaveResult,
  NativeTensorTable,
  NativeWriteOptions,
  NativeWriteResult,
} from '../binding/contract';
import { READ_DTYPES, WRITE_DTYPES } from '../format/dtype-table';
import {
  decodeBytes,
  headerResult,
  joinPlan,
  MAX_HEADER_LEN,
  parseHeader,
  planFile,
  readBytes,
  readResult,
  verifyHeaderDigest,
  Xxh3,
} from '../format/portable-codec';
import { createXxh3 } from '../format/xxh3';
import { acquire, release } from './lock';
import { Completion, errorOf, Job, PackedForWorker, PENDING, WorkerError } from './protocol';

/** The temporary names the portable writer uses, as the native writer's: `<name>.tmp.<pid>.<8 hex>`. */
export const TEMP_NAME_PATTERN = '\\.tmp\\.(\\d+)\\.[0-9a-f]{8}$';
/** How long process exit waits for the writer thread to finish the jobs save() accepted: CKPTIO_EXIT_WAIT_MS, as for
 * the native writer (docs/api.md), default 30 s. */
const EXIT_WAIT_MS = Number(process.env.CKPTIO_EXIT_WAIT_MS) >= 0 ? Number(process.env.CKPTIO_EXIT_WAIT_MS) : 30_000;

type ErrorClass = typeof CheckpointError;

/** A name inside its directory: no separator, not empty, not . or .. (names come from manifests, untrusted). */
function plainName(n: unknown): boolean {
  return typeof n === 'string' && n.length > 0 && n !== '.' && n !== '..' && !/[/\\\0]/.test(n);
}

interface Waiter {
  resolve(v: NativeWriteResult | NativeSaveResult): void;
  reject(e: unknown): void;
  onSettled?: NativeSaveAfter['onSettled'];
  /** The job's copy buffers, back to the pool once the writer thread is done with them. */
  buffers?: SharedArrayBuffer[];
}

export function createPortableBinding(): NativeBinding {
  let errorClass: ErrorClass | undefined;
  const pending = new Int32Array(new SharedArrayBuffer(4));
  const channel = new MessageChannel();
  const worker = new Worker(path.join(__dirname, 'writer-worker.js'), {
    workerData: { port: channel.port2, pending },
    transferList: [channel.port2],
  });
  worker.unref();
  const completions = channel.port1;
  const waiters = new Map<number, Waiter>();
  /** Why the writer thread stopped, once it has: every outstanding job fails, later ones are refused. */
  let dead: string | null = null;
  const notices: (() => void)[] = [];
  let nextId = 1;
  let draining = false;
  let hasher: Promise<Xxh3> | undefined;
  const xxh3Async = () => (hasher ??= createXxh3());

  const makeError = (e: WorkerError): Error => {
    const info: { code: string; errno?: number; syscall?: string; path?: string } = { code: e.code };
    if (e.errno !== undefined) info.errno = e.errno;
    if (e.syscall !== undefined) info.syscall = e.syscall;
    if (e.path !== undefined) info.path = e.path;
    const err: Error = errorClass ? new errorClass(e.message, info as ConstructorParameters<ErrorClass>[1]) : Object.assign(new Error(e.message), info);
    for (const k of ['stage', 'dataDurable', 'generation', 'contentId'] as const) {
      if (e[k] !== undefined) Object.assign(err, { [k]: e[k] });
    }
    return err;
  };
  const quietly = (fn: () => void) => {
    try {
      fn();
    } catch {
      /* the contract: a callback's exception is dropped */
    }
  };
  const settle = (done: Completion) => {
    const w = waiters.get(done.id);
    if (!w) return;
    waiters.delete(done.id);
    if (w.buffers) give(w.buffers);
    if (waiters.size === 0) completions.unref();
    if (done.ok) {
      if (w.onSettled) quietly(() => w.onSettled!(null, done.result as NativeSaveResult));
      w.resolve(done.result);
    } else {
      const err = makeError(done.error);
      if (w.onSettled) quietly(() => w.onSettled!(err, undefined));
      w.reject(err);
    }
  };
  const flushNotices = () => {
    for (let n = notices.shift(); n; n = notices.shift()) quietly(n);
  };
  completions.on('message', (done: Completion) => {
    flushNotices();
    settle(done);
  });
  // After the listener, which refs the port: it keeps the process alive only while a job is outstanding (post).
  completions.unref();
  const stopped = (why: string) => {
    if (dead !== null) return;
    dead = why;
    for (const [id] of [...waiters])
      settle({ id, ok: false, error: { message: `the portable writer's thread stopped before this job finished (${why})`, code: 'ECKPT_INTERNAL' } });
    Atomics.store(pending, PENDING, 0);
    Atomics.notify(pending, PENDING);
  };
  worker.on('error', (err) => stopped(String((err as Error)?.message ?? err)));
  worker.on('exit', (code) => stopped(`exit code ${code}`));

  const post = (
    job: Job,
    transfer: ArrayBuffer[],
    onSettled?: NativeSaveAfter['onSettled'],
    buffers?: SharedArrayBuffer[],
  ): Promise<NativeWriteResult | NativeSaveResult> =>
    new Promise((resolve, reject) => {
      if (dead !== null) {
        reject(makeError({ message: `the portable writer's thread has stopped (${dead})`, code: 'ECKPT_INTERNAL' }));
        return;
      }
      try {
        worker.postMessage(job, transfer);
      } catch (err) {
        reject(makeError({ message: `the job could not be handed to the writer thread: ${String((err as Error)?.message ?? err)}`, code: 'ECKPT_INTERNAL' }));
        return;
      }
      const waiter: Waiter = { resolve, reject };
      if (onSettled) waiter.onSettled = onSettled;
      if (buffers) waiter.buffers = buffers;
      waiters.set((job as { id: number }).id, waiter);
      completions.ref();
      Atomics.add(pending, PENDING, 1);
    });

  /** The tensors' bytes copied off the caller's memory, so the caller may reuse it as soon as save() returns. */
  /** Copy buffers by size, reused from save to save: a model saves the same tensor sizes every time, and memory
   * written before costs the training thread no page faults (a fresh buffer cost about 2.5 times as much here). Shared, so
   * the writer thread reads them where they are. Bounded: at most twice the largest save's bytes stay pooled. */
  const pool = new Map<number, SharedArrayBuffer[]>();
  let pooledBytes = 0;
  let poolCap = 0;
  const take = (n: number): SharedArrayBuffer => {
    const b = pool.get(n)?.pop();
    if (b) pooledBytes -= n;
    return b ?? new SharedArrayBuffer(n);
  };
  const give = (buffers: SharedArrayBuffer[]) => {
    for (const b of buffers) {
      if (pooledBytes + b.byteLength > poolCap) continue;
      const list = pool.get(b.byteLength) ?? [];
      list.push(b);
      pool.set(b.byteLength, list);
      pooledBytes += b.byteLength;
    }
  };
  const copyTable = (table: NativeTensorTable): { packed: PackedForWorker; buffers: SharedArrayBuffer[] } => {
    let bytes = 0;
    const buffers = table.data.map((v) => {
      const b = take(v.byteLength);
      new Uint8Array(b).set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      bytes += v.byteLength;
      return b;
    });
    poolCap = Math.max(poolCap, 2 * bytes);
    const data = buffers.map((b) => new Uint8Array(b));
    return { packed: { names: table.names, nameLengths: table.nameLengths, dtypes: table.dtypes, ranks: table.ranks, dims: table.dims, data }, buffers };
  };
  const invalid = (message: string) => makeError({ message, code: 'ECKPT_ARGS' });
  /** The addon's argument checks (native/addon/args.cc), then the layout's without digests: bad input rejects here,
   * before anything is queued. */
  const validate = (file: string, table: NativeTensorTable, metadata: Record<string, string>, options: NativeWriteOptions, after?: NativeSaveAfter) => {
    if (typeof file !== 'string' || file.length === 0 || file.includes('\0')) throw invalid('path must be a non-empty string without NUL bytes');
    if (typeof metadata !== 'object' || metadata === null) throw invalid('metadata must be an object of strings');
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw invalid(`metadata value for "${k}" must be a string`);
    if (options.direct !== undefined && !['auto', 'on', 'off'].includes(options.direct)) throw invalid("options.direct must be 'auto', 'on' or 'off'");
    // No silent fallback: O_DIRECT is the native writer's; the portable writer goes through the page cache.
    if (options.direct === 'on') throw invalid("options.direct 'on' needs the native writer (O_DIRECT); the portable writer writes through the page cache");
    if (options.writeBehindBytes !== undefined && !(options.writeBehindBytes >= 0)) throw invalid('options.writeBehindBytes must be >= 0');
    if (options.checksum !== undefined && typeof options.checksum !== 'boolean') throw invalid('options.checksum must be a boolean');
    if (after) {
      if ((after.remove?.length ?? 0) > 0 && typeof after.removeDir !== 'string')
        throw invalid('after must be { files: [[path, bytes]...], removeDir, remove: [names] }');
      for (const n of after.remove ?? []) if (!plainName(n)) throw invalid(`after.remove: "${n}" is not a plain file name`);
      if ((after.lane === undefined) !== (after.generation === undefined))
        throw invalid('after.lane must be an integer from 1 to 2^32-1 and after.generation an integer >= 0');
    }
    for (const [i, d] of table.data.entries()) {
      if (!ArrayBuffer.isView(d)) throw invalid(`tensor ${i} data must be a TypedArray, Buffer or DataView`);
    }
    planFile(table, metadata, false, () => '');
  };

  const submitSave = (
    file: string,
    table: NativeTensorTable,
    metadata: Record<string, string>,
    options: NativeWriteOptions,
    after: NativeSaveAfter | undefined,
  ) => {
    try {
      validate(file, table, metadata, options, after);
    } catch (err) {
      return Promise.reject(err); // as the addon: neither callback runs for a save refused here
    }
    const { packed, buffers } = copyTable(table);
    if (after?.onConsumed) {
      notices.push(after.onConsumed);
      setImmediate(flushNotices).unref();
    }
    const job: Job = {
      op: 'save',
      id: nextId++,
      path: path.resolve(file),
      tensors: packed,
      metadata,
      checksum: options.checksum ?? true,
      files: (after?.files ?? []).map(([p, d]) => [path.resolve(p), d] as [string, Uint8Array]),
      remove: after?.remove ?? [],
      isSave: after !== undefined,
    };
    if (after?.removeDir !== undefined) job.removeDir = path.resolve(after.removeDir);
    if (after?.lane !== undefined) {
      job.lane = after.lane;
      job.generation = after.generation ?? 0;
    }
    return post(job, [], after?.onSettled, buffers);
  };

  // An acknowledged save survives process.exit(): exit waits (bounded) until the writer thread has run every job.
  process.on('exit', () => {
    const deadline = Date.now() + EXIT_WAIT_MS;
    for (let n = Atomics.load(pending, PENDING); n > 0 && Date.now() < deadline; n = Atomics.load(pending, PENDING)) {
      Atomics.wait(pending, PENDING, n, deadline - Date.now());
    }
  });

  const held = new Map<number, { file: string; holder: string }>();
  let hashWorker: Worker | undefined;

  const binding: NativeBinding = {
    init(cls) {
      errorClass = cls;
    },
    dtypes: WRITE_DTYPES.map((r) => ({ name: r.name as NativeBinding['dtypes'][number]['name'], bytes: r.bytes })),
    readDtypes: READ_DTYPES.map((r) => r.name),
    tempNamePattern: TEMP_NAME_PATTERN,
    write: (file, tensors, metadata, options) => submitSave(file, tensors, metadata, options, undefined) as Promise<NativeWriteResult>,
    save: (file, tensors, metadata, options, after) => submitSave(file, tensors, metadata, options, after) as Promise<NativeSaveResult>,
    writeFile(file, data) {
      const copy = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(); // Buffer#slice is a view
      return post({ op: 'writeFile', id: nextId++, path: path.resolve(file), data: copy }, [copy.buffer as ArrayBuffer]) as Promise<NativeWriteResult>;
    },
    remove(dir, names) {
      const bad = names.find((n) => !plainName(n));
      if (bad !== undefined) return Promise.reject(invalid(`remove: "${bad}" is not a plain file name`));
      return post({ op: 'remove', id: nextId++, dir: path.resolve(dir), names: [...names] }, []) as Promise<NativeWriteResult>;
    },
    async read(file, options): Promise<NativeReadResult> {
      const xxh3 = await xxh3Async();
      const bytes = await readWhole(file, makeError);
      const h = readBytes(bytes, options.verify, xxh3, file);
      const r = readResult(h, bytes);
      return { tensors: r.tensors, metadata: r.metadata, bytes: bytes.byteLength, verified: options.verify, checksummed: h.checksums !== null };
    },
    async readHeader(file): Promise<NativeHeader> {
      const xxh3 = await xxh3Async();
      const fh = await openRegular(file, makeError);
      try {
        const size = (await fh.stat()).size;
        const len = await readAt(fh, 0, Math.min(8, size));
        const n = size >= 8 ? Buffer.from(len.buffer, len.byteOffset, 8).readBigUInt64LE(0) : 0n;
        // Only a length parseHeader accepts (under the cap, inside the file) is read; any other is its error.
        const want = n >= 2n && n <= BigInt(MAX_HEADER_LEN) && n <= BigInt(size - 8) ? 8 + Number(n) : Math.min(size, 8);
        const head = await readAt(fh, 0, want);
        const h = parseHeader(head, size, file);
        verifyHeaderDigest(h, xxh3, file);
        return headerResult(h, xxh3);
      } finally {
        await fh.close();
      }
    },
    async encode(tensors, metadata, options) {
      const xxh3 = await xxh3Async();
      const plan = planFile(tensors, metadata, options.checksum, xxh3);
      return plan.contentId !== undefined ? { bytes: joinPlan(plan), contentId: plan.contentId } : { bytes: joinPlan(plan) };
    },
    async decode(bytes, options) {
      const xxh3 = await xxh3Async();
      const h = decodeBytes(bytes, options.verify, xxh3);
      const r = readResult(h, bytes);
      const out: NativeReadResult & { contentId?: string } = {
        tensors: r.tensors,
        metadata: r.metadata,
        bytes: bytes.byteLength,
        verified: options.verify,
        checksummed: h.checksums !== null,
      };
      const id = headerResult(h, xxh3).contentId;
      if (id !== undefined) out.contentId = id;
      return out;
    },
    xxh3(data) {
      if (!hashWorker) {
        hashWorker = new Worker(path.join(__dirname, 'hash-worker.js'));
        hashWorker.unref();
      }
      const shared = new SharedArrayBuffer(Math.max(1, data.byteLength));
      new Uint8Array(shared).set(data);
      const reply = new Int32Array(new SharedArrayBuffer(4 * 17));
      hashWorker.postMessage({ data: shared, length: data.byteLength, reply });
      const deadline = Date.now() + 60_000;
      while (Atomics.load(reply, 0) === 0 && Date.now() < deadline) Atomics.wait(reply, 0, 0, deadline - Date.now());
      if (Atomics.load(reply, 0) !== 1) throw makeError({ message: 'xxh3: the hashing thread failed to start hash-wasm', code: 'ECKPT_INTERNAL' });
      return String.fromCharCode(...reply.subarray(1));
    },
    lock(lockPath, holder) {
      let r: ReturnType<typeof acquire>;
      try {
        r = acquire(lockPath, holder);
      } catch (err) {
        throw makeError(errorOf(err));
      }
      if (r.locked) return { locked: true, holder: r.holder };
      const fd = nextId++;
      held.set(fd, { file: r.file, holder });
      worker.postMessage({ op: 'lease', path: r.file, holder } satisfies Job);
      return { fd };
    },
    unlock(fd) {
      const h = held.get(fd);
      if (!h) return;
      held.delete(fd);
      worker.postMessage({ op: 'unlease', path: h.file } satisfies Job);
      release(h.file, h.holder);
    },
    drain() {
      if (draining) return; // a callback that polls from inside a drain: the outer drain settles in order
      draining = true;
      try {
        flushNotices();
        for (let m = receiveMessageOnPort(completions); m; m = receiveMessageOnPort(completions)) settle(m.message as Completion);
      } finally {
        draining = false;
      }
    },
    waitReads: () => true, // the portable writer never reads the caller's memory after save() returns
    writerState: () => ({ queued: Math.max(0, Atomics.load(pending, PENDING) - 1), unread: 0 }),
  };
  return binding;
}

type MakeError = (e: WorkerError) => Error;

/** Opens a file for reading; anything but a regular file is ECKPT_FORMAT, as the native reader says. */
async function openRegular(file: string, makeError: MakeError): Promise<fs.promises.FileHandle> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, fs.constants.O_RDONLY);
  } catch (err) {
    throw makeError(errorOf(err));
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw makeError({ message: `not a regular file ('${file}')`, code: 'ECKPT_FORMAT', path: file });
  }
  return fh;
}

/** `length` bytes from `position`, looping over short reads. */
async function readAt(fh: fs.promises.FileHandle, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  for (let done = 0; done < length;) {
    const { bytesRead } = await fh.read(out, done, Math.min(length - done, 1 << 30), position + done);
    if (bytesRead === 0) break; // shorter than its size said: the parser reports the truncation
    done += bytesRead;
  }
  return out;
}

/** A whole file in one buffer, in pieces (readFile refuses files over 2 GiB). */
async function readWhole(file: string, makeError: MakeError): Promise<Uint8Array> {
  const fh = await openRegular(file, makeError);
  try {
    return await readAt(fh, 0, (await fh.stat()).size);
  } finally {
    await fh.close();
  }
}
