/** A store's commit through the codec, for stores that keep no local file (MemoryStore, S3Store): the checkpoint
 * encoded in memory (format/codec.ts), put whole, then the small objects with the content id substituted, then the
 * removals; the same order as the native writer's job, so the commit protocol's promise holds: nothing names a
 * checkpoint before it is whole, nothing is removed before the record says so. */
import { argumentError } from '../binding/errors';
import { withContentId } from '../binding/contract';
import { encodeCheckpoint } from '../format/codec';
import { SaveResult } from '../format/file';
import { CommitRequest } from './store';

export interface ObjectWrites {
  /** Puts one object whole (visible complete or not at all). */
  put(name: string, data: Uint8Array): Promise<void>;
  remove(names: string[]): Promise<void>;
}

export async function commitThroughCodec(request: CommitRequest, writes: ObjectWrites, location: string): Promise<SaveResult> {
  let settled = false;
  let consumed = false;
  const consume = () => {
    if (consumed) return;
    consumed = true;
    try {
      request.onConsumed?.();
    } catch {
      /* must not throw, by contract */
    }
  };
  const settle = (err: unknown, result: SaveResult | undefined) => {
    if (settled) return;
    settled = true;
    try {
      request.onSettled?.(err, result);
    } catch {
      /* must not throw, by contract */
    }
  };
  try {
    if ((request.options.compression ?? 'none') !== 'none')
      throw argumentError(`compression is not available with this store (${location}): the codec writes uncompressed checkpoints`);
    const encoded = await encodeCheckpoint(request.tensors, { ...(request.options.metadata ? { metadata: request.options.metadata } : {}) });
    // The bytes are copied into the encoded file: the caller's tensors are free from here on.
    consume();
    await writes.put(request.name, encoded.bytes);
    for (const f of request.files) await writes.put(f.name, withContentId(f.data, encoded.contentId));
    await writes.remove(request.remove);
    const result: SaveResult = {
      path: `${location}/${request.name}`,
      bytes: encoded.bytes.byteLength,
      direct: false,
      preallocated: false,
      replaced: false,
      copied: true,
      fileLeftovers: [],
      removed: [...request.remove],
      ...(encoded.contentId !== undefined ? { contentId: encoded.contentId } : {}),
    };
    settle(null, result);
    return result;
  } catch (err) {
    consume();
    settle(err, undefined);
    throw err;
  }
}
