/** `ckptio prune DIR <policy flags> [--dry-run]`: applies retention policies now, with the run lock (refused
 * with ECKPT_LOCKED, exit 3, while a trainer holds it), and prints what goes and what stays and why.
 * Pointers that exist in the directory but that these policies do not maintain (a `best-f1` the trainer kept,
 * the legacy `best`) keep their targets: nothing a pointer names is removed. */
import { InvalidArgumentError } from 'commander';
import { Checkpointer } from '../../checkpoint/checkpointer';
import { deleteOlderThan, keepBest, keepEvery, keepLast, keepTagged, keepWithin, RetentionPolicy } from '../../checkpoint/retention';
import { out, printJson, safe, usageError } from './output';
import { isRunDir, readRun } from '../../checkpoint/run-reader';
import { NAME_PATTERN } from '../../checkpoint/names';

export interface PruneOptions {
  keepLast?: number;
  keepBest?: { metric: string; mode: 'max' | 'min'; k: number }[];
  keepEvery?: number;
  keepWithin?: number;
  deleteOlderThan?: number;
  dryRun?: boolean;
  json?: boolean;
}

/** `METRIC:max|min[:K]`, repeatable. */
export function parseKeepBest(v: string, previous: PruneOptions['keepBest'] = []): NonNullable<PruneOptions['keepBest']> {
  const m = new RegExp(`^(${NAME_PATTERN}):(max|min)(?::(\\d+))?$`).exec(v);
  if (!m || (m[3] !== undefined && !(Number(m[3]) >= 1)))
    throw new InvalidArgumentError('--keep-best must look like METRIC:max, METRIC:min or METRIC:max:K (K >= 1)');
  return [...previous, { metric: m[1]!, mode: m[2] as 'max' | 'min', k: m[3] === undefined ? 1 : Number(m[3]) }];
}

export function positiveDays(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !(n > 0)) throw new InvalidArgumentError(`${name} must be a positive number of days`);
    return n;
  };
}

/** Keeps what the directory's existing pointers name, unless a given policy rewrites that pointer. */
function keepPointed(pointed: Map<string, number>): RetentionPolicy {
  return {
    name: 'existingPointers()',
    keep: (entries) => {
      const steps = new Set(entries.map((e) => e.step));
      return new Map([...pointed].filter(([, s]) => steps.has(s)).map(([name, s]) => [s, `pointer ${name}`]));
    },
  };
}

export async function prune(dir: string, o: PruneOptions): Promise<void> {
  const policies: RetentionPolicy[] = [];
  if (o.keepLast !== undefined) policies.push(keepLast(o.keepLast));
  for (const b of o.keepBest ?? []) policies.push(keepBest(b));
  if (o.keepEvery !== undefined) policies.push(keepEvery(o.keepEvery));
  if (o.keepWithin !== undefined) policies.push(keepWithin(o.keepWithin));
  if (o.deleteOlderThan !== undefined) policies.push(deleteOlderThan(o.deleteOlderThan));
  if (!policies.length) throw usageError('prune needs at least one policy (--keep-last, --keep-best, --keep-every, --keep-within, --delete-older-than)');
  // Never create a directory by pruning it: it must exist (the Checkpointer would make it).
  if (!(await isRunDir(dir))) throw usageError(`${dir} is not a directory`);
  const rewritten = new Set(['latest', ...(o.keepBest ?? []).map((b) => `best-${b.metric}`)]);
  const pointed = new Map<string, number>();
  for (const p of (await readRun(dir)).pointers) if (p.tag === null && p.step !== null && !rewritten.has(p.name)) pointed.set(p.name, p.step);
  policies.push(keepTagged());
  if (pointed.size) policies.push(keepPointed(pointed));

  const ckpt = new Checkpointer({ dir, keepLast: 1, onWarning: (m) => process.stderr.write(`ckptio: warning: ${safe(m)}\n`) });
  let result: Awaited<ReturnType<Checkpointer['prune']>>;
  try {
    result = await ckpt.prune(policies, { dryRun: o.dryRun ?? false });
  } finally {
    await ckpt.close();
  }
  const removed = result.removed;
  if (o.json) {
    printJson({
      dir: ckpt.dir,
      dryRun: o.dryRun ?? false,
      policies: policies.map((p) => p.name),
      removed,
      kept: result.kept.map((e) => ({ step: e.step, file: e.file, keptBy: e.keptBy })),
    });
    return;
  }
  const verb = o.dryRun ? 'would remove' : 'removed';
  for (const f of removed) out(`${verb} ${safe(f)}`);
  for (const e of result.kept) out(`keep   ${safe(e.file)}: ${e.keptBy.map(safe).join(', ')}`);
  out(`${o.dryRun ? 'dry run: ' : ''}${removed.length} ${o.dryRun ? 'would be removed' : 'removed'}, ${result.kept.length} kept`);
}
