/** The coordination worker of a sharded run (shards.ts): a thread of its own on every rank, so a step is decided
 * while the training loop computes. For each step this rank saves it polls the store until the step is decided:
 *
 * - rank 0 (the coordinator) commits the step once every rank's shard is present: it reads each shard's header
 *   (content id, size), creates the committed record exclusively, then moves the `latest` pointer, then removes what
 *   retention no longer keeps (records first, so a half-pruned step is invisible, then their shards) and what
 *   aborted steps left. After `timeoutMs` with shards missing it creates an aborted record naming those ranks.
 * - other ranks wait for the record; with none after twice the timeout (rank 0 gone) they create the aborted
 *   record themselves. A rank that will not write its shard (skipped, failed) aborts the step at once.
 *
 * The record is created exclusively, so whoever decides first decides for all. Messages: shard-coordination.ts. */
import { workerData } from 'node:worker_threads';
import { CheckpointError } from '../../binding/errors';
import { LocalStore, syncDirectory } from '../../store/local';
import { METADATA_KEYS } from '../../format/metadata-keys';
import { renderPointer } from '../directory';
import type { CoordinationConfig, FromWorker, ToWorker } from './shard-coordination';
import {
  COORDINATOR_NAME,
  Decision,
  decisionName,
  decisionStepOf,
  parseDecision,
  renderDecision,
  shardName,
  shardOf,
  ShardRecord,
  tombstoneName,
  tombstoneStepOf,
} from '../shards';

const config = workerData as CoordinationConfig;
const port = config.port;
const store = new LocalStore(config.dir);
const ranks = Array.from({ length: config.worldSize }, (_, r) => r);
/** Steps this rank saves, not yet decided: when to give up on the others, and a reason when this rank aborts. */
const pending = new Map<number, { deadline: number; selfAbort: string | null }>();
/** Decisions read so far (records are never rewritten). */
const known = new Map<number, Decision>();
let timer: NodeJS.Timeout | null = null;
let running = false;
let closing = false;

function post(m: FromWorker): void {
  port.postMessage(m);
}

function schedule(): void {
  if (timer === null && !running && pending.size > 0) timer = setTimeout(tick, config.pollMs);
  if (closing && pending.size === 0 && !running) post({ type: 'closed' });
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'expect') {
    if (!pending.has(m.step)) pending.set(m.step, { deadline: m.deadline, selfAbort: null });
  } else if (m.type === 'abort') {
    const p = pending.get(m.step);
    if (p) p.selfAbort = m.reason;
    else pending.set(m.step, { deadline: Date.now(), selfAbort: m.reason });
  } else {
    closing = true;
  }
  schedule();
});

/** Steps whose failure (a read, a create) was already reported as a warning: once each, not every poll. */
const warned = new Set<number>();

async function tick(): Promise<void> {
  timer = null;
  running = true;
  try {
    if (config.rank !== 0 && !(await sameEpoch())) return;
    const names = new Set((await store.list()).map((o) => o.name));
    for (const step of [...pending.keys()].sort((a, b) => a - b)) {
      try {
        await visit(step, names);
      } catch (err) {
        // Retried at the next poll until the step's last deadline; then the step fails with this error.
        const e = err as CheckpointError;
        if (Date.now() > pending.get(step)!.deadline + config.timeoutMs) {
          pending.delete(step);
          post({ type: 'failed', step, message: `step ${step} could not be decided: ${e.message}`, code: e.code ?? 'ECKPT_INTERNAL' });
        } else if (!warned.has(step)) {
          warned.add(step);
          post({ type: 'warning', message: `shard coordination of step ${step} on ${config.dir}: ${e.message}; retrying` });
        }
      }
    }
  } catch (err) {
    post({ type: 'warning', message: `shard coordination on ${config.dir}: ${(err as Error).message}; retrying` });
  } finally {
    running = false;
    schedule();
  }
}

/** Another rank: whether rank 0 is still the one this rank joined. A restarted rank 0 cleans up and starts a new
 * epoch: this rank's steps in flight can no longer complete, and fail now instead of at their timeout. */
async function sameEpoch(): Promise<boolean> {
  const now = await store.readSmall(COORDINATOR_NAME);
  if (now !== null && Buffer.from(now).toString('utf8') === config.epoch) return true;
  for (const step of [...pending.keys()]) {
    pending.delete(step);
    post({
      type: 'peer',
      step,
      ranks: [0],
      message: `rank 0 restarted (${COORDINATOR_NAME} changed): step ${step} cannot complete; restart every rank together`,
    });
  }
  return false;
}

async function readDecision(step: number, name = decisionName(step)): Promise<Decision | null> {
  const cached = known.get(step);
  if (cached) return cached;
  const bytes = await store.readSmall(name);
  if (!bytes) return null;
  const d = parseDecision(name, bytes, config.dir);
  known.set(step, d);
  return d;
}

async function report(step: number, d: Decision, createdHere: boolean): Promise<void> {
  // A decision another rank created may be in the directory but not yet durable (its creator fsyncs the directory
  // after the link): fsynced here before it is acknowledged.
  if (!createdHere) await syncDirectory(config.dir);
  pending.delete(step);
  warned.delete(step);
  if (config.rank !== 0) known.delete(step); // only rank 0's retention reads decisions again
  post({ type: 'decided', step, decision: d });
}

async function visit(step: number, names: Set<string>): Promise<void> {
  const p = pending.get(step)!;
  const recorded = [decisionName(step), tombstoneName(step)].find((n) => names.has(n));
  if (recorded !== undefined) {
    let d: Decision | null;
    try {
      d = await readDecision(step, recorded);
    } catch (err) {
      const e = err as CheckpointError;
      if (e.code !== 'ECKPT_FORMAT') throw err; // a failed read is retried
      pending.delete(step);
      post({ type: 'failed', step, message: e.message, code: e.code });
      return;
    }
    if (d) return report(step, d, false);
  }
  if (p.selfAbort !== null) return decide(step, { outcome: 'aborted', missing: [config.rank], reason: `rank ${config.rank} ${p.selfAbort}` });
  const missing = ranks.filter((r) => !names.has(shardName(step, r, config.worldSize)));
  const now = Date.now();
  if (config.rank === 0) {
    if (missing.length === 0) return commit(step, now > p.deadline);
    if (now > p.deadline)
      return decide(step, { outcome: 'aborted', missing, reason: `rank(s) ${missing.join(', ')} did not write a shard within ${config.timeoutMs} ms` });
    return;
  }
  // Rank 0 decides first; another rank steps in only when rank 0 has not decided for a whole timeout more.
  if (now <= p.deadline + config.timeoutMs) return;
  const newer = [...names].map(decisionStepOf).filter((s): s is number => s !== null && s > step);
  for (const s of newer) {
    if ((await readDecision(s).catch(() => null))?.outcome === 'committed') {
      pending.delete(step);
      post({ type: 'peer', step, ranks: [], message: `step ${step}'s record was removed before rank ${config.rank} read it (step ${s} has committed since)` });
      return;
    }
  }
  const who = missing.length ? missing : [0];
  return decide(step, {
    outcome: 'aborted',
    missing: who,
    reason: missing.length
      ? `rank(s) ${missing.join(', ')} did not write a shard within ${config.timeoutMs} ms and rank 0 did not decide`
      : `rank 0 (the coordinator) did not decide within ${2 * config.timeoutMs} ms`,
  });
}

/** Creates the record unless another rank decided first; reports whichever record stands. */
async function decide(
  step: number,
  what: { outcome: 'aborted'; missing: number[]; reason: string } | { outcome: 'committed'; shards: ShardRecord[] },
): Promise<void> {
  const base = { version: 1 as const, step, worldSize: config.worldSize, time: new Date().toISOString() };
  const d: Decision = what.outcome === 'committed' ? { ...base, ...what } : { ...base, ...what, by: config.rank };
  const created = await store.createSmall(decisionName(step), renderDecision(d));
  const standing = created ? d : await readDecision(step);
  if (created) known.set(step, d);
  if (standing) await report(step, standing, created);
  if (created && d.outcome === 'committed') await afterCommit(step);
}

/** Rank 0, every shard present: their headers (content id, size, epoch) make the record. A shard of another
 * incarnation of the run (a rank killed and not restarted, whose old file is still there) counts as missing; an
 * unreadable one is retried. Past the deadline either aborts the step naming those ranks. */
async function commit(step: number, pastDeadline: boolean): Promise<void> {
  const shards: ShardRecord[] = [];
  const stale: number[] = [];
  for (const rank of ranks) {
    const file = shardName(step, rank, config.worldSize);
    try {
      const h = await store.readHeader(file);
      if (!h.contentId)
        throw new CheckpointError(`${file} has no content id (written without checksums)`, { code: 'ECKPT_FORMAT', path: `${config.dir}/${file}` });
      if (shardEpoch(h.metadata[METADATA_KEYS.shard]) !== config.epoch) stale.push(rank);
      else shards.push({ rank, file, contentId: h.contentId, bytes: h.bytes });
    } catch (err) {
      if (!pastDeadline) throw err;
      return decide(step, { outcome: 'aborted', missing: [rank], reason: `rank ${rank}'s shard is unreadable (${(err as Error).message})` });
    }
  }
  if (stale.length === 0) return decide(step, { outcome: 'committed', shards });
  if (pastDeadline)
    return decide(step, { outcome: 'aborted', missing: stale, reason: `the shard(s) of rank(s) ${stale.join(', ')} are from another incarnation of the run` });
}

function shardEpoch(json: string | undefined): string | null {
  try {
    const m = JSON.parse(json ?? 'null') as { epoch?: unknown } | null;
    return typeof m?.epoch === 'string' ? m.epoch : null;
  } catch {
    return null;
  }
}

/** When this worker turned a committed record into a tombstone: it stays three timeouts from then. */
const prunedAt = new Map<number, number>();

/** Rank 0, once `step` is committed: the pointer, then retention (keepLast committed steps: a tombstone, the record,
 * then the shards), then what steps before it left that never committed (every rank has written past them: their
 * writers are done with them). Tombstones and aborted records stay for three timeouts, for ranks still reading. */
async function afterCommit(step: number): Promise<void> {
  await store.writeSmall('latest', renderPointer({ step, file: decisionName(step) }));
  const names = (await store.list()).map((o) => o.name);
  const committed: number[] = [];
  const aborted: string[] = [];
  const unreadable = new Set<number>();
  const expired = Date.now() - 3 * config.timeoutMs;
  for (const name of names) {
    const s = decisionStepOf(name);
    if (s === null) {
      const t = tombstoneStepOf(name);
      // A tombstone of an earlier incarnation has no reader left.
      if (t !== null && (prunedAt.get(t) ?? 0) < expired) aborted.push(name);
      continue;
    }
    const d = await readDecision(s).catch(() => null);
    if (d === null)
      unreadable.add(s); // its shards stay, as at start
    else if (d.outcome === 'committed') committed.push(s);
    else if (s < step && Date.parse(d.time) < expired) aborted.push(name);
  }
  committed.sort((a, b) => b - a);
  const kept = new Set(committed.slice(0, config.keepLast));
  kept.add(step);
  const dropped = committed.filter((s) => !kept.has(s));
  const committedSet = new Set(committed);
  const shards = names.filter((n) => {
    const s = shardOf(n);
    return s !== null && s.step < step && !unreadable.has(s.step) && (dropped.includes(s.step) || !committedSet.has(s.step));
  });
  for (const s of dropped) {
    await store.writeSmall(tombstoneName(s), renderDecision(known.get(s)!));
    prunedAt.set(s, Date.now());
  }
  await store.remove(dropped.map(decisionName));
  await store.remove(shards);
  await store.remove(aborted);
  for (const name of aborted) {
    const s = (decisionStepOf(name) ?? tombstoneStepOf(name))!;
    known.delete(s);
    prunedAt.delete(s);
  }
}
