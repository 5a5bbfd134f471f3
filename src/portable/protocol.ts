/** The messages between the portable binding (the training thread) and its writer thread (writer-worker.ts). */
import type { NativeSaveResult, NativeWriteResult } from '../binding/contract';

export interface PackedForWorker {
  names: string;
  nameLengths: Uint32Array;
  dtypes: Uint8Array;
  ranks: Uint8Array;
  dims: Float64Array;
  /** Each tensor's bytes, copied off the caller's memory on the training thread into shared buffers the binding reuses. */
  data: Uint8Array[];
}

export type Job =
  | {
      op: 'save';
      id: number;
      path: string;
      tensors: PackedForWorker;
      metadata: Record<string, string>;
      checksum: boolean;
      files: [string, Uint8Array][];
      removeDir?: string;
      remove: string[];
      lane?: number;
      generation?: number;
      /** Only a save reports the extra fields (fileLeftovers, removed, generation). */
      isSave: boolean;
    }
  | { op: 'writeFile'; id: number; path: string; data: Uint8Array }
  | { op: 'remove'; id: number; dir: string; names: string[] }
  | { op: 'lease'; path: string; holder: string }
  | { op: 'unlease'; path: string };

export interface WorkerError {
  message: string;
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
  stage?: string;
  dataDurable?: boolean;
  generation?: number;
  contentId?: string;
}

export type Completion = { id: number; ok: true; result: NativeWriteResult | NativeSaveResult } | { id: number; ok: false; error: WorkerError };

/** Int32 slots of the shared counter: jobs posted and not yet completed (the exit handler waits on it). */
export const PENDING = 0;

/** An fs error (code, errno, syscall, path) or a CheckpointError as the fields a CheckpointError is rebuilt from. */
export function errorOf(err: unknown): WorkerError {
  const e = err as NodeJS.ErrnoException & { code?: string };
  if (e && typeof e.code === 'string' && typeof e.errno === 'number') {
    const out: WorkerError = { message: e.message, code: e.code, errno: Math.abs(e.errno) };
    if (e.syscall) out.syscall = e.syscall;
    if (e.path) out.path = e.path;
    return out;
  }
  if (e && typeof e.code === 'string' && e.code.startsWith('ECKPT_')) {
    const out: WorkerError = { message: e.message, code: e.code };
    const p = (e as { path?: string }).path;
    if (p) out.path = p;
    return out;
  }
  return { message: String(e?.message ?? e), code: 'ECKPT_INTERNAL' };
}
