/** The portable writer: the writer contract (src/binding/contract.ts) in TypeScript over Node's `fs`, for every
 * platform without a matching native addon (macOS, Windows, musl, an addon that fails to load) or under
 * CKPTIO_WRITER=portable. Its writer thread is a worker_threads worker (writer-worker.ts) that commits each job on
 * its own, so a save becomes durable without the training loop yielding. The training thread copies each tensor's
 * bytes before save() returns (the worker cannot read the caller's memory): that copy is this writer's cost per
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
import { decodeBytes, headerResult, joinPlan, parseHeader, planFile, readBytes, readResult, verifyHeaderDigest, Xxh3 } from '../format/portable-codec';
import { createXxh3 } from '../format/xxh3';
import { acquire, release } from './lock';
import { Completion, Job, PackedForWorker, PENDING, WorkerError } from './protocol';

/** The temporary names the portable writer uses, as the native writer's: `<name>.tmp.<pid>.<8 hex>`. */
export const TEMP_NAME_PATTERN = '\\.tmp\\.(\\d+)\\.[0-9a-f]{8}$';
/** How long process exit waits for the writer thread to finish the jobs save() accepted. */
const EXIT_WAIT_MS = 120_000;

type ErrorClass = typeof CheckpointError;

interface Waiter {
  resolve(v: NativeWriteResult | NativeSaveResult): void;
  reject(e: unknown): void;
  onSettled?: NativeSaveAfter['onSettled'];
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
  const notices: (() => void)[] = [];
  let nextId = 1;
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

  const post = (job: Job, transfer: ArrayBuffer[], onSettled?: NativeSaveAfter['onSettled']): Promise<NativeWriteResult | NativeSaveResult> =>
    new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      if (onSettled) waiter.onSettled = onSettled;
      waiters.set((job as { id: number }).id, waiter);
      completions.ref();
      Atomics.add(pending, PENDING, 1);
      worker.postMessage(job, transfer);
    });

  /** The tensors' bytes copied off the caller's memory, so the caller may reuse it as soon as save() returns. */
  const copyTable = (table: NativeTensorTable): { packed: PackedForWorker; transfer: ArrayBuffer[] } => {
    const data = table.data.map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice());
    return {
      packed: { names: table.names, nameLengths: table.nameLengths, dtypes: table.dtypes, ranks: table.ranks, dims: table.dims, data },
      transfer: data.map((d) => d.buffer),
    };
  };
  const invalid = (message: string) => makeError({ message, code: 'ECKPT_ARGS' });
  /** The addon's argument checks (native/addon/args.cc), then the layout's without digests: bad input rejects here,
   * before anything is queued. */
  const validate = (file: string, table: NativeTensorTable, metadata: Record<string, string>, options: NativeWriteOptions) => {
    if (typeof file !== 'string' || file.length === 0 || file.includes('\0')) throw invalid('path must be a non-empty string without NUL bytes');
    if (typeof metadata !== 'object' || metadata === null) throw invalid('metadata must be an object of strings');
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw invalid(`metadata value for "${k}" must be a string`);
    if (options.direct !== undefined && !['auto', 'on', 'off'].includes(options.direct)) throw invalid("options.direct must be 'auto', 'on' or 'off'");
    // No silent fallback: O_DIRECT is the native writer's; the portable writer goes through the page cache.
    if (options.direct === 'on') throw invalid("options.direct 'on' needs the native writer (O_DIRECT); the portable writer writes through the page cache");
    if (options.writeBehindBytes !== undefined && !(options.writeBehindBytes >= 0)) throw invalid('options.writeBehindBytes must be >= 0');
    if (options.checksum !== undefined && typeof options.checksum !== 'boolean') throw invalid('options.checksum must be a boolean');
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
      validate(file, table, metadata, options);
    } catch (err) {
      if (after?.onConsumed) notices.push(after.onConsumed);
      return Promise.reject(err);
    }
    const { packed, transfer } = copyTable(table);
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
    return post(job, transfer, after?.onSettled);
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
      const copy = data.slice();
      return post({ op: 'writeFile', id: nextId++, path: path.resolve(file), data: copy }, [copy.buffer as ArrayBuffer]) as Promise<NativeWriteResult>;
    },
    remove(dir, names) {
      return post({ op: 'remove', id: nextId++, dir: path.resolve(dir), names: [...names] }, []) as Promise<NativeWriteResult>;
    },
    async read(file, options): Promise<NativeReadResult> {
      const xxh3 = await xxh3Async();
      const buf = await fs.promises.readFile(file);
      const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      const h = readBytes(bytes, options.verify, xxh3, file);
      const r = readResult(h, bytes);
      return { tensors: r.tensors, metadata: r.metadata, bytes: bytes.byteLength, verified: options.verify, checksummed: h.checksums !== null };
    },
    async readHeader(file): Promise<NativeHeader> {
      const xxh3 = await xxh3Async();
      const fh = await fs.promises.open(file, 'r');
      try {
        const size = (await fh.stat()).size;
        const len = Buffer.alloc(8);
        await fh.read(len, 0, Math.min(8, size), 0);
        const n = size >= 8 ? len.readBigUInt64LE(0) : 0n;
        // parseHeader checks the length against the file and the cap before anything is read.
        const want = n > 0n && n <= BigInt(size - 8) ? 8 + Number(n) : Math.min(size, 8);
        const head = Buffer.alloc(want);
        await fh.read(head, 0, want, 0);
        const h = parseHeader(new Uint8Array(head.buffer, head.byteOffset, head.byteLength), size, file);
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
      while (Atomics.load(reply, 0) === 0) Atomics.wait(reply, 0, 0, 10_000);
      if (Atomics.load(reply, 0) !== 1) throw makeError({ message: 'xxh3: the hashing thread failed to start hash-wasm', code: 'ECKPT_INTERNAL' });
      return String.fromCharCode(...reply.subarray(1));
    },
    lock(lockPath, holder) {
      const r = acquire(lockPath, holder);
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
      flushNotices();
      for (let m = receiveMessageOnPort(completions); m; m = receiveMessageOnPort(completions)) settle(m.message as Completion);
    },
    waitReads: () => true, // the portable writer never reads the caller's memory after save() returns
    writerState: () => ({ queued: Math.max(0, Atomics.load(pending, PENDING) - 1), unread: 0 }),
  };
  return binding;
}
