/** Reading wasm tensors in place: the writer thread reads them straight from the wasm heap, so a save costs the
 * training thread no copy.
 *
 * Safe when (checked here, once per process, with a one-line warning naming the reason when not):
 * - the platform is Linux on x64, where it was established (V8 reserves the memory's whole address range up front
 *   while its wasm trap handler is on, so a grow keeps the heap where it is);
 * - the heap is not shared (a SharedArrayBuffer heap is written by other threads);
 * - the trap handler is not disabled (--disable-wasm-trap-handler / --no-wasm-trap-handler), since without the
 *   reservation a grow may move the heap;
 * - every grow of the memory goes through its JavaScript grow method, which is fenced: a grow first waits until no
 *   writer job still reads JavaScript memory in place (native.waitReads), so even a heap that moves is never read
 *   where it was. Emscripten grows the heap only through that method.
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

/** Why in-place reads are not used on this platform, or null where they are established (Node on Linux x64).
 * Elsewhere (linux-arm64, the browser) the copy runs: V8's reservation of the heap there was not verified, or no
 * writer thread reads JavaScript memory. */
export function platformRefusal(): string | null {
  const reader = environment().heapReader;
  return reader === null ? `no writer thread reads memory in place in ${environment().name}` : reader.refusal();
}

/** Why in-place reads cannot be used in this process for this memory, or null when they can. */
export function inPlaceRefusal(memory: WasmMemory | null): string | null {
  const platform = platformRefusal();
  if (platform !== null) return platform;
  if (memory === null) return "the wasm backend's memory was not found";
  if (typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer) return 'the wasm heap is shared';
  if (environment().heapReader!.trapHandlerDisabled()) return 'the wasm trap handler is disabled, so the heap may move when it grows';
  return null;
}

/** Installs the grow fence on the memory (once). */
function fence(memory: WasmMemory): void {
  if (fenced.has(memory)) return;
  const grow = memory.grow;
  Object.defineProperty(memory, 'grow', {
    configurable: true,
    writable: true,
    value(delta: number): number {
      // No drain here: settling would run JavaScript (and wasm frees) inside a wasm allocation.
      const reader = environment().heapReader!;
      if (reader.writerState().unread > 0 && !reader.waitReads(GROW_WAIT_MS)) {
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
