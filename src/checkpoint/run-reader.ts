/** The one read-only reader of a run: its checkpoints (the manifest checked against the objects present, files it
 * lacks adopted from their headers), pointers and tags, through any CheckpointStore, without the run lock (so it
 * works while a writer holds it) and without trusting any of it: a missing or corrupt manifest is recovered from
 * headers, unreadable pointers are reported, never followed. The Checkpointer's start-up, ls, verify, log, prune
 * and the report all read a run through here. */
import { CheckpointError, toCheckpointError } from '../binding/errors';
import type { HeaderInfo } from '../format/file';
import { environment } from './environment';
import { CheckpointStore } from '../store/store';
import { POINTER_BEST, POINTER_LATEST, readPointer } from './directory';
import { entryFromHeader, Manifest, MANIFEST_NAME, ManifestEntry, parseManifest, stepOf, tagOfFile } from './manifest';
import { HISTORY_NAME, HistoryEvent, parseHistory } from './history';
import { NAME_PATTERN } from './names';
import { checkShardHeaders, readStep } from './shard-reader';
import { decisionStepOf, parseDecision, ShardRecord } from './shards';

export interface Problem {
  code: string;
  message: string;
}

export interface PointerView {
  name: string;
  /** A tag file (`tag.<name>`) rather than a pointer. */
  tag: string | null;
  step: number | null;
  file: string | null;
  /** Why it does not resolve (unreadable, missing file, recorded in the manifest but absent), else null. */
  problem: Problem | null;
}

export interface CheckpointView {
  step: number;
  file: string;
  /** The manifest's entry, or one recovered from the header when the manifest lacks the file. */
  entry: ManifestEntry | null;
  present: boolean;
  inManifest: boolean;
  /** Read when the manifest lacks the file, or for every file with `headers: 'all'`. */
  header: HeaderInfo | null;
  /** Header parse failure (or, with verify, the full read's failure), else null. */
  problem: Problem | null;
  verified: boolean;
  pointers: string[];
  tags: string[];
}

/** A sharded run's committed step (shards.ts): its record and its shards, checked together. */
export interface StepView {
  step: number;
  /** The record's name. */
  file: string;
  worldSize: number | null;
  time: string | null;
  shards: ShardRecord[];
  /** The record unreadable, a shard missing or not the one the record lists (header), or (with verify) a digest. */
  problem: Problem | null;
  verified: boolean;
  pointers: string[];
}

export interface RunView {
  dir: string;
  store: CheckpointStore;
  manifest: Manifest | null;
  manifestProblem: Problem | null;
  /** Oldest first; entries of the manifest whose file is gone are here too, with present: false. */
  checkpoints: CheckpointView[];
  /** A sharded run's committed steps, oldest first (empty for a run of one process). */
  steps: StepView[];
  pointers: PointerView[];
  /** Every save and resume recorded (history.ts), pruned checkpoints included; null when the run has no history. */
  history: HistoryEvent[] | null;
  /** Why the history could not be read, or how many of its lines were not valid events. */
  historyProblem: Problem | null;
}

export interface ReadRunOptions {
  /** Read every checkpoint in full and check its digests. */
  verify?: boolean;
  /** 'all' (default): every checkpoint's header is read and checked. 'missing': only those the manifest lacks
   * (a start-up's cost then does not grow with the run's length). */
  headers?: 'all' | 'missing';
}

const BEST_POINTER_RE = new RegExp(`^best-${NAME_PATTERN}$`);

export function isPointerName(name: string): boolean {
  return name === POINTER_LATEST || name === POINTER_BEST || BEST_POINTER_RE.test(name);
}

function problemOf(err: unknown): Problem {
  const e = toCheckpointError(err);
  return { code: String(e.code), message: e.message };
}

/** Reads the whole view of the run in `where` (a directory or a store). */
export async function readRun(where: string | CheckpointStore, opts: ReadRunOptions = {}): Promise<RunView> {
  const store = typeof where === 'string' ? environment().directoryStore(where) : where;
  const names = (await store.list()).map((o) => o.name).sort();
  let manifest: Manifest | null = null;
  let manifestProblem: Problem | null = null;
  if (names.includes(MANIFEST_NAME)) {
    try {
      const bytes = await store.readSmall(MANIFEST_NAME);
      if (bytes) manifest = parseManifest(bytes, `${store.location}/${MANIFEST_NAME}`);
    } catch (err) {
      manifestProblem = problemOf(err);
    }
  }
  const byFile = new Map<string, CheckpointView>();
  for (const e of manifest?.entries ?? []) {
    byFile.set(e.file, {
      step: e.step,
      file: e.file,
      entry: e,
      present: false,
      inManifest: true,
      header: null,
      problem: null,
      verified: false,
      pointers: [],
      tags: [],
    });
  }
  for (const file of names.filter((n) => stepOf(n) !== null)) {
    const v = byFile.get(file) ?? {
      step: stepOf(file)!,
      file,
      entry: null,
      present: true,
      inManifest: false,
      header: null,
      problem: null,
      verified: false,
      pointers: [],
      tags: [],
    };
    v.present = true;
    byFile.set(file, v);
    if (v.inManifest && opts.headers === 'missing' && !opts.verify) continue;
    try {
      v.header = await store.readHeader(file);
      if (!v.entry) v.entry = entryFromHeader(file, v.header, []);
      if (opts.verify) v.verified = (await store.read(file, { verify: true })).verified;
    } catch (err) {
      v.problem = problemOf(err);
    }
  }
  for (const v of byFile.values()) {
    if (!v.present) v.problem = { code: 'ENOENT', message: `${v.file} is listed in the manifest but missing` };
  }
  // Pointers: the standard names, every best-* and tag.* object, and every pointer the manifest records.
  const pointerNames = new Set<string>();
  for (const n of names) if (isPointerName(n) || tagOfFile(n) !== null) pointerNames.add(n);
  for (const n of Object.keys(manifest?.pointers ?? {})) pointerNames.add(n);
  const steps = await readSteps(store, names, opts.verify ?? false);
  const byStepFile = new Map(steps.map((s) => [s.file, s]));
  const pointers: PointerView[] = [];
  for (const name of [...pointerNames].sort()) {
    const tag = tagOfFile(name);
    const p: PointerView = { name, tag, step: null, file: null, problem: null };
    pointers.push(p);
    if (!names.includes(name)) {
      p.problem = { code: 'ENOENT', message: `the manifest records pointer ${name} (step ${manifest?.pointers[name]}) but the file is missing` };
      continue;
    }
    let parsed;
    try {
      parsed = await readPointer(store, name);
    } catch (err) {
      p.problem = problemOf(err);
      continue;
    }
    if (!parsed) {
      p.problem = { code: 'ECKPT_FORMAT', message: `${name} is not a valid pointer (JSON {step, file} naming a checkpoint)` };
      continue;
    }
    p.step = parsed.step;
    p.file = parsed.file;
    const step = byStepFile.get(parsed.file);
    if (decisionStepOf(parsed.file) !== null) {
      if (!step) p.problem = { code: 'ENOENT', message: `${name} points at ${parsed.file} (step ${parsed.step}), which is missing` };
      else if (step.problem)
        p.problem = { code: step.problem.code, message: `${name} points at step ${parsed.step}, which is not valid (${step.problem.code})` };
      step?.pointers.push(name);
      continue;
    }
    const target = byFile.get(parsed.file);
    if (!target || !target.present) {
      p.problem = { code: 'ENOENT', message: `${name} points at ${parsed.file} (step ${parsed.step}), which is missing` };
    } else if (target.problem) {
      p.problem = { code: target.problem.code, message: `${name} points at ${parsed.file} (step ${parsed.step}), which is not valid (${target.problem.code})` };
    }
    if (target) {
      if (tag !== null) target.tags.push(tag);
      else target.pointers.push(name);
    }
  }
  const checkpoints = [...byFile.values()].sort((a, b) => a.step - b.step);
  let history: HistoryEvent[] | null = null;
  let historyProblem: Problem | null = null;
  if (names.includes(HISTORY_NAME)) {
    try {
      const bytes = await store.readSmall(HISTORY_NAME);
      if (bytes) {
        const parsed = parseHistory(bytes);
        history = parsed.events;
        if (parsed.skipped)
          historyProblem = { code: 'ECKPT_FORMAT', message: `${parsed.skipped} line(s) of ${HISTORY_NAME} are not valid events and are skipped` };
      }
    } catch (err) {
      historyProblem = problemOf(err);
    }
  }
  return { dir: store.location, store, manifest, manifestProblem, checkpoints, steps, pointers, history, historyProblem };
}

/** The committed steps of a sharded run, each checked: every shard's header against the record, or with `verify`
 * every digest (shard-reader.ts). Aborted records are not steps. */
async function readSteps(store: CheckpointStore, names: string[], verify: boolean): Promise<StepView[]> {
  const out: StepView[] = [];
  for (const name of names) {
    const step = decisionStepOf(name);
    if (step === null) continue;
    const view: StepView = { step, file: name, worldSize: null, time: null, shards: [], problem: null, verified: false, pointers: [] };
    try {
      const d = parseDecision(name, (await store.readSmall(name)) ?? new Uint8Array(), store.location);
      if (d.outcome !== 'committed') continue;
      Object.assign(view, { worldSize: d.worldSize, time: d.time, shards: d.shards });
      if (verify) {
        await readStep(store, d);
        view.verified = true;
      } else {
        await checkShardHeaders(store, d);
      }
    } catch (err) {
      view.problem = problemOf(err);
    }
    out.push(view);
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The checkpoints a run has: present, readable, with their entry; tags as the tag objects say. */
export function presentEntries(run: RunView): ManifestEntry[] {
  return run.checkpoints.filter((c) => c.present && c.entry && !(c.problem && !c.inManifest)).map((c) => ({ ...c.entry!, tags: [...c.tags] }));
}

/** Whether `path` is a directory the store can list (no node:fs here: the store decides). ENOTDIR: a file. */
export async function isRunDir(path: string): Promise<boolean> {
  try {
    await environment().directoryStore(path).list();
    return true;
  } catch (err) {
    if (err instanceof CheckpointError && err.code === 'ENOTDIR') return false;
    throw err;
  }
}
