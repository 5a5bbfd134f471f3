/** The file codec without a file (docs/format.md): encodeCheckpoint gives the exact bytes writeCheckpoint puts on
 * disk for the same tensors and metadata, decodeCheckpoint parses and verifies such bytes. Stores that keep no
 * local file (in memory, an object store) commit and read through these; LocalStore keeps the native writer's
 * one-job-per-save path. Both run on the libuv pool. Compression is the writer's (not here). */
import { argumentError, callSite, CheckpointError } from '../binding/errors';
import { native } from '../binding/native';
import { COMPRESSION_KEY } from './compression';
import { ReadResult, unpackRead } from './file';
import { TensorEntry, TensorList } from './tensor-list';

export interface Encoded {
  bytes: Uint8Array;
  /** XXH3 of the tensors' names and digests (absent with checksum: false), as a save reports it. */
  contentId?: string;
}

/** The tensors' memory is read on the pool: keep it unchanged until the promise settles. */
export function encodeCheckpoint(
  tensors: Record<string, TensorEntry> | TensorList,
  options: { metadata?: Record<string, string>; checksum?: boolean } = {},
): Promise<Encoded> {
  const rethrow = callSite(encodeCheckpoint);
  try {
    const metadata = options.metadata ?? {};
    if (typeof metadata !== 'object' || metadata === null) throw argumentError('metadata must be an object of strings');
    if (Object.hasOwn(metadata, COMPRESSION_KEY)) throw argumentError(`metadata key ${COMPRESSION_KEY} is reserved`);
    const list = TensorList.from(tensors);
    return native
      .encode(list.pack(), metadata, { checksum: options.checksum ?? true })
      .then((r) => {
        void list; // referenced until the pool has read it
        return r.contentId !== undefined ? { bytes: r.bytes, contentId: r.contentId } : { bytes: r.bytes };
      })
      .catch(rethrow);
  } catch (err) {
    return Promise.reject(err instanceof CheckpointError ? err : argumentError(String(err))).catch(rethrow);
  }
}

/** Parses and (by default) verifies a checkpoint file's bytes; the tensors are views over `bytes`. A compressed
 * file is refused (decompression belongs to readCheckpoint). */
export function decodeCheckpoint(bytes: Uint8Array, options: { verify?: boolean } = {}): Promise<ReadResult & { contentId?: string }> {
  const rethrow = callSite(decodeCheckpoint);
  if (!(bytes instanceof Uint8Array)) return Promise.reject(argumentError('bytes must be a Uint8Array')).catch(rethrow);
  return native
    .decode(bytes, { verify: options.verify ?? true })
    .then((r): ReadResult & { contentId?: string } => {
      const { [COMPRESSION_KEY]: compressed, ...metadata } = r.metadata;
      if (compressed !== undefined)
        throw new CheckpointError('a compressed checkpoint cannot be decoded from bytes; read it with readCheckpoint', { code: 'ECKPT_FORMAT' });
      return {
        tensors: unpackRead(r.tensors),
        metadata,
        bytes: r.bytes,
        verified: r.verified,
        compression: 'none',
        ...(r.contentId !== undefined ? { contentId: r.contentId } : {}),
      };
    })
    .catch(rethrow);
}
