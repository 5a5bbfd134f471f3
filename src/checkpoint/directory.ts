/** The layout of a run directory: `ckpt-<step>.safetensors` files, pointer files (`latest`, `best`,
 * `best-<metric>`: JSON {step, file, metric?}), tag files (`tag.<name>`), the manifest and the lock. Read through
 * a CheckpointStore; read-only use (ls, verify, loading) never takes the lock. */
import { CheckpointStore } from '../store/store';
import { environment } from './environment';
import { stepOf } from './manifest';
import { decisionStepOf } from './shards';
import { utf8Bytes, utf8Text } from '../format/text';

export { checkpointName, stepOf } from './manifest';

export const POINTER_LATEST = 'latest';
export const POINTER_BEST = 'best';

export interface Pointer {
  step: number;
  file: string;
  metric?: number;
}

function storeOf(where: string | CheckpointStore): CheckpointStore {
  return typeof where === 'string' ? environment().directoryStore(where) : where;
}

/** Checkpoint files present, newest step first. */
export async function listCheckpoints(where: string | CheckpointStore): Promise<{ step: number; file: string }[]> {
  return (await storeOf(where).list())
    .map(({ name }) => ({ step: stepOf(name), file: name }))
    .filter((e): e is { step: number; file: string } => e.step !== null)
    .sort((a, b) => b.step - a.step);
}

/** A pointer, or null when it is missing or unreadable (pointers are untrusted: only a checkpoint name, or in a
 * sharded run a step's record name, passes). */
export async function readPointer(where: string | CheckpointStore, name: string): Promise<Pointer | null> {
  const bytes = await storeOf(where).readSmall(name);
  if (!bytes) return null;
  try {
    const p = JSON.parse(utf8Text(bytes)) as Pointer;
    if (!Number.isSafeInteger(p.step) || typeof p.file !== 'string' || (stepOf(p.file) ?? decisionStepOf(p.file)) !== p.step) return null;
    return p.metric === undefined || typeof p.metric === 'number' ? p : null;
  } catch {
    return null;
  }
}

export function renderPointer(p: Pointer): Uint8Array {
  return utf8Bytes(JSON.stringify(p) + '\n');
}
