/** Reading wasm tensors in place: the writer thread reads them straight from the wasm heap, so a save costs the
 * training thread no copy. Each platform says when that is safe (its HeapReader, checked here once per process, with
 * a one-line warning naming the reason when not):
 * - Node (the native addon): Linux on x64, where it was established (V8 reserves the memory's whole address range
 *   up front while its wasm trap handler is on, so a grow keeps the heap where it is); a heap that is not shared; the
 *   trap handler not disabled. Every grow of the memory goes through its JavaScript grow method, which is fenced: a
 *   grow first waits until no writer job still reads JavaScript memory in place (native.waitReads), so even a heap
 *   that moves is never read where it was. Emscripten grows the heap only through that method.
 * - The browser (the writer worker): a shared heap only (tfjs's threaded wasm build, in a cross-origin isolated
 *   page), which the worker can read at all; a shared memory never moves when it grows, so no fence.
 * In both, the snapshot holds the tensors until the writer has read them, so their memory is not reused meanwhile.
 * Elsewhere the bytes are copied on the training thread before save() returns (counted in mainThreadCopy). */
import { CheckpointError } from '../binding/errors';
import { environment } from '../checkpoint/environment';
import type { WasmMemory } from './internals';

/** How long a grow waits for the writer to finish reading the heap before it fails (an allocation failure in tfjs). */
const GROW_WAIT_MS = 120_000;

export type WasmRead = 'in-place' | 'copy';

/** Bytes copied out of the wasm heap on the training thread, for tests and benchmarks. */
export const mainThreadCopy = { bytes: 0 };

const fenced = new WeakSet<WasmMemory>();
let warned = false;

/** Why in-place reads are not used on this platform (for any heap), or null where they can be. */
export function platformRefusal(): string | null {
  const reader = environment().heapReader;
  return reader === null ? `no writer thread reads memory in place in ${environment().name}` : reader.refusal(null);
}

/** Why in-place reads cannot be used in this process for this memory, or null when they can. */
export function inPlaceRefusal(memory: WasmMemory | null): string | null {
  const reader = environment().heapReader;
  if (reader === null) return `no writer thread reads memory in place in ${environment().name}`;
  if (memory === null) return "the wasm backend's memory was not found";
  return reader.refusal(memory.buffer);
}

/** Installs the grow fence on the memory (once). */
function fence(memory: WasmMemory): void {
  const reader = environment().heapReader!.growFence;
  if (reader === null || fenced.has(memory)) return;
  const grow = memory.grow;
  Object.defineProperty(memory, 'grow', {
    configurable: true,
    writable: true,
    value(delta: number): number {
      // No drain here: settling would run JavaScript (and wasm frees) inside a wasm allocation.
      if (reader.unread() > 0 && !reader.waitReads(GROW_WAIT_MS)) {
        throw new CheckpointError(`the wasm heap cannot grow: the writer has not finished reading it after ${GROW_WAIT_MS} ms`, { code: 'ECKPT_BUSY' });
      }
      return grow.call(memory, delta);
    },
  });
  fenced.add(memory);
}

/** Whether this snapshot reads the heap in place: `requested` forces copying; 'in-place' where it cannot be used
 * copies too, after the warning. */
export function useInPlace(memory: WasmMemory | null, requested: WasmRead | undefined, warn: (m: string) => void): boolean {
  if (requested === 'copy') return false;
  const refusal = inPlaceRefusal(memory);
  if (refusal !== null) {
    if (!warned) {
      warned = true;
      warn(`wasm tensors are copied on the training thread before each save (${refusal})`);
    }
    return false;
  }
  fence(memory!);
  return true;
}
