/** The messages between the portable binding (the training thread) and its writer thread (writer-worker.ts). */
import type { NativeSaveResult, NativeWriteResult } from '../binding/contract';

export interface PackedForWorker {
  names: string;
  nameLengths: Uint32Array;
  dtypes: Uint8Array;
  ranks: Uint8Array;
  dims: Float64Array;
  /** Each tensor's bytes, copied off the caller's memory on the training thread (the buffers are transferred). */
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
