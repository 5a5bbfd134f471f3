/** Zero-stall snapshot of tfjs tensors at a step boundary.
 *
 * snapshot() holds a reference on each tensor's current data (O(1) per tensor, no bytes touched). The bytes
 * are then handed over by materializeNow(), inside save(), with no event-loop turn: on cpu the tensors' own arrays
 * as they are; on wasm views of the heap that the writer thread reads in place (wasm-heap.ts says when that is
 * safe; elsewhere the bytes are copied there and then). The references are held until the writer has read the
 * bytes. With a deprecated `arena` where in-place reads cannot be used, wasm bytes are instead copied by
 * materialize() into reused staging buffers in slices of at most `sliceBytes`, yielding to the event loop once a
 * turn has spent `turnBudgetMs` copying (the save then reaches the writer only after those turns);
 * elsewhere (webgpu, tfjs-node) they are read with the backend's asynchronous read (what data() calls), never
 * dataSync(): on webgpu that is the GPU->staging copy and mapAsync, several at once up to `maxReadBytesInFlight`,
 * so training keeps the main thread meanwhile. Counted references go back as soon as their bytes are copied or
 * read; release() drops the rest (on cpu, the arrays the writer reads) once the file is written. */
import type * as tfType from '@tensorflow/tfjs';
import type { TensorSource } from '../checkpoint/checkpointer';
import type { DType } from '../format/file';
import { TensorList } from '../format/tensor-list';
import { dtypeCode } from '../format/dtypes';
import { argumentError, CheckpointError } from '../binding/errors';
import { nextTurn } from '../binding/turn';
import { TFJS_DTYPES, TfjsDType } from './dtypes';
import { cpuValues, currentBackend, dropData, HeldData, heapBytes, holdData, readData, wasmMemory } from './internals';
import { mainThreadCopy, useInPlace, WasmRead } from './wasm-heap';

type Tf = typeof tfType;

/** Staging memory reused across saves; pages are touched once when allocated (memcpy into fresh pages is
 * ~10x slower than into warm ones).
 * @deprecated wasm tensors are read in place by the writer thread (no copy); an arena only changes the fallback
 * where that cannot be used (copies in slices over later event-loop turns instead of at once). */
export class StagingArena {
  private buffers: Uint8Array[] = [];
  private used = 0;
  private inUse = false;

  acquire(): this {
    if (this.inUse) throw new CheckpointError('staging arena already in use (maxInflight > 1 needs one arena per save)', { code: 'ECKPT_BUSY' });
    this.inUse = true;
    this.used = 0;
    return this;
  }

  take(bytes: number): Uint8Array {
    const aligned = (bytes + 63) & ~63;
    let buf = this.buffers[this.used];
    if (!buf || buf.byteLength < aligned) {
      buf = new Uint8Array(Math.max(aligned, 64));
      buf.fill(0); // pre-fault
      this.buffers[this.used] = buf;
    }
    this.used++;
    return buf.subarray(0, bytes);
  }

  release(): void {
    this.inUse = false;
  }

  get retainedBytes(): number {
    return this.buffers.reduce((n, b) => n + b.byteLength, 0);
  }
}

export interface SnapshotOptions {
  /** Largest single copy out of the wasm heap (default 1 MiB: a turn overshoots its budget by at most one). */
  sliceBytes?: number;
  /** Copying done per event-loop turn before yielding (default 1 ms). */
  turnBudgetMs?: number;
  /** @deprecated see StagingArena. */
  arena?: StagingArena;
  /** wasm: 'in-place' (default where it is safe, see wasm-heap.ts) or 'copy' (copied on the calling thread). */
  wasmRead?: WasmRead;
  /** Where the one-time notice goes when in-place reads cannot be used (default: console.warn). */
  onWarning?: (message: string) => void;
  /** Bytes of data() reads (webgpu, tfjs-node) outstanding at once (default 64 MiB; one tensor is always let
   * through, however large). */
  maxReadBytesInFlight?: number;
  /** Main-thread time spent copying, summed and longest, filled in by materialize(). */
  onCopyStats?: (stats: { totalMs: number; longestMs: number; copiedBytes: number; readBytes?: number; peakReadBytesInFlight?: number }) => void;
}

const yieldToLoop = nextTurn;

const KINDS = Object.fromEntries(Object.entries(TFJS_DTYPES).map(([k, v]) => [k, { ...v, code: dtypeCode(v.dtype) }])) as Record<
  TfjsDType,
  (typeof TFJS_DTYPES)[TfjsDType] & { code: number }
>;

interface Pending {
  name: string;
  dtype: DType;
  shape: number[];
  bytes: number;
  held: HeldData;
}

/** Holds every tensor's current data at this instant, O(1) per tensor and without a Tensor object per tensor: on
 * cpu the values arrays themselves (already the bytes to write), elsewhere a counted reference on the backend's
 * data, read in materialize() and released as soon as its bytes are copied or read. */
export function snapshot(tf: Tf, tensors: Record<string, tfType.Tensor>, opts: SnapshotOptions = {}): TensorSource {
  const sliceBytes = opts.sliceBytes ?? 1 << 20;
  const turnBudgetMs = opts.turnBudgetMs ?? 1;
  if (!(sliceBytes >= 4096) || !(turnBudgetMs >= 0)) throw argumentError('sliceBytes must be >= 4096 and turnBudgetMs >= 0');
  const maxReadBytesInFlight = opts.maxReadBytesInFlight ?? 64 << 20;
  if (!(maxReadBytesInFlight > 0)) throw argumentError('maxReadBytesInFlight must be > 0');
  const current = currentBackend(tf);
  let list: TensorList | null = new TensorList(); // the tensors whose bytes are in hand (cpu)
  let pending: Pending[] = []; // held references still to be read or copied
  let bytes = 0;
  try {
    for (const name in tensors) {
      const t = tensors[name]!;
      // Comparisons, not a keyed lookup: the dtype strings are interned, so this is the cheapest test per tensor.
      const dtype = t?.dtype;
      const kind = dtype === 'float32' ? KINDS.float32 : dtype === 'int32' ? KINDS.int32 : dtype === 'bool' ? KINDS.bool : undefined;
      if (kind === undefined) {
        if (!t || typeof t !== 'object' || typeof t.dtype !== 'string') throw argumentError(`tensor "${name}" is not a tfjs tensor`);
        throw argumentError(`cannot checkpoint tensor "${name}" of dtype ${t.dtype} (float32, int32, bool)`);
      }
      const size = t.size * kind.bytes;
      bytes += size;
      const values = cpuValues(current, t);
      if (values !== undefined) list.pushCode(name, kind.code, t.shape, values);
      else pending.push({ name, dtype: kind.dtype, shape: t.shape, bytes: size, held: holdData(tf, current, t) });
    }
  } catch (err) {
    for (const p of pending) dropData(tf, p.held);
    throw err;
  }
  let arena: StagingArena | null = null;
  let materialized = false;
  const inPlace =
    pending.length > 0 &&
    current.wasm !== null &&
    pending.every((p) => p.held.heap) &&
    useInPlace(wasmMemory(current), opts.wasmRead, opts.onWarning ?? ((m) => console.warn(`ckptio: ${m}`)));
  const dropPending = () => {
    for (const p of pending) dropData(tf, p.held);
    pending = [];
  };
  const begin = (): TensorList => {
    if (list === null || materialized)
      throw new CheckpointError(list === null ? 'snapshot already released' : 'snapshot already materialized', { code: 'ECKPT_ARGS' });
    materialized = true;
    return list;
  };
  /** The heap tensors: views the writer reads in place (the references are held until release()), or copies made
   * now (the references go back at once). */
  const takeHeap = (out: TensorList, viewsAllowed: boolean): void => {
    if (inPlace && viewsAllowed) {
      for (const p of pending) out.push(p.name, p.dtype, p.shape, heapBytes(p.held, p.bytes));
      return;
    }
    const t0 = performance.now();
    let copied = 0;
    for (const p of pending) {
      out.push(p.name, p.dtype, p.shape, heapBytes(p.held, p.bytes).slice());
      copied += p.bytes;
    }
    mainThreadCopy.bytes += copied;
    dropPending();
    const ms = performance.now() - t0;
    opts.onCopyStats?.({ totalMs: ms, longestMs: ms, copiedBytes: copied });
  };
  return {
    bytes,
    materializeNow(): TensorList | null {
      // Backend reads (webgpu, tfjs-node) need turns; so does the deprecated arena's sliced copy.
      if (pending.some((p) => !p.held.heap) || (!inPlace && opts.arena !== undefined && pending.length > 0)) return null;
      const out = begin();
      if (pending.length) takeHeap(out, true);
      return out;
    },
    // Never views of the heap: whoever awaits this hands the bytes over later (after turns, or to lz4 on the
    // thread pool), when a view could be outdated.
    async materialize(): Promise<TensorList> {
      const out = begin();
      if (pending.length > 0 && pending.every((p) => p.held.heap) && (inPlace || opts.arena === undefined)) {
        takeHeap(out, false);
        return out;
      }
      let totalMs = 0;
      let longestMs = 0;
      let copiedBytes = 0;
      let turnMs = 0; // copying done since the last yield
      const reads: { done: Promise<void>; bytes: number }[] = []; // backend reads outstanding, oldest first
      let inFlight = 0;
      let readBytes = 0;
      let peakReadBytesInFlight = 0;
      const readAll = async (): Promise<void> => {
        for (const p of pending) {
          if (p.held.heap) {
            arena ??= (opts.arena ?? new StagingArena()).acquire();
            const raw = arena.take(p.bytes);
            for (let at = 0; at < raw.byteLength; at += sliceBytes) {
              if (turnMs >= turnBudgetMs) {
                await yieldToLoop();
                turnMs = 0;
              }
              const t0 = performance.now();
              // Resolved again for each slice: the wasm heap may have grown (and moved) meanwhile.
              raw.set(heapBytes(p.held, p.bytes).subarray(at, Math.min(at + sliceBytes, raw.byteLength)), at);
              const ms = performance.now() - t0;
              totalMs += ms;
              turnMs += ms;
              longestMs = Math.max(longestMs, turnMs);
              copiedBytes += Math.min(sliceBytes, raw.byteLength - at);
              mainThreadCopy.bytes += Math.min(sliceBytes, raw.byteLength - at);
            }
            out.push(p.name, p.dtype, p.shape, raw);
            continue;
          }
          while (reads.length && inFlight + p.bytes > maxReadBytesInFlight) {
            const oldest = reads.shift()!;
            await oldest.done;
            inFlight -= oldest.bytes;
          }
          // Issuing a read costs the main thread (webgpu: encoding and submitting the copy), so the reads are
          // issued in turns of at most `turnBudgetMs`, the first after the caller's save() has returned.
          if (readBytes === 0 || turnMs >= turnBudgetMs) {
            await yieldToLoop();
            turnMs = 0;
          }
          const t0 = performance.now();
          const done = readData(p.held).then((values) => {
            if (values.byteLength !== p.bytes) {
              throw new CheckpointError(`tensor "${p.name}": the backend read ${values.byteLength} bytes, expected ${p.bytes}`, {
                code: 'ECKPT_TFJS_INTERNALS',
              });
            }
            out.push(p.name, p.dtype, p.shape, values);
          });
          done.catch(() => {}); // a failure surfaces where it is awaited, not as an unhandled rejection meanwhile
          const issueMs = performance.now() - t0; // issuing the read (webgpu: encode + submit the copy); the map callback runs in the backend
          totalMs += issueMs;
          turnMs += issueMs;
          longestMs = Math.max(longestMs, turnMs);
          reads.push({ done, bytes: p.bytes });
          inFlight += p.bytes;
          readBytes += p.bytes;
          peakReadBytesInFlight = Math.max(peakReadBytesInFlight, inFlight);
        }
        await Promise.all(reads.map((r) => r.done));
      };
      try {
        await readAll();
      } catch (err) {
        // Nothing is given back to the backend (release() drops every held reference) while a read of it is still
        // in flight: the failure is reported once every read issued has settled.
        await Promise.allSettled(reads.map((r) => r.done));
        throw err;
      }
      dropPending(); // every byte is in hand: the backend's data goes back now, not when the file is durable
      opts.onCopyStats?.({ totalMs, longestMs, copiedBytes, ...(readBytes ? { readBytes, peakReadBytesInFlight } : {}) });
      return out;
    },
    release(): void {
      if (list === null) return;
      list = null;
      dropPending();
      arena?.release();
    },
  };
}
