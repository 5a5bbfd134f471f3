/** A read-only view of a run directory for ls, verify and log: the manifest, the checkpoint files with their
 * headers, and the pointers and tags, read through the store without the run lock (so it works while a
 * trainer holds it) and without trusting any of it: a missing or corrupt manifest is recovered from headers,
 * unreadable pointers are reported, never followed. */
import { CheckpointError, toCheckpointError } from '../../binding/errors';
import { POINTER_BEST, POINTER_LATEST } from '../../checkpoint/directory';
import { entryFromHeader, Manifest, MANIFEST_NAME, ManifestEntry, parseManifest, stepOf, tagOfFile } from '../../checkpoint/manifest';
import type { HeaderInfo } from '../../format/file';
import { LocalStore } from '../../store/local';

export interface PointerView {
  name: string;
  /** A tag file (`tag.<name>`) rather than a pointer. */
  tag: string | null;
  step: number | null;
  file: string | null;
  /** Why it does not resolve (unreadable, missing file, recorded in the manifest but absent), else null. */
  problem: { code: string; message: string } | null;
}

export interface CheckpointView {
  step: number;
  file: string;
  /** The manifest's entry, or one recovered from the header when the manifest lacks the file. */
  entry: ManifestEntry | null;
  present: boolean;
  inManifest: boolean;
  header: HeaderInfo | null;
  /** Header parse failure (or, with verify, the full read's failure), else null. */
  problem: { code: string; message: string } | null;
  verified: boolean;
  pointers: string[];
  tags: string[];
}

export interface RunView {
  dir: string;
  store: LocalStore;
  manifest: Manifest | null;
  manifestProblem: { code: string; message: string } | null;
  checkpoints: CheckpointView[];
  pointers: PointerView[];
}

function problemOf(err: unknown): { code: string; message: string } {
  const e = toCheckpointError(err);
  return { code: String(e.code), message: e.message };
}

/** Reads the whole view. `verify` reads every checkpoint in full and checks its digests. */
export async function readRun(dir: string, opts: { verify?: boolean } = {}): Promise<RunView> {
  const store = new LocalStore(dir);
  const names = (await store.list()).map((o) => o.name).sort();
  let manifest: Manifest | null = null;
  let manifestProblem: RunView['manifestProblem'] = null;
  if (names.includes(MANIFEST_NAME)) {
    try {
      const bytes = await store.readSmall(MANIFEST_NAME);
      if (bytes) manifest = parseManifest(bytes, `${store.location}/${MANIFEST_NAME}`);
    } catch (err) {
      manifestProblem = problemOf(err);
    }
  }
  const files = names.filter((n) => stepOf(n) !== null);
  const byFile = new Map<string, CheckpointView>();
  for (const e of manifest?.entries ?? []) {
    byFile.set(e.file, { step: e.step, file: e.file, entry: e, present: false, inManifest: true, header: null, problem: null, verified: false, pointers: [], tags: [] });
  }
  for (const file of files) {
    const v = byFile.get(file) ?? { step: stepOf(file)!, file, entry: null, present: true, inManifest: false, header: null, problem: null, verified: false, pointers: [], tags: [] };
    v.present = true;
    byFile.set(file, v);
    try {
      v.header = await store.readHeader(file);
      if (!v.entry) v.entry = entryFromHeader(file, v.header, []);
      if (opts.verify) {
        const r = await store.read(file, { verify: true });
        v.verified = r.verified;
      }
    } catch (err) {
      v.problem = problemOf(err);
    }
  }
  for (const v of byFile.values()) {
    if (!v.present) v.problem = { code: 'ENOENT', message: `${v.file} is listed in the manifest but missing` };
  }
  // Pointers: the standard names, every best-* and tag.* file, and every pointer the manifest records.
  const pointerNames = new Set<string>();
  for (const n of names) if (n === POINTER_LATEST || n === POINTER_BEST || n.startsWith('best-') || tagOfFile(n) !== null) pointerNames.add(n);
  for (const n of Object.keys(manifest?.pointers ?? {})) pointerNames.add(n);
  const pointers: PointerView[] = [];
  for (const name of [...pointerNames].sort()) {
    const tag = tagOfFile(name);
    const p: PointerView = { name, tag, step: null, file: null, problem: null };
    pointers.push(p);
    let bytes: Uint8Array | null;
    try {
      bytes = await store.readSmall(name);
    } catch (err) {
      p.problem = problemOf(err);
      continue;
    }
    if (bytes === null) {
      p.problem = { code: 'ENOENT', message: `the manifest records pointer ${name} (step ${manifest?.pointers[name]}) but the file is missing` };
      continue;
    }
    const parsed = parsePointer(bytes);
    if (!parsed) {
      p.problem = { code: 'ECKPT_FORMAT', message: `${name} is not a valid pointer (JSON {step, file} naming a checkpoint)` };
      continue;
    }
    p.step = parsed.step;
    p.file = parsed.file;
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
  for (const v of byFile.values()) {
    // Tags recorded in the manifest whose tag file is gone still show (the file is the source of truth for ls).
    for (const t of v.entry?.tags ?? []) if (!v.tags.includes(t) && names.includes(`tag.${t}`)) v.tags.push(t);
  }
  const checkpoints = [...byFile.values()].sort((a, b) => a.step - b.step);
  return { dir: store.location, store, manifest, manifestProblem, checkpoints, pointers };
}

/** Pointers are untrusted: only {step, file} with a checkpoint name that matches the step passes. */
function parsePointer(bytes: Uint8Array): { step: number; file: string } | null {
  try {
    const p = JSON.parse(Buffer.from(bytes).toString('utf8')) as { step?: unknown; file?: unknown };
    if (!Number.isSafeInteger(p.step) || typeof p.file !== 'string' || stepOf(p.file) !== p.step) return null;
    return { step: p.step as number, file: p.file };
  } catch {
    return null;
  }
}

/** Whether `path` is a directory the store can list (no node:fs here: the store decides). ENOTDIR: a file. */
export async function isRunDir(path: string): Promise<boolean> {
  try {
    await new LocalStore(path).list();
    return true;
  } catch (err) {
    if (err instanceof CheckpointError && err.code === 'ENOTDIR') return false;
    throw err;
  }
}
