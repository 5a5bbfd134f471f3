/** The lineage of a run: the run it was fine-tuned from (recorded as `parent.run`, or `origin` on every checkpoint
 * of a fine-tune), that run's parent, and so on, root first. One walk, one rule for the recorded path, for
 * `ckptio log` and the report. Recorded paths are untrusted: they are only ever read, never written, a cycle or a
 * missing directory ends the chain, and the chain is at most MAX_LINEAGE runs long. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ManifestEntry, Parent } from '../manifest';

/** Deep enough for any real lineage; stops a chain that never ends. */
export const MAX_LINEAGE = 64;

export type LinkFound = 'ok' | 'missing-run' | 'missing-checkpoint' | 'content-differs' | 'cycle' | 'not-followed';

export interface LineageRun<T> {
  dir: string;
  run: T;
  /** The link to the run this one continues, and whether it held; null for the root. */
  from: (Parent & { run: string; found: LinkFound; resolved: string | null }) | null;
}

/** What the walk reads of a checkpoint. */
export type LinkedEntry = Pick<ManifestEntry, 'step' | 'contentId' | 'parent'> & { origin?: Parent | null };

/** The link to another run: the earliest entry whose parent names a run, else an `origin` (repeated on every
 * checkpoint of a fine-tune, so it survives retention removing the first). */
export function crossRunParent(entries: readonly LinkedEntry[]): (Parent & { run: string }) | null {
  const sorted = [...entries].sort((a, b) => a.step - b.step);
  const named = (p: Parent | null | undefined): p is Parent & { run: string } => !!p && typeof p === 'object' && typeof p.run === 'string' && p.run !== '';
  for (const e of sorted) if (named(e.parent)) return e.parent;
  for (const e of sorted) if (named(e.origin)) return e.origin;
  return null;
}

/** A recorded parent run path: absolute as written; a relative one is tried against the child run's directory,
 * then its parent directory (sibling runs), then the working directory. null when none is a directory. */
export function resolveParentRun(run: string, childDir: string): string | null {
  const candidates = path.isAbsolute(run) ? [run] : [path.resolve(childDir, run), path.resolve(path.dirname(childDir), run), path.resolve(run)];
  for (const c of candidates) {
    try {
      if (fs.statSync(c).isDirectory()) return c;
    } catch {
      /* next */
    }
  }
  return null;
}

function realKey(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/** Walks from `dir` to its root. `read` reads one run; `entriesOf` gives its checkpoints (for the link and to
 * check the linked checkpoint: its step present, its content id the recorded one). */
export async function walkLineage<T>(dir: string, read: (dir: string) => Promise<T>, entriesOf: (run: T) => readonly LinkedEntry[]): Promise<LineageRun<T>[]> {
  const first = path.resolve(dir);
  const chain: LineageRun<T>[] = [{ dir: first, run: await read(first), from: null }];
  const seen = new Set([realKey(first)]);
  for (;;) {
    const child = chain[0]!;
    const link = crossRunParent(entriesOf(child.run));
    if (!link) break;
    const resolved = resolveParentRun(link.run, child.dir);
    if (resolved === null) {
      child.from = { ...link, found: 'missing-run', resolved: null };
      break;
    }
    if (seen.has(realKey(resolved))) {
      child.from = { ...link, found: 'cycle', resolved };
      break;
    }
    if (chain.length >= MAX_LINEAGE) {
      child.from = { ...link, found: 'not-followed', resolved };
      break;
    }
    const parent = await read(resolved);
    const entries = entriesOf(parent);
    const target =
      link.step !== undefined
        ? entries.find((e) => e.step === link.step)
        : link.contentId !== undefined
          ? entries.find((e) => e.contentId === link.contentId)
          : undefined;
    const found: LinkFound = !target
      ? 'missing-checkpoint'
      : link.contentId !== undefined && target.contentId !== null && target.contentId !== link.contentId
        ? 'content-differs'
        : 'ok';
    child.from = { ...link, found, resolved };
    seen.add(realKey(resolved));
    chain.unshift({ dir: resolved, run: parent, from: null });
  }
  return chain;
}
