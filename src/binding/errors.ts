/** Every failure ckptio reports is a CheckpointError. OS failures keep the errno name as `code` (ENOSPC,
 * EIO, EACCES, ...) with `errno`, `syscall` and `path`; format problems use ECKPT_FORMAT, checksum
 * mismatches ECKPT_CHECKSUM, bad arguments ECKPT_ARGS, a full writer queue ECKPT_BUSY, a checkpoint that does not
 * fit the model it is restored into ECKPT_MISMATCH, an optional package that is not installed ECKPT_MISSING_PACKAGE,
 * a tfjs version whose internals ckptio does not recognise ECKPT_TFJS_INTERNALS, a save the writer aborted because an
 * earlier save of the same Checkpointer failed while it was queued ECKPT_ABORTED, a run directory another writer
 * holds ECKPT_LOCKED, no WebGPU adapter ECKPT_NO_GPU_ADAPTER, an object store's refusal or an unreachable object store
 * ECKPT_REMOTE (a RemoteError, with the S3 error code and HTTP status), a sharded step that another rank did not
 * complete (it never arrived in time, skipped or failed its shard) ECKPT_PEER, naming the ranks, a browser without what the
 * browser store needs (a module Worker, the origin private file system, Web Locks) ECKPT_UNSUPPORTED. */
export type CheckpointErrorCode =
  | 'ECKPT_FORMAT'
  | 'ECKPT_CHECKSUM'
  | 'ECKPT_ARGS'
  | 'ECKPT_BUSY'
  | 'ECKPT_CLOSED'
  | 'ECKPT_INTERNAL'
  | 'ECKPT_MISMATCH'
  | 'ECKPT_MISSING_PACKAGE'
  | 'ECKPT_TFJS_INTERNALS'
  | 'ECKPT_ABORTED'
  | 'ECKPT_LOCKED'
  | 'ECKPT_NO_GPU_ADAPTER'
  | 'ECKPT_REMOTE'
  | 'ECKPT_PEER'
  | 'ECKPT_UNSUPPORTED'
  | (string & {});

export interface CheckpointErrorInfo {
  code: CheckpointErrorCode;
  errno?: number;
  syscall?: string;
  path?: string;
}

export class CheckpointError extends Error {
  readonly code: CheckpointErrorCode;
  readonly errno?: number;
  readonly syscall?: string;
  readonly path?: string;

  constructor(message: string, info: CheckpointErrorInfo) {
    super(message);
    this.name = 'CheckpointError';
    this.code = info.code;
    if (info.errno !== undefined) this.errno = info.errno;
    if (info.syscall !== undefined) this.syscall = info.syscall;
    if (info.path !== undefined) this.path = info.path;
  }
}

/** An object store's refusal (the S3 error code: NoSuchBucket, InvalidAccessKeyId, BadDigest, ...) or a failure
 * to reach it (the network error's code: ECONNREFUSED, ...). Never carries credentials: only codes, the HTTP status,
 * the operation and the key. */
export class RemoteError extends CheckpointError {
  /** The S3 error code, or the network error's code. */
  readonly s3Code: string;
  /** The HTTP status, when the store answered. */
  readonly status?: number;
  /** Whether trying again later may succeed (the store unreachable, a 5xx, throttling). */
  readonly retryable: boolean;

  constructor(message: string, info: { s3Code: string; status?: number; retryable: boolean; path?: string }) {
    super(message, info.path === undefined ? { code: 'ECKPT_REMOTE' } : { code: 'ECKPT_REMOTE', path: info.path });
    this.name = 'RemoteError';
    this.s3Code = info.s3Code;
    if (info.status !== undefined) this.status = info.status;
    this.retryable = info.retryable;
  }
}

/** A sharded step that did not commit because of other ranks (ECKPT_PEER): `ranks` names them. */
export class PeerError extends CheckpointError {
  readonly ranks: number[];
  /** The step, or null when no step was involved (rank 0 never started). */
  readonly step: number | null;

  constructor(message: string, info: { step: number | null; ranks: number[]; path?: string }) {
    super(message, info.path === undefined ? { code: 'ECKPT_PEER' } : { code: 'ECKPT_PEER', path: info.path });
    this.name = 'PeerError';
    this.step = info.step;
    this.ranks = info.ranks;
  }
}

export function argumentError(message: string, path?: string): CheckpointError {
  return new CheckpointError(message, path === undefined ? { code: 'ECKPT_ARGS' } : { code: 'ECKPT_ARGS', path });
}

/** A Node fs error (or anything else) as a CheckpointError, keeping code, errno (positive, as from the addon),
 * syscall and path. */
export function toCheckpointError(err: unknown): CheckpointError {
  if (err instanceof CheckpointError) return err;
  const e = err as NodeJS.ErrnoException;
  const info: CheckpointErrorInfo = { code: typeof e?.code === 'string' ? e.code : 'ECKPT_INTERNAL' };
  if (typeof e?.errno === 'number') info.errno = Math.abs(e.errno);
  if (typeof e?.syscall === 'string') info.syscall = e.syscall;
  if (typeof e?.path === 'string') info.path = e.path;
  const out = new CheckpointError(e?.message ?? String(err), info);
  if (e?.stack) out.stack = e.stack;
  return out;
}

/** Captures the caller's stack now, so that an error from the writer thread later points at user code
 * (the way sharp does it), not at the promise plumbing. */
export function callSite(fn: Function): (err: unknown) => never {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, fn);
  return (err: unknown): never => {
    if (err instanceof Error && holder.stack) {
      const frames = holder.stack.split('\n').slice(1).join('\n');
      err.stack = `${err.name}: ${err.message}\n${frames}`;
    }
    throw err;
  };
}
