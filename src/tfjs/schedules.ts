/** Learning-rate schedules for tfjs `tf.train` optimizers.
 *
 * A schedule is a plain JSON config object (the `Schedule` union below), so a checkpoint stores it as it is in its
 * state JSON next to the step. The learning rate is a pure function of (schedule, step) computed in float64:
 * resuming needs only those two, and a resumed run sets exactly the learning rates the uninterrupted run set,
 * mid-warmup included. `applySchedule` sets the rate on an optimizer before its step (through the one accessor in
 * internals.ts); `LrScheduler` bundles schedule and step counter for custom loops.
 *
 * Step semantics (docs/schedules.md): `step` is the index of the optimizer step about to run, 0 for the first.
 * A warmup of W steps runs steps 0..W-1 from `startLr` towards the wrapped schedule's value at its step 0; from
 * step W on the wrapped schedule runs with its own step counted from the end of warmup (global step - W), so its
 * whole shape (decaySteps, ...) comes after the warmup, not cut into it. A chain runs each part for its `steps`
 * with its own local step from 0; the last part runs forever. */
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError, CheckpointErrorCode } from '../binding/errors';
import { setOptimizerLearningRate } from './internals';

/** The same learning rate at every step. */
export interface ConstantSchedule {
  kind: 'constant';
  lr: number;
}

/** `lr * gamma ^ floor(step / stepSize)`. */
export interface StepSchedule {
  kind: 'step';
  lr: number;
  stepSize: number;
  gamma: number;
}

/** `lr * decayRate ^ (step / decaySteps)`, the exponent floored when `staircase`. */
export interface ExponentialSchedule {
  kind: 'exponential';
  lr: number;
  decayRate: number;
  decaySteps: number;
  staircase?: boolean;
}

/** `endLr + (lr - endLr) * (1 - min(step, decaySteps) / decaySteps) ^ power`; with `cycle` the horizon grows to the
 * next multiple of decaySteps instead of holding at endLr (as tf.keras PolynomialDecay). */
export interface PolynomialSchedule {
  kind: 'polynomial';
  lr: number;
  endLr: number;
  power: number;
  decaySteps: number;
  cycle?: boolean;
}

/** `minLr + (lr - minLr) * 0.5 * (1 + cos(pi * min(step, decaySteps) / decaySteps))`, then minLr. */
export interface CosineSchedule {
  kind: 'cosine';
  lr: number;
  decaySteps: number;
  minLr: number;
}

/** Steps 0..warmupSteps-1 go from startLr towards `then`'s rate at its step 0 (linearly, or geometrically for
 * 'exponential'); from step warmupSteps on, `then` runs at step (step - warmupSteps). */
export interface WarmupSchedule {
  kind: 'warmup';
  mode: 'linear' | 'exponential';
  startLr: number;
  warmupSteps: number;
  then: Schedule;
}

/** One part of a chain: `steps` is how many steps it runs; the last part has none (it runs forever). */
export interface ChainPart {
  schedule: Schedule;
  steps?: number;
}

/** Parts one after another, each seeing its own local step from 0. */
export interface ChainSchedule {
  kind: 'chain';
  parts: ChainPart[];
}

export type Schedule = ConstantSchedule | StepSchedule | ExponentialSchedule | PolynomialSchedule | CosineSchedule | WarmupSchedule | ChainSchedule;

export type ScheduleKind = Schedule['kind'];

/** Limits that keep a hostile checkpoint from crashing or stalling the process. */
export const SCHEDULE_LIMITS = Object.freeze({ maxDepth: 16, maxChainParts: 256, maxNodes: 1024 });

// ---------------------------------------------------------------------------------------------------------------
// Validation

interface ParseContext {
  code: CheckpointErrorCode;
  nodes: number;
}

function describe(v: unknown): string {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

function fail(ctx: ParseContext, path: string, what: string, got?: unknown): never {
  const tail = arguments.length > 3 ? ` (got ${describe(got)})` : '';
  throw new CheckpointError(`${path} ${what}${tail}`, { code: ctx.code });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const KEYS: { [K in ScheduleKind]: { required: readonly string[]; optional: readonly string[] } } = {
  constant: { required: ['lr'], optional: [] },
  step: { required: ['lr', 'stepSize', 'gamma'], optional: [] },
  exponential: { required: ['lr', 'decayRate', 'decaySteps'], optional: ['staircase'] },
  polynomial: { required: ['lr', 'endLr', 'power', 'decaySteps'], optional: ['cycle'] },
  cosine: { required: ['lr', 'decaySteps', 'minLr'], optional: [] },
  warmup: { required: ['mode', 'startLr', 'warmupSteps', 'then'], optional: [] },
  chain: { required: ['parts'], optional: [] },
};

function own(o: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}

function checkKeys(ctx: ParseContext, path: string, o: Record<string, unknown>, required: readonly string[], optional: readonly string[]): void {
  for (const key of Object.keys(o)) {
    if (!required.includes(key) && !optional.includes(key)) fail(ctx, `${path}.${key}`, 'is not a field of this schedule');
  }
  for (const key of required) {
    if (own(o, key) === undefined) fail(ctx, `${path}.${key}`, 'is missing');
  }
}

/** A finite learning rate >= 0 (-0 becomes 0, so that JSON, which writes -0 as 0, gives back the same values). */
function rate(ctx: ParseContext, path: string, v: unknown, positive = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(ctx, path, 'must be a finite number', v);
  if (positive ? !(v > 0) : v < 0) fail(ctx, path, positive ? 'must be > 0' : 'must be >= 0', v);
  return v === 0 ? 0 : v;
}

function positiveNumber(ctx: ParseContext, path: string, v: unknown): number {
  return rate(ctx, path, v, true);
}

function integer(ctx: ParseContext, path: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    fail(ctx, path, min === 0 ? 'must be an integer >= 0' : `must be an integer >= ${min}`, v);
  }
  return v === 0 ? 0 : v;
}

function flag(ctx: ParseContext, path: string, v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') fail(ctx, path, 'must be true or false', v);
  return v;
}

function parse(ctx: ParseContext, v: unknown, path: string, depth: number): Schedule {
  if (depth > SCHEDULE_LIMITS.maxDepth) fail(ctx, path, `nests schedules deeper than ${SCHEDULE_LIMITS.maxDepth} levels`);
  if (++ctx.nodes > SCHEDULE_LIMITS.maxNodes) fail(ctx, path, `makes the schedule larger than ${SCHEDULE_LIMITS.maxNodes} parts`);
  if (!isRecord(v)) fail(ctx, path, 'must be a schedule object', v);
  const kind = own(v, 'kind');
  if (typeof kind !== 'string' || !Object.prototype.hasOwnProperty.call(KEYS, kind)) {
    fail(ctx, `${path}.kind`, `must be one of ${Object.keys(KEYS).join(', ')}`, kind);
  }
  const k = kind as ScheduleKind;
  checkKeys(ctx, path, v, ['kind', ...KEYS[k].required], KEYS[k].optional);
  const at = (key: string) => `${path}.${key}`;
  switch (k) {
    case 'constant':
      return { kind: k, lr: rate(ctx, at('lr'), v.lr) };
    case 'step':
      return {
        kind: k,
        lr: rate(ctx, at('lr'), v.lr),
        stepSize: integer(ctx, at('stepSize'), v.stepSize, 1),
        gamma: positiveNumber(ctx, at('gamma'), v.gamma),
      };
    case 'exponential': {
      const out: ExponentialSchedule = {
        kind: k,
        lr: rate(ctx, at('lr'), v.lr),
        decayRate: positiveNumber(ctx, at('decayRate'), v.decayRate),
        decaySteps: integer(ctx, at('decaySteps'), v.decaySteps, 1),
      };
      const staircase = flag(ctx, at('staircase'), own(v, 'staircase'));
      if (staircase !== undefined) out.staircase = staircase;
      return out;
    }
    case 'polynomial': {
      const out: PolynomialSchedule = {
        kind: k,
        lr: rate(ctx, at('lr'), v.lr),
        endLr: rate(ctx, at('endLr'), v.endLr),
        power: positiveNumber(ctx, at('power'), v.power),
        decaySteps: integer(ctx, at('decaySteps'), v.decaySteps, 1),
      };
      const cycle = flag(ctx, at('cycle'), own(v, 'cycle'));
      if (cycle !== undefined) out.cycle = cycle;
      return out;
    }
    case 'cosine':
      return { kind: k, lr: rate(ctx, at('lr'), v.lr), decaySteps: integer(ctx, at('decaySteps'), v.decaySteps, 1), minLr: rate(ctx, at('minLr'), v.minLr) };
    case 'warmup': {
      const mode = v.mode;
      if (mode !== 'linear' && mode !== 'exponential') fail(ctx, at('mode'), "must be 'linear' or 'exponential'", mode);
      const exponential = mode === 'exponential';
      const out: WarmupSchedule = {
        kind: k,
        mode,
        startLr: rate(ctx, at('startLr'), v.startLr, exponential),
        warmupSteps: integer(ctx, at('warmupSteps'), v.warmupSteps, 0),
        then: parse(ctx, v.then, at('then'), depth + 1),
      };
      if (exponential && out.warmupSteps > 0 && !(evaluate(out.then, 0) > 0)) {
        fail(ctx, at('then'), 'must give a learning rate > 0 at its step 0: an exponential warmup cannot ramp towards 0');
      }
      return out;
    }
    case 'chain': {
      const parts = v.parts;
      if (!Array.isArray(parts) || parts.length === 0) fail(ctx, at('parts'), 'must be a non-empty array of { schedule, steps }', parts);
      if (parts.length > SCHEDULE_LIMITS.maxChainParts) fail(ctx, at('parts'), `has more than ${SCHEDULE_LIMITS.maxChainParts} parts`, parts.length);
      const out: ChainPart[] = [];
      for (let i = 0; i < parts.length; i++) {
        const p: unknown = parts[i];
        const pp = `${path}.parts[${i}]`;
        if (!isRecord(p)) fail(ctx, pp, 'must be an object { schedule, steps }', p);
        const last = i === parts.length - 1;
        checkKeys(ctx, pp, p, last ? ['schedule'] : ['schedule', 'steps'], []);
        const schedule = parse(ctx, p.schedule, `${pp}.schedule`, depth + 1);
        out.push(last ? { schedule } : { schedule, steps: integer(ctx, `${pp}.steps`, p.steps, 1) });
      }
      return { kind: k, parts: out };
    }
  }
}

export interface ValidateOptions {
  /** Error code of a rejection: ECKPT_FORMAT (default, for state read from a checkpoint) or ECKPT_ARGS. */
  code?: 'ECKPT_FORMAT' | 'ECKPT_ARGS';
  /** Name of the value in error messages (default 'schedule'). */
  name?: string;
}

/** Parses an untrusted value (e.g. from a checkpoint's state JSON) into a fresh Schedule holding only known fields.
 * Rejects unknown kinds or fields, wrong types, NaN/Infinity, out-of-range values and nesting deeper than
 * SCHEDULE_LIMITS.maxDepth with a CheckpointError (ECKPT_FORMAT unless told otherwise) naming the field. */
export function validateSchedule(value: unknown, options: ValidateOptions = {}): Schedule {
  return parse({ code: options.code ?? 'ECKPT_FORMAT', nodes: 0 }, value, options.name ?? 'schedule', 1);
}

function checkStep(step: unknown, name = 'step'): number {
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) {
    throw new CheckpointError(`${name} must be an integer >= 0 (got ${describe(step)})`, { code: 'ECKPT_ARGS' });
  }
  return step;
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation (on validated schedules)

/** a + (b - a) * t for t in [0, 1], exact at both ends. */
function lerp(a: number, b: number, t: number): number {
  if (t >= 1) return b;
  return a + (b - a) * t;
}

function evaluate(s: Schedule, step: number): number {
  switch (s.kind) {
    case 'constant':
      return s.lr;
    case 'step':
      return s.lr * Math.pow(s.gamma, Math.floor(step / s.stepSize));
    case 'exponential': {
      const e = step / s.decaySteps;
      return s.lr * Math.pow(s.decayRate, s.staircase ? Math.floor(e) : e);
    }
    case 'polynomial': {
      let horizon = s.decaySteps;
      let t = step;
      if (s.cycle) horizon = s.decaySteps * Math.max(1, Math.ceil(step / s.decaySteps));
      else t = Math.min(step, s.decaySteps);
      return lerp(s.endLr, s.lr, Math.pow(1 - t / horizon, s.power));
    }
    case 'cosine': {
      const progress = Math.min(step, s.decaySteps) / s.decaySteps;
      return lerp(s.minLr, s.lr, 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
    case 'warmup': {
      const w = s.warmupSteps;
      if (step >= w) return evaluate(s.then, step - w);
      const target = evaluate(s.then, 0);
      const t = step / w;
      if (s.mode === 'linear') return lerp(s.startLr, target, t);
      return step === 0 ? s.startLr : s.startLr * Math.pow(target / s.startLr, t);
    }
    case 'chain': {
      let local = step;
      const last = s.parts.length - 1;
      for (let i = 0; i < last; i++) {
        const steps = s.parts[i]!.steps!;
        if (local < steps) return evaluate(s.parts[i]!.schedule, local);
        local -= steps;
      }
      return evaluate(s.parts[last]!.schedule, local);
    }
  }
}

function checked(s: Schedule, step: number): number {
  const lr = evaluate(s, step);
  if (!Number.isFinite(lr) || lr < 0) {
    throw new CheckpointError(`schedule gives a learning rate of ${describe(lr)} at step ${step} (overflow: a decay rate > 1?)`, {
      code: 'ECKPT_ARGS',
    });
  }
  return lr;
}

/** The learning rate for optimizer step `step` (0 for the first): a pure, deterministic float64 function of the
 * schedule and the step. Throws ECKPT_ARGS for a bad step or schedule (naming the field). */
export function learningRateAt(schedule: Schedule, step: number): number {
  checkStep(step);
  return checked(validateSchedule(schedule, { code: 'ECKPT_ARGS' }), step);
}

/** Sets the optimizer's learning rate for the step it is about to take (step `step`) and returns it. Works for
 * every tf.train optimizer (sgd and momentum refresh their cached -lr scalar). */
export function applySchedule(optimizer: tfType.Optimizer, schedule: Schedule, step: number): number {
  const lr = learningRateAt(schedule, step);
  setOptimizerLearningRate(optimizer, lr);
  return lr;
}

// ---------------------------------------------------------------------------------------------------------------
// Stateful helper for custom loops

/** What LrScheduler#toJSON returns and a checkpoint stores: `step` is the number of steps already taken. */
export interface LrSchedulerState {
  schedule: Schedule;
  step: number;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** A schedule plus the step counter, so a custom loop has one object to call and one to save: `next(optimizer)`
 * before each optimizer step sets the rate for step `step` and counts it. After k calls `toJSON()` holds step k, and
 * `fromJSON` of it continues with step k: no off-by-one between "steps done" and "step to run". The schedule is
 * validated once and frozen. */
export class LrScheduler {
  readonly schedule: Schedule;
  private current: number;

  constructor(schedule: Schedule, step = 0) {
    this.schedule = deepFreeze(validateSchedule(schedule, { code: 'ECKPT_ARGS' }));
    this.current = checkStep(step);
  }

  /** Steps taken so far = the index of the next step. */
  get step(): number {
    return this.current;
  }

  /** The rate the next step will get, without applying it. */
  peek(): number {
    return checked(this.schedule, this.current);
  }

  /** Sets the optimizer's rate for the next step, counts the step, returns the rate. */
  next(optimizer: tfType.Optimizer): number {
    const lr = this.peek();
    setOptimizerLearningRate(optimizer, lr);
    this.current++;
    return lr;
  }

  toJSON(): LrSchedulerState {
    return { schedule: this.schedule, step: this.current };
  }

  /** From `toJSON()`'s value read back from a checkpoint; ECKPT_FORMAT for anything malformed. */
  static fromJSON(value: unknown): LrScheduler {
    const ctx: ParseContext = { code: 'ECKPT_FORMAT', nodes: 0 };
    if (!isRecord(value)) fail(ctx, 'scheduler state', 'must be an object { schedule, step }', value);
    checkKeys(ctx, 'scheduler state', value, ['schedule', 'step'], []);
    const schedule = validateSchedule(value.schedule, { name: 'scheduler state.schedule' });
    return new LrScheduler(schedule, integer(ctx, 'scheduler state.step', value.step, 0));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Builders

function build<S extends Schedule>(s: S): S {
  return validateSchedule(s, { code: 'ECKPT_ARGS' }) as S;
}

export interface WarmupOptions {
  /** Default 'linear'. */
  mode?: 'linear' | 'exponential';
  /** Rate at step 0. Default 0 for linear; required (> 0) for exponential. */
  startLr?: number;
  warmupSteps: number;
}

/** A chain part: `{ schedule, steps }`, or a bare schedule as the last (endless) part. */
export type ChainPartInput = ChainPart | Schedule;

/** Builders: each returns the plain config object (validated, ECKPT_ARGS on a bad value). */
export const schedules = {
  constant(options: { lr: number } | number): ConstantSchedule {
    return build({ kind: 'constant', lr: typeof options === 'number' ? options : options.lr });
  },
  step(options: { lr: number; stepSize: number; gamma?: number }): StepSchedule {
    return build({ kind: 'step', lr: options.lr, stepSize: options.stepSize, gamma: options.gamma ?? 0.1 });
  },
  exponential(options: { lr: number; decayRate: number; decaySteps: number; staircase?: boolean }): ExponentialSchedule {
    const s: ExponentialSchedule = { kind: 'exponential', lr: options.lr, decayRate: options.decayRate, decaySteps: options.decaySteps };
    if (options.staircase !== undefined) s.staircase = options.staircase;
    return build(s);
  },
  polynomial(options: { lr: number; decaySteps: number; endLr?: number; power?: number; cycle?: boolean }): PolynomialSchedule {
    const s: PolynomialSchedule = {
      kind: 'polynomial',
      lr: options.lr,
      endLr: options.endLr ?? 0,
      power: options.power ?? 1,
      decaySteps: options.decaySteps,
    };
    if (options.cycle !== undefined) s.cycle = options.cycle;
    return build(s);
  },
  /** `minLr` (default 0) or `alpha`, the floor as a fraction of lr (minLr = alpha * lr, stored as minLr). */
  cosine(options: { lr: number; decaySteps: number; minLr?: number; alpha?: number }): CosineSchedule {
    if (options.minLr !== undefined && options.alpha !== undefined) {
      throw new CheckpointError('cosine: give minLr or alpha, not both', { code: 'ECKPT_ARGS' });
    }
    let minLr = options.minLr ?? 0;
    if (options.alpha !== undefined) {
      const a = options.alpha;
      if (typeof a !== 'number' || !(a >= 0 && a <= 1)) {
        throw new CheckpointError(`cosine: alpha must be a number in [0, 1] (got ${describe(a)})`, { code: 'ECKPT_ARGS' });
      }
      minLr = a * options.lr;
    }
    return build({ kind: 'cosine', lr: options.lr, decaySteps: options.decaySteps, minLr });
  },
  /** Warmup of `warmupSteps` steps into `then`, which then runs from its own step 0. */
  warmup(options: WarmupOptions, then: Schedule): WarmupSchedule {
    const mode = options.mode ?? 'linear';
    const startLr = options.startLr ?? (mode === 'linear' ? 0 : undefined);
    return build({ kind: 'warmup', mode, startLr: startLr as number, warmupSteps: options.warmupSteps, then });
  },
  /** Parts in order; each but the last needs `steps`. */
  chain(parts: ChainPartInput[]): ChainSchedule {
    if (!Array.isArray(parts)) throw new CheckpointError('chain: parts must be an array', { code: 'ECKPT_ARGS' });
    const out = parts.map((p): ChainPart => (isRecord(p) && typeof p.kind === 'string' ? { schedule: p as Schedule } : (p as ChainPart)));
    return build({ kind: 'chain', parts: out });
  },
};
