/** Dedup of unchanged tensors (opt-in: `new Checkpointer({ dedup: true })`): a tensor whose identity (a tfjs
 * dataId: tensors are immutable, so the same dataId is the same bytes) is the one an earlier checkpoint of the run
 * stored is not written again; the new checkpoint names it in `ckptio.refs` instead, retention keeps the file
 * holding it for as long as something refers to it, and loading puts it back (read and checksum-verified from
 * that file). The typical case is a frozen layer while fine-tuning. */
import { CheckpointError } from '../binding/errors';
import type { DType, ReadResult, TensorList } from '../format/file';
import { METADATA_KEYS } from '../format/metadata-keys';
import { stepOf } from './names';

export interface TensorRef {
  /** The checkpoint (same run directory) whose file holds the bytes. */
  file: string;
  dtype: DType;
  shape: number[];
}

interface Stored {
  identity: object;
  file: string;
}

/** What a run has stored where, by tensor name (in memory: after a restart the first save stores everything). */
export class DedupIndex {
  private stored = new Map<string, Stored>();

  /** Splits a save into what is written and what is referenced; records the written ones as stored in `file`. */
  plan(
    file: string,
    tensors: TensorList,
    identities: ReadonlyMap<string, object> | undefined,
    alive: (file: string) => boolean,
  ): { write: TensorList; refs: Record<string, TensorRef>; dedupedBytes: number } {
    const write: number[] = [];
    const refs: Record<string, TensorRef> = {};
    let dedupedBytes = 0;
    for (let i = 0; i < tensors.length; i++) {
      const name = tensors.name(i);
      const id = identities?.get(name);
      const prev = this.stored.get(name);
      if (id !== undefined && prev && prev.identity === id && prev.file !== file && alive(prev.file)) {
        refs[name] = { file: prev.file, dtype: tensors.dtype(i), shape: tensors.shape(i) };
        dedupedBytes += tensors.data(i).byteLength;
        continue;
      }
      write.push(i);
      if (id !== undefined) this.stored.set(name, { identity: id, file });
    }
    return { write: write.length === tensors.length ? tensors : tensors.select(write), refs, dedupedBytes };
  }

  /** Forgets what a failed save would have stored. */
  forget(file: string): void {
    for (const [name, s] of this.stored) if (s.file === file) this.stored.delete(name);
  }
}

/** The files a checkpoint's `ckptio.refs` names (untrusted: each must be a checkpoint name of the same run). */
export function parseRefs(metadata: Readonly<Record<string, string>>, where: string): Record<string, TensorRef> {
  const text = metadata[METADATA_KEYS.refs];
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new CheckpointError(`${METADATA_KEYS.refs} is not JSON`, { code: 'ECKPT_FORMAT', path: where });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new CheckpointError(`${METADATA_KEYS.refs} is not an object`, { code: 'ECKPT_FORMAT', path: where });
  const out: Record<string, TensorRef> = {};
  for (const [name, r] of Object.entries(v as Record<string, unknown>)) {
    const ref = r as Partial<TensorRef>;
    if (
      typeof r !== 'object' ||
      r === null ||
      typeof ref.file !== 'string' ||
      stepOf(ref.file) === null ||
      typeof ref.dtype !== 'string' ||
      !Array.isArray(ref.shape) ||
      !ref.shape.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new CheckpointError(`${METADATA_KEYS.refs}: the reference for tensor "${name}" is not {file: a checkpoint of this run, dtype, shape}`, {
        code: 'ECKPT_FORMAT',
        path: where,
      });
    }
    out[name] = { file: ref.file, dtype: ref.dtype as DType, shape: [...ref.shape] };
  }
  return out;
}

/** Puts referenced tensors back into a loaded checkpoint, reading each referenced file once (verified). */
export async function resolveRefs(result: ReadResult, where: string, read: (file: string) => Promise<ReadResult>): Promise<ReadResult> {
  const refs = parseRefs(result.metadata, where);
  if (Object.keys(refs).length === 0) return result;
  const files = new Map<string, Promise<ReadResult>>();
  const tensors = { ...result.tensors };
  for (const [name, ref] of Object.entries(refs)) {
    if (tensors[name]) throw new CheckpointError(`tensor "${name}" is both stored and referenced`, { code: 'ECKPT_FORMAT', path: where });
    if (!files.has(ref.file)) files.set(ref.file, read(ref.file));
    const held = (await files.get(ref.file)!).tensors[name];
    if (!held || held.dtype !== ref.dtype || held.shape.join(',') !== ref.shape.join(',')) {
      throw new CheckpointError(`tensor "${name}" refers to ${ref.file}, which does not hold it as ${ref.dtype} [${ref.shape}]`, {
        code: 'ECKPT_FORMAT',
        path: where,
      });
    }
    tensors[name] = held;
  }
  const metadata = { ...result.metadata };
  delete metadata[METADATA_KEYS.refs];
  return { ...result, tensors, metadata };
}
