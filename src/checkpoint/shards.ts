/** A sharded step: the names of its objects and its decision record (one table for both). Each of `worldSize`
 * ranks writes `ckpt-<step>.rank-<r>-of-<n>.safetensors`; the step exists only once its decision
 * `ckpt-<step>.step.json` says "committed" and lists every shard with its content id. The decision is created
 * exclusively (it is never replaced), so a step is committed or aborted once, by whichever rank decides first.
 * Decisions are untrusted input: parseDecision accepts only a record whose names are this step's own. */
import { CheckpointError } from '../binding/errors';
import { utf8Bytes, utf8Text } from '../format/text';

/** The most ranks a run may have (names stay short, a record stays small). */
export const MAX_WORLD_SIZE = 4096;
/** Written by rank 0 once it has cleaned what a dead incarnation left: other ranks start saving after it. */
export const COORDINATOR_NAME = 'ckptio.coordinator';

const SHARD_RE = /^ckpt-(\d{10})\.rank-(\d{1,4})-of-(\d{1,4})\.safetensors$/;
const DECISION_RE = /^ckpt-(\d{10})\.step\.json$/;
const TOMBSTONE_RE = /^ckpt-(\d{10})\.pruned\.json$/;

function stepPrefix(step: number): string {
  return `ckpt-${String(step).padStart(10, '0')}`;
}

export function shardName(step: number, rank: number, worldSize: number): string {
  return `${stepPrefix(step)}.rank-${rank}-of-${worldSize}.safetensors`;
}

export function decisionName(step: number): string {
  return `${stepPrefix(step)}.step.json`;
}

/** A committed step's record as retention removes it: written before the record goes, so a rank that had not yet
 * read the decision still learns that its step committed. Removed some time later. */
export function tombstoneName(step: number): string {
  return `${stepPrefix(step)}.pruned.json`;
}

export function tombstoneStepOf(name: string): number | null {
  const m = TOMBSTONE_RE.exec(name);
  return m ? Number(m[1]) : null;
}

export function rankLockName(rank: number): string {
  return `ckptio.rank-${rank}.lock`;
}

export function shardOf(name: string): { step: number; rank: number; worldSize: number } | null {
  const m = SHARD_RE.exec(name);
  if (!m) return null;
  const [step, rank, worldSize] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // One spelling per shard: no leading zeros, rank below the world size.
  if (String(rank) !== m[2] || String(worldSize) !== m[3] || rank >= worldSize || worldSize > MAX_WORLD_SIZE) return null;
  return { step, rank, worldSize };
}

export function decisionStepOf(name: string): number | null {
  const m = DECISION_RE.exec(name);
  return m ? Number(m[1]) : null;
}

export interface ShardRecord {
  rank: number;
  file: string;
  contentId: string;
  bytes: number;
}

export type Decision =
  | { version: 1; step: number; outcome: 'committed'; worldSize: number; time: string; shards: ShardRecord[] }
  | { version: 1; step: number; outcome: 'aborted'; worldSize: number; time: string; missing: number[]; by: number; reason: string };

export function renderDecision(d: Decision): Uint8Array {
  return utf8Bytes(JSON.stringify(d) + '\n');
}

const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
const CONTENT_ID_RE = /^[0-9a-f]{16,64}$/;

/** A decision (or a tombstone) read from the store, checked against its own name; ECKPT_FORMAT naming what is wrong otherwise. */
export function parseDecision(name: string, bytes: Uint8Array, where: string): Decision {
  const bad = (why: string) => new CheckpointError(`${name} is not a valid step record: ${why}`, { code: 'ECKPT_FORMAT', path: `${where}/${name}` });
  const step = decisionStepOf(name) ?? tombstoneStepOf(name);
  if (step === null) throw bad('not a step record name');
  let d: Record<string, unknown>;
  try {
    d = JSON.parse(utf8Text(bytes)) as Record<string, unknown>;
  } catch {
    throw bad('not JSON');
  }
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw bad('not an object');
  if (d.version !== 1) throw bad(`version ${String(d.version)} is not 1`);
  if (d.step !== step) throw bad(`it names step ${String(d.step)}`);
  const worldSize = d.worldSize;
  if (!Number.isInteger(worldSize) || (worldSize as number) < 1 || (worldSize as number) > MAX_WORLD_SIZE) throw bad('worldSize is not an integer from 1');
  if (typeof d.time !== 'string' || !ISO_RE.test(d.time) || Number.isNaN(Date.parse(d.time))) throw bad('time is not an ISO time');
  const n = worldSize as number;
  if (d.outcome === 'committed') {
    const shards = d.shards;
    if (!Array.isArray(shards) || shards.length !== n) throw bad(`it must list ${n} shards`);
    const out: ShardRecord[] = shards.map((s: unknown, rank) => {
      const r = s as Partial<ShardRecord> | null;
      if (!r || typeof r !== 'object') throw bad(`shard ${rank} is not an object`);
      if (r.rank !== rank) throw bad(`shard ${rank} names rank ${String(r.rank)}`);
      if (r.file !== shardName(step, rank, n)) throw bad(`shard ${rank} is not named ${shardName(step, rank, n)}`);
      if (typeof r.contentId !== 'string' || !CONTENT_ID_RE.test(r.contentId)) throw bad(`shard ${rank} has no valid content id`);
      if (!Number.isSafeInteger(r.bytes) || (r.bytes as number) < 0) throw bad(`shard ${rank} has no valid size`);
      return { rank, file: r.file, contentId: r.contentId, bytes: r.bytes as number };
    });
    return { version: 1, step, outcome: 'committed', worldSize: n, time: d.time, shards: out };
  }
  if (d.outcome === 'aborted') {
    const missing = d.missing;
    if (!Array.isArray(missing) || !missing.every((r) => Number.isInteger(r) && r >= 0 && r < n)) throw bad('missing must list ranks');
    if (!Number.isInteger(d.by) || (d.by as number) < 0 || (d.by as number) >= n) throw bad('by must be a rank');
    if (typeof d.reason !== 'string' || d.reason.length > 1000) throw bad('reason must be a short string');
    return { version: 1, step, outcome: 'aborted', worldSize: n, time: d.time, missing: missing as number[], by: d.by as number, reason: d.reason };
  }
  throw bad(`outcome ${JSON.stringify(d.outcome)} is neither committed nor aborted`);
}

/** The coordinator file: who rank 0 is (the holder written into its lock file), once it has cleaned up. */
export interface CoordinatorInfo {
  pid: number;
  host: string;
  started: string;
  worldSize: number;
}
