/** The run manifest: one small JSON object per run directory listing every committed checkpoint with its step,
 * time, size, metrics, content id, parent, tags and the reasons it is kept, plus the pointers. It is rewritten
 * (atomically, inside the save's own writer job) after each commit, and can always be rebuilt from the checkpoint
 * files' headers alone, so a lost or corrupt manifest loses nothing. */
import { CheckpointError } from '../binding/errors';
import type { HeaderInfo } from '../format/file';
import { METADATA_KEYS } from '../format/metadata-keys';
import { parseRefs } from './dedup';
import { stepOf } from './names';
import { NAME_PATTERN, NAME_RE } from './names';
import { utf8Bytes, utf8Text } from '../format/text';

export { checkpointName, stepOf } from './names';

export const MANIFEST_NAME = 'ckptio-manifest.json';
const TAG_FILE_RE = new RegExp(`^tag\\.(${NAME_PATTERN})$`);

export function tagFileName(tag: string): string {
  return `tag.${tag}`;
}

export function tagOfFile(name: string): string | null {
  return TAG_FILE_RE.exec(name)?.[1] ?? null;
}

/** Where a checkpoint came from: the previous checkpoint of its run, or (fine-tuning) another run's. */
export interface Parent {
  step?: number;
  contentId?: string;
  /** The parent run's location, for a checkpoint that starts a new run from another's. */
  run?: string;
}

export interface ManifestEntry {
  step: number;
  file: string;
  /** ISO time of the save. */
  time: string;
  /** Tensor data bytes. */
  bytes: number;
  metrics: Record<string, number>;
  /** XXH3 of the tensors' names and digests; null without checksums. */
  contentId: string | null;
  parent: Parent | null;
  /** The other run's checkpoint this run started from (a fine-tune), on every checkpoint of the run. */
  origin?: Parent | null;
  /** Checkpoints of this run holding tensors this one stores by reference (dedup). */
  refs?: string[];
  /** Tensor bytes not written because they were stored by reference. */
  dedupedBytes?: number;
  tags: string[];
  /** Why retention keeps it. */
  keptBy: string[];
}

export interface Manifest {
  version: 1;
  entries: ManifestEntry[];
  pointers: Record<string, number>;
}

/** The per-file metadata that makes each checkpoint self-describing (a rebuild reads these back). */
export function describingMetadata(e: Pick<ManifestEntry, 'time' | 'metrics' | 'parent' | 'origin'>): Record<string, string> {
  const out: Record<string, string> = { [METADATA_KEYS.time]: e.time };
  if (Object.keys(e.metrics).length) out[METADATA_KEYS.metrics] = JSON.stringify(e.metrics);
  if (e.parent) out[METADATA_KEYS.parent] = JSON.stringify(e.parent);
  if (e.origin) out[METADATA_KEYS.origin] = JSON.stringify(e.origin);
  return out;
}

function bad(message: string, path?: string): CheckpointError {
  return new CheckpointError(`manifest: ${message}`, path === undefined ? { code: 'ECKPT_FORMAT' } : { code: 'ECKPT_FORMAT', path });
}

function parseMetrics(v: unknown, where: string): Record<string, number> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${where} is not an object`);
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(v)) {
    if (!NAME_RE.test(k) || typeof x !== 'number' || !Number.isFinite(x)) throw bad(`${where}.${k} is not a finite number`);
    out[k] = x;
  }
  return out;
}

function parseParent(v: unknown, where: string): Parent | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${where} is not an object`);
  const p = v as Record<string, unknown>;
  const out: Parent = {};
  if (p.step !== undefined) {
    if (!Number.isSafeInteger(p.step) || (p.step as number) < 0) throw bad(`${where}.step`);
    out.step = p.step as number;
  }
  if (p.contentId !== undefined) {
    if (typeof p.contentId !== 'string' || !/^[0-9a-f]{16}$/.test(p.contentId)) throw bad(`${where}.contentId`);
    out.contentId = p.contentId;
  }
  if (p.run !== undefined) {
    if (typeof p.run !== 'string' || p.run.length > 4096 || p.run.includes('\0')) throw bad(`${where}.run`);
    out.run = p.run;
  }
  return out;
}

/** Parses a manifest read from disk (untrusted: every field checked; file names must be checkpoint names). */
export function parseManifest(bytes: Uint8Array, path: string): Manifest {
  let v: unknown;
  try {
    v = JSON.parse(utf8Text(bytes));
  } catch {
    throw bad('not JSON', path);
  }
  const m = v as Partial<Manifest>;
  if (typeof v !== 'object' || v === null || m.version !== 1 || !Array.isArray(m.entries) || typeof m.pointers !== 'object' || m.pointers === null) {
    throw bad('not a version 1 manifest', path);
  }
  const entries = m.entries.map((e: unknown, i): ManifestEntry => {
    const x = e as Partial<ManifestEntry>;
    const where = `entries[${i}]`;
    if (typeof e !== 'object' || e === null) throw bad(`${where} is not an object`, path);
    if (!Number.isSafeInteger(x.step) || (x.step as number) < 0 || typeof x.file !== 'string' || stepOf(x.file) !== x.step)
      throw bad(`${where}: step and file do not match`, path);
    if (typeof x.time !== 'string' || Number.isNaN(Date.parse(x.time))) throw bad(`${where}.time`, path);
    if (!Number.isSafeInteger(x.bytes) || (x.bytes as number) < 0) throw bad(`${where}.bytes`, path);
    if (x.contentId !== null && (typeof x.contentId !== 'string' || !/^[0-9a-f]{16}$/.test(x.contentId))) throw bad(`${where}.contentId`, path);
    if (!Array.isArray(x.tags) || !x.tags.every((t) => typeof t === 'string' && NAME_RE.test(t))) throw bad(`${where}.tags`, path);
    if (!Array.isArray(x.keptBy) || !x.keptBy.every((t) => typeof t === 'string' && t.length < 256)) throw bad(`${where}.keptBy`, path);
    return {
      step: x.step!,
      file: x.file,
      time: x.time,
      bytes: x.bytes!,
      metrics: parseMetrics(x.metrics, `${where}.metrics`),
      contentId: x.contentId ?? null,
      parent: parseParent(x.parent, `${where}.parent`),
      origin: parseParent(x.origin, `${where}.origin`),
      tags: [...x.tags],
      keptBy: [...x.keptBy],
      ...(x.refs !== undefined ? { refs: parseRefFiles(x.refs, `${where}.refs`, path) } : {}),
      ...(x.dedupedBytes !== undefined ? { dedupedBytes: nonNegative(x.dedupedBytes, `${where}.dedupedBytes`, path) } : {}),
    };
  });
  const pointers: Record<string, number> = {};
  for (const [k, s] of Object.entries(m.pointers)) {
    if (!NAME_RE.test(k) || !Number.isSafeInteger(s)) throw bad(`pointers.${k}`, path);
    pointers[k] = s as number;
  }
  return { version: 1, entries: entries.sort((a, b) => a.step - b.step), pointers };
}

function parseRefFiles(v: unknown, where: string, path: string): string[] {
  if (!Array.isArray(v) || !v.every((f) => typeof f === 'string' && stepOf(f) !== null)) throw bad(`${where} is not a list of checkpoint names`, path);
  return [...v] as string[];
}

function nonNegative(v: unknown, where: string, path: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad(where, path);
  return v as number;
}

export function renderManifest(m: Manifest): Uint8Array {
  return utf8Bytes(JSON.stringify(m, null, 1) + '\n');
}

/** A manifest entry recovered from a checkpoint's header (no tensor data read). */
export function entryFromHeader(file: string, h: HeaderInfo, tags: string[]): ManifestEntry {
  const step = stepOf(file);
  const recorded = h.metadata[METADATA_KEYS.step];
  if (step === null || (recorded !== undefined && String(step) !== recorded)) {
    throw bad(`${file}: its ${METADATA_KEYS.step} (${String(recorded)}) does not match its name`);
  }
  const at = `${file}: ${METADATA_KEYS.metrics}`;
  let metrics: Record<string, number> = {};
  let parent: Parent | null = null;
  let origin: Parent | null = null;
  try {
    if (h.metadata[METADATA_KEYS.metrics] !== undefined) metrics = parseMetrics(JSON.parse(h.metadata[METADATA_KEYS.metrics]!), at);
    else if (h.metadata[METADATA_KEYS.metric] !== undefined && Number.isFinite(Number(h.metadata[METADATA_KEYS.metric])))
      metrics = { metric: Number(h.metadata[METADATA_KEYS.metric]) };
    if (h.metadata[METADATA_KEYS.parent] !== undefined) parent = parseParent(JSON.parse(h.metadata[METADATA_KEYS.parent]!), `${file}: parent`);
    if (h.metadata[METADATA_KEYS.origin] !== undefined) origin = parseParent(JSON.parse(h.metadata[METADATA_KEYS.origin]!), `${file}: origin`);
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw bad(`${file}: unreadable metrics or parent`);
  }
  const time = h.metadata[METADATA_KEYS.time];
  const refs = [...new Set(Object.values(parseRefs(h.metadata, file)).map((r) => r.file))];
  return {
    ...(refs.length ? { refs } : {}),
    step,
    file,
    time: time !== undefined && !Number.isNaN(Date.parse(time)) ? time : new Date(0).toISOString(),
    bytes: h.tensors.reduce((n, t) => n + t.bytes, 0),
    metrics,
    contentId: h.contentId ?? null,
    parent,
    origin,
    tags,
    keptBy: [],
  };
}
