/** The training thread's side of a sharded run (shards.ts): it tells the coordination worker (shard-worker.ts) which
 * steps this rank saves, and learns their decisions. The worker is a thread of its own: it waits for the other
 * ranks' shards, decides, and (on rank 0) commits the step's record, pointer and removals without any turn of the
 * training loop's event loop. Decisions come back on a MessagePort that save() and lastDurableStep drain
 * synchronously, so a loop that never yields learns them too. */
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageChannel, MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { argumentError, CheckpointError, PeerError } from '../../binding/errors';
import { LocalStore, processAlive } from '../../store/local';
import { COORDINATOR_NAME, decisionName, Decision, decisionStepOf, parseDecision, rankLockName, shardOf } from '../shards';

export interface CoordinationConfig {
  dir: string;
  rank: number;
  worldSize: number;
  keepLast: number;
  timeoutMs: number;
  pollMs: number;
  /** This incarnation of the run: the coordinator file's text (rank 0's lock holder). Every shard carries it; rank 0
   * commits only shards of its own epoch, and the other ranks fail their steps when it changes (rank 0 restarted). */
  epoch: string;
  port: MessagePort;
}

export type ToWorker = { type: 'expect'; step: number; deadline: number } | { type: 'abort'; step: number; reason: string } | { type: 'close' };

export type FromWorker =
  | { type: 'decided'; step: number; decision: Decision }
  /** The step cannot be decided for this rank: rank 0 restarted, or its record was removed before this rank read it. */
  | { type: 'peer'; step: number; ranks: number[]; message: string }
  | { type: 'failed'; step: number; message: string; code: string }
  | { type: 'warning'; message: string }
  | { type: 'closed' };

type Committed = Extract<Decision, { outcome: 'committed' }>;

interface Waiting {
  resolve: (d: Committed) => void;
  reject: (err: unknown) => void;
  /** Called synchronously with the committed record, inside the drain that learns it. */
  onCommitted: (d: Committed) => void;
}

export class ShardCoordination {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly waiting = new Map<number, Waiting>();
  private closed: Promise<void> | null = null;
  private workerClosed: (() => void) | null = null;
  private dead: CheckpointError | null = null;

  constructor(
    private readonly config: Omit<CoordinationConfig, 'port'>,
    private readonly warn: (m: string) => void,
  ) {
    const channel = new MessageChannel();
    this.port = channel.port1;
    this.worker = new Worker(path.join(__dirname, 'shard-worker.js'), { workerData: { ...config, port: channel.port2 }, transferList: [channel.port2] });
    this.port.on('message', (m: FromWorker) => this.onMessage(m));
    this.port.unref();
    this.worker.unref();
    this.worker.on('error', (err) => {
      this.dead = new CheckpointError(`the shard coordination worker failed: ${err.message}`, { code: 'ECKPT_INTERNAL' });
      for (const w of this.waiting.values()) w.reject(this.dead);
      this.waiting.clear();
    });
  }

  /** Posts the step now (before save() returns); settles with its committed record, or rejects with a PeerError
   * (ECKPT_PEER) naming the ranks that did not complete it. */
  expect(step: number, onCommitted: (d: Committed) => void): Promise<Committed> {
    const done = this.dead
      ? Promise.reject(this.dead)
      : this.waiting.has(step)
        ? Promise.reject(argumentError(`step ${step} is already being saved by this rank`))
        : new Promise<Committed>((resolve, reject) => this.waiting.set(step, { resolve, reject, onCommitted }));
    done.catch(() => {}); // awaited later, after the shard: never an unhandled rejection meanwhile
    if (this.dead || this.waiting.get(step)?.onCommitted !== onCommitted) return done;
    if (this.waiting.size === 1) {
      this.worker.ref(); // a script that ends without close() still learns its decisions
      this.port.ref();
    }
    this.port.postMessage({ type: 'expect', step, deadline: Date.now() + this.config.timeoutMs } satisfies ToWorker);
    return done;
  }

  /** This rank will not write the step's shard (a skipped or failed save): the step is aborted for every rank. */
  abort(step: number, reason: string): void {
    if (!this.dead) this.port.postMessage({ type: 'abort', step, reason } satisfies ToWorker);
  }

  /** Delivers, now, the decisions the worker has sent. */
  drain(): void {
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) this.onMessage(m.message as FromWorker);
  }

  private settle(step: number): Waiting | undefined {
    const w = this.waiting.get(step);
    this.waiting.delete(step);
    if (this.waiting.size === 0 && !this.closed) {
      this.worker.unref();
      this.port.unref();
    }
    return w;
  }

  private onMessage(m: FromWorker): void {
    const where = `${this.config.dir}/${'step' in m ? decisionName(m.step) : ''}`;
    switch (m.type) {
      case 'decided': {
        const d = m.decision;
        const w = this.settle(m.step);
        if (d.outcome === 'committed') {
          w?.onCommitted(d);
          w?.resolve(d);
        } else
          w?.reject(
            new PeerError(`step ${m.step} was not committed on any rank: ${d.reason} (decided by rank ${d.by})`, {
              step: m.step,
              ranks: d.missing,
              path: where,
            }),
          );
        return;
      }
      case 'peer':
        this.settle(m.step)?.reject(new PeerError(m.message, { step: m.step, ranks: m.ranks, path: where }));
        return;
      case 'failed':
        this.settle(m.step)?.reject(new CheckpointError(m.message, { code: m.code, path: where }));
        return;
      case 'warning':
        try {
          this.warn(m.message);
        } catch {
          /* a throwing onWarning must not stop coordination */
        }
        return;
      case 'closed':
        this.workerClosed?.();
        return;
    }
  }

  /** Stops the worker once every step posted is decided (each is decided, failed or given up within twice
   * peerTimeoutMs). */
  async close(): Promise<void> {
    this.closed ??= (async () => {
      if (this.dead) return;
      this.worker.ref();
      this.port.ref();
      // 'closed' may be taken by a drain() as well as by the port's listener: onMessage resolves it either way.
      await new Promise<void>((resolve) => {
        this.workerClosed = resolve;
        this.worker.on('exit', () => resolve());
        this.port.postMessage({ type: 'close' } satisfies ToWorker);
      });
      this.port.close();
      await this.worker.terminate();
    })();
    await this.closed;
    for (const [step, w] of this.waiting) w.reject(new CheckpointError(`step ${step} was not decided before close()`, { code: 'ECKPT_CLOSED' }));
    this.waiting.clear();
  }
}

/** Rank 0 at start, holding its lock: removes what a dead incarnation left of steps that never committed (aborted
 * records, shards no committed record lists), then names itself coordinator. No other rank saves before that. */
export async function becomeCoordinator(store: LocalStore, warn: (m: string) => void): Promise<string> {
  const names = (await store.list()).map((o) => o.name);
  const committed = new Set<number>();
  const aborted: string[] = [];
  for (const name of names) {
    const step = decisionStepOf(name);
    if (step === null) continue;
    try {
      const bytes = await store.readSmall(name);
      if (!bytes) continue;
      const d = parseDecision(name, bytes, store.location);
      if (d.outcome === 'committed') committed.add(step);
      else aborted.push(name);
    } catch (err) {
      warn(`${(err as Error).message}; it is left in place`);
      committed.add(step); // unreadable: its shards are left too
    }
  }
  const orphans = names.filter((n) => {
    const s = shardOf(n);
    return s !== null && !committed.has(s.step);
  });
  if (orphans.length || aborted.length) {
    await store.remove(orphans);
    await store.remove(aborted);
    warn(`removed ${orphans.length} shard(s) and ${aborted.length} aborted record(s) of steps that never committed`);
  }
  const holder = await store.readSmall(rankLockName(0));
  if (!holder) throw new CheckpointError(`${rankLockName(0)} has no holder written`, { code: 'ECKPT_INTERNAL', path: store.location });
  await store.writeSmall(COORDINATOR_NAME, holder);
  return Buffer.from(holder).toString('utf8');
}

/** Another rank at start: waits until the running rank 0 (the holder written in its lock file, alive) has named
 * itself coordinator, and returns the epoch; ECKPT_PEER after timeoutMs. Polled through the store: nothing here
 * needs rank 0's help. */
export async function awaitCoordinator(store: LocalStore, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [lock, coordinator] = await Promise.all([store.readSmall(rankLockName(0)), store.readSmall(COORDINATOR_NAME)]);
    if (lock && coordinator && Buffer.from(lock).equals(Buffer.from(coordinator))) {
      try {
        const h = JSON.parse(Buffer.from(lock).toString('utf8')) as { pid?: unknown; host?: unknown };
        // A dead rank 0 leaves both files equal; on this host its pid tells. Across hosts the file is trusted.
        if (h.host !== os.hostname() || (Number.isSafeInteger(h.pid) && processAlive(h.pid as number))) return Buffer.from(lock).toString('utf8');
      } catch {
        /* being rewritten */
      }
    }
    if (Date.now() > deadline)
      throw new PeerError(`rank 0 (the coordinator) has not started on ${store.location} within ${timeoutMs} ms`, {
        step: null,
        ranks: [0],
        path: store.location,
      });
    await new Promise((r) => setTimeout(r, 20));
  }
}
