/** Reading a sharded run (shards.ts): its committed steps, newest first, and a step's shards, each verified against
 * the record (content id from the header, every tensor's digest on read). Every rank runs the same checks on every
 * shard, so all ranks agree on the newest complete step. */
import { CheckpointError } from '../binding/errors';
import type { ReadResult } from '../format/file';
import type { CheckpointStore } from '../store/store';
import { Decision, decisionStepOf, parseDecision } from './shards';

export type CommittedStep = Extract<Decision, { outcome: 'committed' }>;

/** The committed records present, newest first; unreadable records are reported and skipped. */
export async function committedSteps(store: CheckpointStore, warn: (m: string) => void): Promise<CommittedStep[]> {
  const out: CommittedStep[] = [];
  for (const { name } of await store.list()) {
    if (decisionStepOf(name) === null) continue;
    try {
      const bytes = await store.readSmall(name);
      if (!bytes) continue;
      const d = parseDecision(name, bytes, store.location);
      if (d.outcome === 'committed') out.push(d);
    } catch (err) {
      warn(`${(err as Error).message}; the step is skipped`);
    }
  }
  return out.sort((a, b) => b.step - a.step);
}

/** Checks every shard's header against the record (present, same content id and size) without reading tensor
 * data; throws naming the first shard that does not match. */
export async function checkShardHeaders(store: CheckpointStore, d: CommittedStep): Promise<void> {
  for (const s of d.shards) {
    const header = await store.readHeader(s.file);
    if (header.contentId !== s.contentId || header.bytes !== s.bytes)
      throw new CheckpointError(`rank ${s.rank}'s shard ${s.file} is not the one step ${d.step}'s record lists (content id or size differs)`, {
        code: 'ECKPT_CHECKSUM',
        path: `${store.location}/${s.file}`,
      });
  }
}

/** Every shard of the step, read and verified, in rank order; throws naming the first shard that is missing or
 * does not match the record. */
export async function readStep(store: CheckpointStore, d: CommittedStep): Promise<ReadResult[]> {
  await checkShardHeaders(store, d);
  const out: ReadResult[] = [];
  for (const s of d.shards) out.push(await store.read(s.file, { verify: true }));
  return out;
}
