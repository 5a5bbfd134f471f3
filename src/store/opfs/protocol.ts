/** The messages between OpfsStore (the page's thread) and its writer, a dedicated Worker (worker.ts); and the few
 * Origin Private File System types both use (declared here: the project compiles without the DOM library). */
import type { NativeHeader } from '../../binding/contract';
import type { PackedForWorker } from '../../portable/protocol';

/** A save's tensors as the worker gets them: the packed table, each tensor's bytes a view of one buffer the page
 * copied them into (shared when the page is cross-origin isolated, else transferred) or of the shared wasm heap. The
 * same form the portable writer's thread gets. */
export type PackedTensors = PackedForWorker;

export type Request =
  | { op: 'open'; dir: string[] }
  | { op: 'list'; dir: string[] }
  | {
      op: 'save';
      dir: string[];
      name: string;
      tensors: PackedTensors;
      metadata: Record<string, string>;
      files: [string, Uint8Array][];
      remove: string[];
      lane?: number;
      generation?: number;
    }
  | { op: 'writeSmall'; dir: string[]; name: string; data: Uint8Array; exclusive: boolean }
  | { op: 'appendSmall'; dir: string[]; name: string; data: Uint8Array }
  | { op: 'readSmall'; dir: string[]; name: string; max: number }
  | { op: 'read'; dir: string[]; name: string; verify: boolean }
  | { op: 'readHeader'; dir: string[]; name: string }
  | { op: 'remove'; dir: string[]; names: string[] }
  | { op: 'cleanStaleTemps'; dir: string[] }
  | { op: 'lock'; dir: string[]; name: string }
  | { op: 'unlock'; dir: string[]; name: string };

export interface SaveDone {
  bytes: number;
  contentId?: string;
  removed: string[];
  generation: number;
}

export type Reply =
  | SaveDone
  | { names: string[] }
  | { created: boolean }
  | { data: Uint8Array | null }
  | { file: Uint8Array }
  | { header: NativeHeader }
  | { granted: boolean }
  | null;

export interface ErrorReply {
  message: string;
  code: string;
  /** The DOMException's name (NotFoundError, QuotaExceededError, ...), when the browser threw one. */
  domName?: string;
  path?: string;
  stage?: string;
  dataDurable?: boolean;
  generation?: number;
}

/** A message to the worker: `consumed` is posted (with the id) once the tensors' bytes are read. */
export type ToWorker = { id: number; request: Request };
export type FromWorker = { id: number; consumed: true } | { id: number; ok: true; reply: Reply } | { id: number; ok: false; error: ErrorReply };

/** The temporary name a file has until its move: `<name>.tmp.0.<8 hex>` (the native pattern, pid 0: a browser
 * has none), so a run directory copied out of the browser is cleaned by Node's writer as well. */
export const TEMP_NAME_RE = /\.tmp\.(\d+)\.[0-9a-f]{8}$/;

export interface SyncAccessHandle {
  write(data: ArrayBufferView, options?: { at?: number }): number;
  read(data: ArrayBufferView, options?: { at?: number }): number;
  getSize(): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}

/** A File (a Blob): its size, its bytes, a slice of them. */
export interface FileData {
  readonly size: number;
  arrayBuffer(): Promise<ArrayBuffer>;
  slice(start: number, end: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

export interface FileHandle {
  readonly kind: 'file';
  readonly name: string;
  createSyncAccessHandle(): Promise<SyncAccessHandle>;
  move(name: string): Promise<void>;
  getFile(): Promise<FileData>;
}

export interface DirectoryHandle {
  readonly kind: 'directory';
  readonly name: string;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<DirectoryHandle>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<FileHandle>;
  removeEntry(name: string): Promise<void>;
  entries(): AsyncIterable<[string, FileHandle | DirectoryHandle]>;
}
