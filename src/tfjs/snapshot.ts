/** Zero-stall snapshot of tfjs tensors at a step boundary.
 *
 * snapshot() holds a reference on each tensor's current data (O(1) per tensor, no bytes touched). The bytes
 * are then produced by materialize(): on cpu the tensors' own arrays are handed to the writer as they are;
 * on wasm they are copied out of the heap into reused, pre-faulted staging buffers in slices of at most
 * `sliceBytes`, yielding to the event loop once a turn has spent `turnBudgetMs` copying, so no single block of
 * the main thread is long and a large state still takes only a few turns (one slice per turn made a 64 MiB
 * copy span 16 training steps, longer than a save interval of 10);
 * elsewhere (webgpu, tfjs-node) they are read with data(), never dataSync(): on webgpu that is the backend's
 * GPU->staging copy and mapAsync, several at once up to `maxReadBytesInFlight`, so training keeps the main
 * thread meanwhile. release() drops every reference once the file is written. */
import type * as tfType from '@tensorflow/tfjs';
import type { TensorSource } from '../checkpoint/checkpointer';
import type { DType, TensorEntry } from '../format/file';
import { argumentError, CheckpointError } from '../binding/errors';
import { isTfjsDType, TFJS_DTYPES } from './dtypes';
import { byteAccess, retainData } from './internals';

type Tf = typeof tfType;


/** Staging memory reused across saves; pages are touched once when allocated (memcpy into fresh pages is
 * ~10x slower than into warm ones). */
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
  arena?: StagingArena;
  /** Bytes of data() reads (webgpu, tfjs-node) outstanding at once (default 64 MiB; one tensor is always let
   * through, however large). */
  maxReadBytesInFlight?: number;
  /** Main-thread time spent copying, summed and longest, filled in by materialize(). */
  onCopyStats?: (stats: { totalMs: number; longestMs: number; copiedBytes: number; readBytes?: number; peakReadBytesInFlight?: number }) => void;
}

function entry(dtype: DType, t: tfType.Tensor, raw: Uint8Array): TensorEntry {
  const data = dtype === 'float32' ? new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)
    : dtype === 'int32' ? new Int32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)
      : raw;
  return { dtype, shape: [...t.shape], data };
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export function snapshot(tf: Tf, tensors: Record<string, tfType.Tensor>, opts: SnapshotOptions = {}): TensorSource {
  const held = new Map<string, tfType.Tensor>();
  let bytes = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (!t || typeof t !== 'object' || typeof t.dtype !== 'string') throw argumentError(`tensor "${name}" is not a tfjs tensor`);
    if (!isTfjsDType(t.dtype)) throw argumentError(`cannot checkpoint tensor "${name}" of dtype ${t.dtype} (float32, int32, bool)`);
    held.set(name, retainData(tf, t));
    bytes += t.size * TFJS_DTYPES[t.dtype].bytes;
  }
  const sliceBytes = opts.sliceBytes ?? 1 << 20;
  const turnBudgetMs = opts.turnBudgetMs ?? 1;
  if (!(sliceBytes >= 4096) || !(turnBudgetMs >= 0)) throw argumentError('sliceBytes must be >= 4096 and turnBudgetMs >= 0');
  const maxReadBytesInFlight = opts.maxReadBytesInFlight ?? 64 << 20;
  if (!(maxReadBytesInFlight > 0)) throw argumentError('maxReadBytesInFlight must be > 0');
  let released = false;
  let arena: StagingArena | null = null;
  return {
    bytes,
    async materialize(): Promise<Record<string, TensorEntry>> {
      const out: Record<string, TensorEntry> = {};
      let totalMs = 0;
      let longestMs = 0;
      let copiedBytes = 0;
      let turnMs = 0; // copying done since the last yield
      // data() reads outstanding, oldest first; the result lists the tensors in their order either way.
      const reads: { done: Promise<void>; bytes: number }[] = [];
      let inFlight = 0;
      let readBytes = 0;
      let peakReadBytesInFlight = 0;
      for (const [name, t] of held) {
        const dtype: DType = TFJS_DTYPES[t.dtype as keyof typeof TFJS_DTYPES].dtype;
        const access = byteAccess(tf, t);
        let raw: Uint8Array;
        if (access.kind === 'in-place') {
          raw = access.bytes;
        } else if (access.kind === 'heap') {
          arena ??= (opts.arena ?? new StagingArena()).acquire();
          raw = arena.take(access.bytes.byteLength);
          for (let at = 0; at < raw.byteLength; at += sliceBytes) {
            if (turnMs >= turnBudgetMs) {
              await yieldToLoop();
              turnMs = 0;
            }
            const t0 = performance.now();
            // Re-resolve the heap view for each slice: the wasm heap may have grown (and moved) meanwhile.
            const heap = byteAccess(tf, t);
            if (heap.kind !== 'heap') throw new CheckpointError('wasm tensor data moved out of the heap', { code: 'ECKPT_TFJS_INTERNALS' });
            raw.set(heap.bytes.subarray(at, Math.min(at + sliceBytes, raw.byteLength)), at);
            const ms = performance.now() - t0;
            totalMs += ms;
            turnMs += ms;
            longestMs = Math.max(longestMs, turnMs);
            copiedBytes += Math.min(sliceBytes, raw.byteLength - at);
          }
        } else {
          const bytes = t.size * TFJS_DTYPES[t.dtype as keyof typeof TFJS_DTYPES].bytes;
          while (reads.length && inFlight + bytes > maxReadBytesInFlight) {
            const oldest = reads.shift()!;
            await oldest.done;
            inFlight -= oldest.bytes;
          }
          out[name] = undefined as unknown as TensorEntry; // keeps the tensors' order in `out`
          const t0 = performance.now();
          const done = t.data().then((values) => {
            out[name] = entry(dtype, t, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
          });
          done.catch(() => {}); // a failure surfaces where it is awaited, not as an unhandled rejection meanwhile
          totalMs += performance.now() - t0; // issuing the read (webgpu: encode + submit the copy); the map callback runs in the backend
          reads.push({ done, bytes });
          inFlight += bytes;
          readBytes += bytes;
          peakReadBytesInFlight = Math.max(peakReadBytesInFlight, inFlight);
          continue;
        }
        out[name] = entry(dtype, t, raw);
      }
      await Promise.all(reads.map((r) => r.done));
      opts.onCopyStats?.({ totalMs, longestMs, copiedBytes, ...(readBytes ? { readBytes, peakReadBytesInFlight } : {}) });
      return out;
    },
    release(): void {
      if (released) return;
      released = true;
      for (const t of held.values()) t.dispose();
      held.clear();
      arena?.release();
    },
  };
}
