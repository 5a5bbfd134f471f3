/** Retention policies: which checkpoints stay, and why, decided from their steps, times, metrics and tags (the
 * manifest), never from file names alone. Policies compose: a checkpoint is kept while any policy keeps it and
 * no expiry (deleteOlderThan) has passed, and always when it is protected: the newest checkpoint, anything a
 * pointer names, anything tagged. */
import { argumentError } from '../binding/errors';
import { NAME_RE, NAME_RULE } from './names';

export interface RetentionEntry {
  step: number;
  /** ms since the epoch when it was saved. */
  time: number;
  metrics: Readonly<Record<string, number>>;
  tags: readonly string[];
}

export interface RetentionPolicy {
  readonly name: string;
  /** Steps this policy keeps, each with its reason. */
  keep?(entries: readonly RetentionEntry[], now: number): Map<number, string>;
  /** Steps whose keep reasons from other policies no longer count (protected ones excepted). */
  expire?(entries: readonly RetentionEntry[], now: number): Set<number>;
  /** Pointers this policy maintains: name -> step. */
  pointers?(entries: readonly RetentionEntry[]): Record<string, number>;
}

export interface RetentionDecision {
  kept: Map<number, string[]>;
  remove: number[];
  pointers: Record<string, number>;
}

const DAY_MS = 86_400_000;

function positiveInt(v: unknown, what: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw argumentError(`${what} must be an integer >= 1`);
  return v as number;
}

function positiveNumber(v: unknown, what: string): number {
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw argumentError(`${what} must be a positive number`);
  return v;
}

/** The newest n checkpoints. */
export function keepLast(n: number): RetentionPolicy {
  positiveInt(n, 'keepLast(n)');
  return {
    name: `keepLast(${n})`,
    keep: (entries) =>
      new Map(
        [...entries]
          .sort((a, b) => b.step - a.step)
          .slice(0, n)
          .map((e) => [e.step, `last ${n}`]),
      ),
  };
}

export interface KeepBestOptions {
  metric: string;
  mode: 'max' | 'min';
  /** How many of the best to keep (default 1). */
  k?: number;
  /** Pointer naming the best (default `best-<metric>`). */
  pointer?: string;
}

/** The k best by a metric; a pointer names the best. Checkpoints without the metric are not ranked. */
export function keepBest(options: KeepBestOptions): RetentionPolicy {
  const { metric, mode } = options ?? ({} as KeepBestOptions);
  if (typeof metric !== 'string' || !NAME_RE.test(metric)) throw argumentError(`keepBest: metric must be a name of ${NAME_RULE}`);
  if (mode !== 'max' && mode !== 'min') throw argumentError("keepBest: mode must be 'max' or 'min'");
  const k = positiveInt(options.k ?? 1, 'keepBest: k');
  const pointer = options.pointer ?? `best-${metric}`;
  if (!NAME_RE.test(pointer)) throw argumentError(`keepBest: pointer "${pointer}" is not a plain name`);
  const ranked = (entries: readonly RetentionEntry[]) =>
    entries
      .filter((e) => Number.isFinite(e.metrics[metric]))
      // Ties go to the earlier step, so the best does not move to a later checkpoint that is merely as good.
      .sort((a, b) => (mode === 'max' ? b.metrics[metric]! - a.metrics[metric]! : a.metrics[metric]! - b.metrics[metric]!) || a.step - b.step);
  return {
    name: `keepBest(${metric}, ${mode}, ${k})`,
    keep: (entries) =>
      new Map(
        ranked(entries)
          .slice(0, k)
          .map((e, i) => [e.step, `best ${metric} #${i + 1}`]),
      ),
    pointers: (entries) => {
      const best = ranked(entries)[0];
      return best ? { [pointer]: best.step } : {};
    },
  };
}

/** Archives: every checkpoint whose step is a multiple of `steps`. */
export function keepEvery(steps: number): RetentionPolicy {
  positiveInt(steps, 'keepEvery(steps)');
  return { name: `keepEvery(${steps})`, keep: (entries) => new Map(entries.filter((e) => e.step % steps === 0).map((e) => [e.step, `every ${steps} steps`])) };
}

/** Everything saved within the last `days`. */
export function keepWithin(days: number): RetentionPolicy {
  positiveNumber(days, 'keepWithin(days)');
  return {
    name: `keepWithin(${days})`,
    keep: (entries, now) => new Map(entries.filter((e) => e.time >= now - days * DAY_MS).map((e) => [e.step, `within ${days} days`])),
  };
}

/** Nothing older than `days` is kept by the other policies (protected checkpoints still are). */
export function deleteOlderThan(days: number): RetentionPolicy {
  positiveNumber(days, 'deleteOlderThan(days)');
  return { name: `deleteOlderThan(${days})`, expire: (entries, now) => new Set(entries.filter((e) => e.time < now - days * DAY_MS).map((e) => e.step)) };
}

/** Tagged checkpoints (they are protected anyway; this policy names the reason in `ls`). */
export function keepTagged(): RetentionPolicy {
  return { name: 'keepTagged()', keep: (entries) => new Map(entries.filter((e) => e.tags.length > 0).map((e) => [e.step, `tagged ${e.tags.join(', ')}`])) };
}

export const LATEST_POINTER = 'latest';

/** Applies the policies and the protections. `references`: the checkpoints each one needs to load (dedup), kept
 * with it. */
export function decideRetention(
  entries: readonly RetentionEntry[],
  policies: readonly RetentionPolicy[],
  now: number,
  references: ReadonlyMap<number, readonly number[]> = new Map(),
): RetentionDecision {
  const kept = new Map<number, string[]>();
  const add = (step: number, why: string) => {
    const list = kept.get(step) ?? [];
    if (!list.includes(why)) list.push(why);
    kept.set(step, list);
  };
  for (const p of policies) for (const [step, why] of p.keep?.(entries, now) ?? []) add(step, why);
  for (const p of policies) for (const step of p.expire?.(entries, now) ?? []) kept.delete(step);
  const pointers: Record<string, number> = {};
  const newest = entries.reduce<RetentionEntry | null>((a, e) => (!a || e.step > a.step ? e : a), null);
  if (newest) {
    add(newest.step, 'newest');
    pointers[LATEST_POINTER] = newest.step;
  }
  for (const p of policies) Object.assign(pointers, p.pointers?.(entries) ?? {});
  for (const [name, step] of Object.entries(pointers)) add(step, `pointer ${name}`);
  for (const e of entries) for (const t of e.tags) add(e.step, `tag ${t}`);
  // References point at the checkpoint that holds the bytes, never at another reference: one pass suffices.
  for (const step of [...kept.keys()]) for (const needed of references.get(step) ?? []) add(needed, `referenced by step ${step}`);
  return {
    kept,
    remove: entries
      .filter((e) => !kept.has(e.step))
      .map((e) => e.step)
      .sort((a, b) => a - b),
    pointers,
  };
}
