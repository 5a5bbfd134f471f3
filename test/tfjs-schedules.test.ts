import '../src/platform/node';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError } from '../src/binding/errors';
import { loadTf } from '../src/tfjs/backend';
import { optimizerLearningRate } from '../src/tfjs/internals';
import { applySchedule, learningRateAt, LrScheduler, Schedule, schedules, SCHEDULE_LIMITS, validateSchedule } from '../src/tfjs/schedules';

type Tf = typeof tfType;

/** Exact comparison: expected values below are chosen so that float64 computes them without rounding. */
function expectAt(s: Schedule, points: [step: number, lr: number][]): void {
  for (const [step, lr] of points) {
    const got = learningRateAt(s, step);
    assert.ok(Object.is(got, lr), `${s.kind} at step ${step}: expected ${lr}, got ${got}`);
  }
}

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= 1e-15 * Math.max(1, Math.abs(b)), `${what}: expected ${b}, got ${a}`);
}

function throwsCkpt(fn: () => unknown, code: string, fragment: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CheckpointError, `a CheckpointError, got ${String(err)}`);
    assert.equal(err.code, code, `code of "${err.message}"`);
    assert.ok(err.message.includes(fragment), `"${err.message}" names ${fragment}`);
    return true;
  });
}

test('constant, step, exponential: values at known steps', () => {
  expectAt(schedules.constant({ lr: 1e-3 }), [
    [0, 1e-3],
    [1, 1e-3],
    [1e9, 1e-3],
  ]);
  expectAt(schedules.constant(0.5), [[0, 0.5]]);
  const st = schedules.step({ lr: 1, stepSize: 3, gamma: 0.5 });
  expectAt(st, [
    [0, 1],
    [2, 1],
    [3, 0.5],
    [5, 0.5],
    [6, 0.25],
    [30, 2 ** -10],
  ]);
  assert.equal(schedules.step({ lr: 1, stepSize: 3 }).gamma, 0.1, 'default gamma');
  const ex = schedules.exponential({ lr: 2, decayRate: 0.5, decaySteps: 4 });
  expectAt(ex, [
    [0, 2],
    [4, 1],
    [8, 0.5],
    [40, 2 ** -9],
  ]);
  close(learningRateAt(ex, 2), Math.SQRT2, 'exponential mid-period'); // 2 * 0.5^(1/2)
  close(learningRateAt(ex, 1), 2 * 0.5 ** 0.25, 'exponential at step 1');
  const stair = schedules.exponential({ lr: 2, decayRate: 0.5, decaySteps: 4, staircase: true });
  expectAt(stair, [
    [0, 2],
    [3, 2],
    [4, 1],
    [7, 1],
    [8, 0.5],
  ]);
});

test('polynomial (with and without cycle) and cosine (minLr and alpha): values at known steps', () => {
  const p = schedules.polynomial({ lr: 1, endLr: 0, power: 2, decaySteps: 4 });
  expectAt(p, [
    [0, 1],
    [1, 0.5625],
    [2, 0.25],
    [3, 0.0625],
    [4, 0],
    [100, 0],
  ]);
  const lin = schedules.polynomial({ lr: 1, endLr: 0.5, decaySteps: 4 }); // power defaults to 1
  expectAt(lin, [
    [0, 1],
    [2, 0.75],
    [4, 0.5],
    [9, 0.5],
  ]);
  const cyc = schedules.polynomial({ lr: 1, endLr: 0, power: 1, decaySteps: 4, cycle: true });
  // the horizon is the next multiple of decaySteps: step 5 decays over 8 steps
  expectAt(cyc, [
    [0, 1],
    [2, 0.5],
    [4, 0],
    [5, 0.375],
    [6, 0.25],
    [8, 0],
    [9, 1 - 9 / 12],
  ]);
  const cos = schedules.cosine({ lr: 1, decaySteps: 4, minLr: 0.25 });
  expectAt(cos, [
    [0, 1],
    [2, 0.625],
    [4, 0.25],
    [5, 0.25],
    [1000, 0.25],
  ]);
  close(learningRateAt(cos, 1), 0.25 + 0.75 * 0.5 * (1 + Math.SQRT1_2), 'cosine at step 1');
  close(learningRateAt(cos, 3), 0.25 + 0.75 * 0.5 * (1 - Math.SQRT1_2), 'cosine at step 3');
  const alpha = schedules.cosine({ lr: 2, decaySteps: 4, alpha: 0.5 });
  assert.equal(alpha.minLr, 1, 'alpha is stored as minLr = alpha * lr');
  expectAt(alpha, [
    [0, 2],
    [2, 1.5],
    [4, 1],
    [7, 1],
  ]);
  expectAt(schedules.cosine({ lr: 1, decaySteps: 2 }), [
    [0, 1],
    [1, 0.5],
    [2, 0],
  ]);
});

test('linear and exponential warmup: step 0, last warmup step, handover step, after', () => {
  // then: 1, 1, 0.5, 0.5, 0.25, ... at its own steps 0, 1, 2, ...
  const then = schedules.step({ lr: 1, stepSize: 2, gamma: 0.5 });
  const lin = schedules.warmup({ mode: 'linear', startLr: 0, warmupSteps: 4 }, then);
  // steps 0..3 ramp towards then(0) = 1; step 4 is then's step 0; step 6 is then's step 2
  expectAt(lin, [
    [0, 0],
    [1, 0.25],
    [2, 0.5],
    [3, 0.75],
    [4, 1],
    [5, 1],
    [6, 0.5],
    [7, 0.5],
    [8, 0.25],
    [24, 2 ** -10],
  ]);
  const exp = schedules.warmup({ mode: 'exponential', startLr: 1 / 16, warmupSteps: 4 }, then);
  // geometric: startLr * (1 / startLr)^(step / 4) = 2^(step - 4)
  expectAt(exp, [
    [0, 1 / 16],
    [1, 1 / 8],
    [2, 1 / 4],
    [3, 1 / 2],
    [4, 1],
    [5, 1],
    [6, 0.5],
  ]);
  const from = schedules.warmup({ startLr: 0.5, warmupSteps: 2 }, schedules.polynomial({ lr: 1, power: 2, decaySteps: 4 }));
  expectAt(from, [
    [0, 0.5],
    [1, 0.75],
    [2, 1],
    [3, 0.5625],
    [4, 0.25],
    [5, 0.0625],
    [6, 0],
    [7, 0],
  ]);
  assert.equal(schedules.warmup({ warmupSteps: 3 }, then).startLr, 0, 'linear warmup starts at 0 by default');
  expectAt(schedules.warmup({ warmupSteps: 0 }, then), [
    [0, 1],
    [2, 0.5],
  ]);
});

test('warmup wraps every kind: the wrapped schedule runs from its own step 0 at the handover', () => {
  // each `then` gives 1 at its step 0; `after` are its hand-computed values at its own steps
  const cases: { then: Schedule; after: [number, number][] }[] = [
    {
      then: schedules.constant(1),
      after: [
        [0, 1],
        [1, 1],
        [100, 1],
      ],
    },
    {
      then: schedules.step({ lr: 1, stepSize: 2, gamma: 0.5 }),
      after: [
        [0, 1],
        [1, 1],
        [2, 0.5],
        [3, 0.5],
        [4, 0.25],
      ],
    },
    {
      then: schedules.exponential({ lr: 1, decayRate: 0.5, decaySteps: 2 }),
      after: [
        [0, 1],
        [2, 0.5],
        [4, 0.25],
      ],
    },
    {
      then: schedules.exponential({ lr: 1, decayRate: 0.5, decaySteps: 2, staircase: true }),
      after: [
        [0, 1],
        [1, 1],
        [2, 0.5],
        [3, 0.5],
      ],
    },
    {
      then: schedules.polynomial({ lr: 1, endLr: 0, power: 2, decaySteps: 4 }),
      after: [
        [0, 1],
        [1, 0.5625],
        [2, 0.25],
        [3, 0.0625],
        [4, 0],
        [9, 0],
      ],
    },
    {
      then: schedules.polynomial({ lr: 1, decaySteps: 4, cycle: true }),
      after: [
        [0, 1],
        [4, 0],
        [5, 0.375],
      ],
    },
    {
      then: schedules.cosine({ lr: 1, decaySteps: 2, minLr: 0.5 }),
      after: [
        [0, 1],
        [1, 0.75],
        [2, 0.5],
        [5, 0.5],
      ],
    },
    {
      then: schedules.warmup({ startLr: 1, warmupSteps: 2 }, schedules.constant(0.5)),
      after: [
        [0, 1],
        [1, 0.75],
        [2, 0.5],
        [9, 0.5],
      ],
    },
    {
      then: schedules.chain([{ schedule: schedules.constant(1), steps: 2 }, schedules.constant(0.25)]),
      after: [
        [0, 1],
        [1, 1],
        [2, 0.25],
        [50, 0.25],
      ],
    },
  ];
  for (const { then, after } of cases) {
    const W = 4;
    const lin = schedules.warmup({ startLr: 0, warmupSteps: W }, then);
    const exp = schedules.warmup({ mode: 'exponential', startLr: 1 / 16, warmupSteps: W }, then);
    expectAt(lin, [
      [0, 0],
      [1, 0.25],
      [W - 1, 0.75],
    ]);
    expectAt(exp, [
      [0, 1 / 16],
      [2, 1 / 4],
      [W - 1, 1 / 2],
    ]);
    for (const [j, lr] of after) {
      expectAt(lin, [[W + j, lr]]);
      expectAt(exp, [[W + j, lr]]);
      assert.ok(Object.is(learningRateAt(lin, W + j), learningRateAt(then, j)), `${then.kind}: step W + ${j} is then's step ${j}`);
    }
  }
});

test('a 3-part chain: exponential warmup -> polynomial decay -> constant floor, each part on its local step', () => {
  const s = schedules.chain([
    { schedule: schedules.exponential({ lr: 1 / 16, decayRate: 2, decaySteps: 1 }), steps: 4 }, // 1/16 .. 1/2, doubling
    { schedule: schedules.polynomial({ lr: 1, endLr: 0.5, power: 1, decaySteps: 4 }), steps: 4 }, // 1, .875, .75, .625
    schedules.constant(0.25), // from step 8 on, forever (below the decay's end, so a boundary off by one shows)
  ]);
  expectAt(s, [
    [0, 1 / 16],
    [1, 1 / 8],
    [2, 1 / 4],
    [3, 1 / 2],
    [4, 1],
    [5, 0.875],
    [6, 0.75],
    [7, 0.625],
    [8, 0.25],
    [9, 0.25],
    [1e12, 0.25],
  ]);
  // the same shape as warmup wrapping a chain
  const w = schedules.warmup(
    { mode: 'exponential', startLr: 1 / 16, warmupSteps: 4 },
    schedules.chain([{ schedule: schedules.polynomial({ lr: 1, endLr: 0.5, decaySteps: 4 }), steps: 4 }, schedules.constant(0.25)]),
  );
  for (let i = 0; i < 20; i++) assert.ok(Object.is(learningRateAt(w, i), learningRateAt(s, i)), `step ${i}`);
});

const complex: Schedule = schedules.chain([
  {
    schedule: schedules.warmup(
      { mode: 'exponential', startLr: 1e-6, warmupSteps: 37 },
      schedules.polynomial({ lr: 3e-3, endLr: 7e-5, power: 1.7, decaySteps: 311, cycle: true }),
    ),
    steps: 401,
  },
  { schedule: schedules.cosine({ lr: 1e-3, decaySteps: 200, alpha: 0.1 }), steps: 250 },
  { schedule: schedules.exponential({ lr: 1e-4, decayRate: 0.93, decaySteps: 17 }), steps: 100 },
  { schedule: schedules.step({ lr: 9e-5, stepSize: 33, gamma: 0.7 }), steps: 120 },
  schedules.warmup({ startLr: 1e-5, warmupSteps: 13 }, schedules.constant(2e-5)),
]);

test('a JSON round trip gives the same learning rates bit for bit over 1,000 steps', () => {
  const text = JSON.stringify({ schedule: complex, step: 123 });
  const back = validateSchedule((JSON.parse(text) as { schedule: unknown }).schedule);
  assert.deepEqual(back, complex);
  for (let i = 0; i < 1000; i++) {
    const a = learningRateAt(complex, i);
    assert.ok(Object.is(a, learningRateAt(back, i)), `step ${i}`);
    assert.ok(Number.isFinite(a) && a >= 0);
  }
  // -0 (which JSON writes as 0) is read as 0, so values before and after a round trip agree
  assert.ok(Object.is((validateSchedule({ kind: 'constant', lr: -0 }) as { lr: number }).lr, 0));
  // the scheduler state round-trips too
  const sch = LrScheduler.fromJSON(JSON.parse(JSON.stringify(new LrScheduler(complex, 777))));
  assert.equal(sch.step, 777);
  assert.ok(Object.is(sch.peek(), learningRateAt(complex, 777)));
});

test('validateSchedule rejects malformed or hostile values with a CheckpointError naming the field', () => {
  const warmupInto = (then: unknown) => ({ kind: 'warmup', mode: 'linear', startLr: 0, warmupSteps: 3, then });
  const bad: [unknown, string][] = [
    [null, 'schedule must be a schedule object'],
    ['constant', 'schedule must be a schedule object'],
    [[], 'schedule must be a schedule object'],
    [{ lr: 1 }, 'schedule.kind'],
    [{ kind: 'linear', lr: 1 }, 'schedule.kind must be one of'],
    [{ kind: 'toString' }, 'schedule.kind'],
    [{ kind: 'constant' }, 'schedule.lr is missing'],
    [{ kind: 'constant', lr: NaN }, 'schedule.lr must be a finite number (got NaN)'],
    [{ kind: 'constant', lr: Infinity }, 'schedule.lr must be a finite number'],
    [{ kind: 'constant', lr: '0.1' }, 'schedule.lr must be a finite number (got "0.1")'],
    [{ kind: 'constant', lr: -1 }, 'schedule.lr must be >= 0'],
    [{ kind: 'constant', lr: 0.1, decaySteps: 3 }, 'schedule.decaySteps is not a field'],
    [JSON.parse('{"kind":"constant","lr":0.1,"__proto__":{"lr":1}}'), 'schedule.__proto__ is not a field'],
    [{ kind: 'step', lr: 1, stepSize: 0, gamma: 0.5 }, 'schedule.stepSize must be an integer >= 1'],
    [{ kind: 'step', lr: 1, stepSize: 1.5, gamma: 0.5 }, 'schedule.stepSize'],
    [{ kind: 'step', lr: 1, stepSize: 2, gamma: 0 }, 'schedule.gamma must be > 0'],
    [{ kind: 'exponential', lr: 1, decayRate: 0.5, decaySteps: 2, staircase: 'yes' }, 'schedule.staircase must be true or false'],
    [{ kind: 'exponential', lr: 1, decayRate: -0.5, decaySteps: 2 }, 'schedule.decayRate'],
    [{ kind: 'polynomial', lr: 1, endLr: 0, power: 0, decaySteps: 2 }, 'schedule.power must be > 0'],
    [{ kind: 'polynomial', lr: 1, endLr: 0, power: 1, decaySteps: 2 ** 53 }, 'schedule.decaySteps'],
    [{ kind: 'cosine', lr: 1, decaySteps: 2 }, 'schedule.minLr is missing'],
    [{ kind: 'warmup', mode: 'cosine', startLr: 0, warmupSteps: 3, then: { kind: 'constant', lr: 1 } }, 'schedule.mode'],
    [{ kind: 'warmup', mode: 'linear', startLr: 0, warmupSteps: -1, then: { kind: 'constant', lr: 1 } }, 'schedule.warmupSteps must be an integer >= 0'],
    [{ kind: 'warmup', mode: 'linear', startLr: 0, warmupSteps: 3 }, 'schedule.then is missing'],
    [warmupInto({ kind: 'constant', lr: null }), 'schedule.then.lr must be a finite number (got null)'],
    [{ kind: 'warmup', mode: 'exponential', startLr: 0, warmupSteps: 3, then: { kind: 'constant', lr: 1 } }, 'schedule.startLr must be > 0'],
    [{ kind: 'warmup', mode: 'exponential', startLr: 0.1, warmupSteps: 3, then: { kind: 'constant', lr: 0 } }, 'schedule.then must give a learning rate > 0'],
    [{ kind: 'chain', parts: [] }, 'schedule.parts must be a non-empty array'],
    [{ kind: 'chain', parts: { length: 1 } }, 'schedule.parts must be a non-empty array'],
    [{ kind: 'chain', parts: [{ schedule: { kind: 'constant', lr: 1 } }, { schedule: { kind: 'constant', lr: 1 } }] }, 'schedule.parts[0].steps is missing'],
    [
      { kind: 'chain', parts: [{ schedule: { kind: 'constant', lr: 1 }, steps: 0 }, { schedule: { kind: 'constant', lr: 1 } }] },
      'schedule.parts[0].steps must be an integer >= 1',
    ],
    [
      {
        kind: 'chain',
        parts: [
          { schedule: { kind: 'constant', lr: 1 }, steps: 2 },
          { schedule: { kind: 'constant', lr: 1 }, steps: 2 },
        ],
      },
      'schedule.parts[1].steps is not a field',
    ],
    [{ kind: 'chain', parts: [{ schedule: { kind: 'constant', lr: 1 }, steps: 2 }, { schedule: { kind: 'nope' } }] }, 'schedule.parts[1].schedule.kind'],
    [{ kind: 'chain', parts: [1] }, 'schedule.parts[0] must be an object'],
    [{ kind: 'chain', parts: new Array(SCHEDULE_LIMITS.maxChainParts + 1).fill({ schedule: { kind: 'constant', lr: 1 }, steps: 1 }) }, 'more than 256 parts'],
  ];
  for (const [value, fragment] of bad) {
    throwsCkpt(() => validateSchedule(value), 'ECKPT_FORMAT', fragment);
    throwsCkpt(() => validateSchedule(value, { code: 'ECKPT_ARGS' }), 'ECKPT_ARGS', fragment);
    throwsCkpt(() => learningRateAt(value as Schedule, 0), 'ECKPT_ARGS', fragment);
  }
  throwsCkpt(() => validateSchedule({ kind: 'constant', lr: 1, x: 1 }, { name: 'state.lrSchedule' }), 'ECKPT_FORMAT', 'state.lrSchedule.x');
});

test('nesting and size are capped: deep, cyclic and huge values are rejected quickly, without a stack overflow', () => {
  const nest = (levels: number): unknown => {
    let s: unknown = { kind: 'constant', lr: 1 };
    for (let i = 1; i < levels; i++) s = { kind: 'warmup', mode: 'linear', startLr: 0, warmupSteps: 1, then: s };
    return s;
  };
  const ok = validateSchedule(nest(SCHEDULE_LIMITS.maxDepth));
  assert.equal(learningRateAt(ok, SCHEDULE_LIMITS.maxDepth), 1);
  throwsCkpt(() => validateSchedule(nest(SCHEDULE_LIMITS.maxDepth + 1)), 'ECKPT_FORMAT', 'deeper than 16');
  const t0 = Date.now();
  throwsCkpt(() => validateSchedule(nest(200_000)), 'ECKPT_FORMAT', 'deeper than 16');
  throwsCkpt(
    () => validateSchedule(JSON.parse('{"kind":"chain","parts":[{"schedule":'.repeat(5000) + '1' + '}]}'.repeat(5000))),
    'ECKPT_FORMAT',
    'deeper than 16',
  );
  const cyclic: Record<string, unknown> = { kind: 'warmup', mode: 'linear', startLr: 0, warmupSteps: 1 };
  cyclic.then = cyclic;
  throwsCkpt(() => validateSchedule(cyclic), 'ECKPT_FORMAT', 'deeper than 16');
  // wide: 200 chains of 200 parts is over the node cap long before it is walked
  const wideChain = (n: number, leaf: unknown) => ({
    kind: 'chain',
    parts: Array.from({ length: n }, (_, i) => (i < n - 1 ? { schedule: leaf, steps: 1 } : { schedule: leaf })),
  });
  throwsCkpt(() => validateSchedule(wideChain(200, wideChain(200, { kind: 'constant', lr: 1 }))), 'ECKPT_FORMAT', 'larger than 1024');
  assert.ok(Date.now() - t0 < 2000, 'rejections are fast');
});

test('learningRateAt, builders and LrScheduler reject bad arguments with ECKPT_ARGS (state with ECKPT_FORMAT)', () => {
  const s = schedules.constant(0.1);
  for (const step of [-1, 1.5, NaN, Infinity, 2 ** 53, '3', null]) {
    throwsCkpt(() => learningRateAt(s, step as number), 'ECKPT_ARGS', 'step must be an integer >= 0');
  }
  throwsCkpt(() => learningRateAt(schedules.exponential({ lr: 1, decayRate: 10, decaySteps: 1 }), 400), 'ECKPT_ARGS', 'learning rate of Infinity at step 400');
  throwsCkpt(() => schedules.cosine({ lr: 1, decaySteps: 0 }), 'ECKPT_ARGS', 'schedule.decaySteps');
  throwsCkpt(() => schedules.cosine({ lr: 1, decaySteps: 4, minLr: 0, alpha: 0.1 }), 'ECKPT_ARGS', 'minLr or alpha');
  throwsCkpt(() => schedules.cosine({ lr: 1, decaySteps: 4, alpha: 2 }), 'ECKPT_ARGS', 'alpha');
  throwsCkpt(() => schedules.warmup({ mode: 'exponential', warmupSteps: 4 }, s), 'ECKPT_ARGS', 'schedule.startLr is missing');
  throwsCkpt(() => schedules.step({ lr: NaN, stepSize: 3 }), 'ECKPT_ARGS', 'schedule.lr');
  throwsCkpt(() => schedules.chain([s, s]), 'ECKPT_ARGS', 'schedule.parts[0].steps is missing');
  throwsCkpt(() => new LrScheduler(s, -3), 'ECKPT_ARGS', 'step');
  throwsCkpt(() => LrScheduler.fromJSON({ schedule: s, step: -1 }), 'ECKPT_FORMAT', 'scheduler state.step');
  throwsCkpt(() => LrScheduler.fromJSON({ schedule: { kind: 'constant', lr: 'x' }, step: 1 }), 'ECKPT_FORMAT', 'scheduler state.schedule.lr');
  throwsCkpt(() => LrScheduler.fromJSON('x'), 'ECKPT_FORMAT', 'scheduler state must be an object');
  throwsCkpt(() => LrScheduler.fromJSON({ schedule: s }), 'ECKPT_FORMAT', 'scheduler state.step is missing');
  // the scheduler keeps its own frozen copy: changing the config afterwards changes nothing
  const cfg = schedules.constant(0.1);
  const sch = new LrScheduler(cfg);
  cfg.lr = 5;
  assert.equal(sch.peek(), 0.1);
  assert.ok(Object.isFrozen(sch.schedule));
});

// ---------------------------------------------------------------------------------------------------------------
// On tfjs optimizers (cpu backend)

const OPTIMIZERS: Record<string, (tf: Tf, lr: number) => tfType.Optimizer> = {
  sgd: (tf, lr) => tf.train.sgd(lr),
  momentum: (tf, lr) => tf.train.momentum(lr, 0.9),
  rmsprop: (tf, lr) => tf.train.rmsprop(lr),
  adagrad: (tf, lr) => tf.train.adagrad(lr),
  adadelta: (tf, lr) => tf.train.adadelta(lr),
  adam: (tf, lr) => tf.train.adam(lr),
  adamax: (tf, lr) => tf.train.adamax(lr),
};

test('applySchedule: an sgd step moves a variable by exactly lr * grad for the set lr, also when it changes mid-run', async () => {
  const { tf } = await loadTf('cpu');
  const v = tf.variable(tf.tensor1d([1, -2, 0.75]));
  const g = tf.tensor1d([0.5, 0.25, -3]);
  const opt = tf.train.sgd(7); // the constructor's rate must not matter
  const step = () => opt.minimize(() => tf.sum(tf.mul(v, g)) as tfType.Scalar); // d loss / d v = g exactly
  assert.equal(applySchedule(opt, schedules.constant(0.25), 0), 0.25);
  step();
  assert.deepEqual([...(v.dataSync() as Float32Array)], [1 - 0.125, -2 - 0.0625, 0.75 + 0.75]);
  // a warmup with rates that are not float32 numbers: float32 math as the cpu kernels do it (mul, then add)
  const s = schedules.warmup({ startLr: 0.1, warmupSteps: 3 }, schedules.cosine({ lr: 0.3, decaySteps: 5, minLr: 0.01 }));
  const grad = [...(g.dataSync() as Float32Array)];
  for (let i = 0; i < 10; i++) {
    const before = [...(v.dataSync() as Float32Array)];
    const lr = applySchedule(opt, s, i);
    assert.ok(Object.is(lr, learningRateAt(s, i)));
    assert.ok(Object.is(optimizerLearningRate(opt), lr));
    step();
    const expected = before.map((w, j) => Math.fround(w + Math.fround(Math.fround(-lr) * grad[j]!)));
    assert.deepEqual([...(v.dataSync() as Float32Array)], expected, `step ${i} (lr ${lr})`);
  }
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < 100; i++) applySchedule(opt, s, i);
  assert.equal(tf.memory().numTensors, tensors, 'setting the rate leaks no tensor');
  opt.dispose();
  v.dispose();
  g.dispose();
});

test('applySchedule takes effect on each of the 7 tf.train optimizers', async () => {
  const { tf } = await loadTf('cpu');
  const run = (name: string, lrs: number[]): Float32Array => {
    const opt = OPTIMIZERS[name]!(tf, 0.5);
    const v = tf.variable(tf.tensor1d([0.5, -1.5, 2]));
    lrs.forEach((lr, i) => {
      applySchedule(opt, schedules.constant(lr), i);
      assert.equal(optimizerLearningRate(opt), lr, `${name}: the rate read back`);
      opt.minimize(() => tf.sum(tf.square(v)) as tfType.Scalar);
    });
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) applySchedule(opt, schedules.constant(0.1 + i), i);
    assert.equal(tf.memory().numTensors, tensors, `${name}: setting the rate leaks no tensor`);
    const out = (v.dataSync() as Float32Array).slice();
    opt.dispose();
    v.dispose();
    return out;
  };
  for (const name of Object.keys(OPTIMIZERS)) {
    const a = run(name, [0.1]);
    const b = run(name, [0.01]);
    assert.notDeepEqual([...a], [...b], `${name}: two rates, two results`);
    // the rate set by a schedule acts exactly as the same rate given to the constructor
    const opt = OPTIMIZERS[name]!(tf, 0.1);
    const v = tf.variable(tf.tensor1d([0.5, -1.5, 2]));
    opt.minimize(() => tf.sum(tf.square(v)) as tfType.Scalar);
    assert.deepEqual([...(v.dataSync() as Float32Array)], [...a], `${name}: set rate = constructor rate`);
    opt.dispose();
    v.dispose();
    // a change after the first step (slots created, sgd/momentum's cached -lr) takes effect too
    assert.notDeepEqual([...run(name, [0.1, 0.02])], [...run(name, [0.1, 0.05])], `${name}: a rate changed mid-run`);
  }
});

/** The same schedule in both runs: warmup (exponential) into a polynomial decay, then a floor. */
const resumeSchedule = schedules.chain([
  {
    schedule: schedules.warmup(
      { mode: 'exponential', startLr: 1e-3, warmupSteps: 8 },
      schedules.polynomial({ lr: 0.1, endLr: 0.01, power: 2, decaySteps: 12 }),
    ),
    steps: 20,
  },
  schedules.constant(0.01),
]);
const N = 30;

test('resume mid-warmup with sgd: k steps -> schedule + step + weights as JSON -> fresh optimizer -> same rates and weights', async () => {
  const { tf } = await loadTf('cpu');
  const target = tf.tensor1d([0.3, -0.7, 1.1, 0]);
  interface Saved {
    schedule: unknown;
    step: number;
    w: number[];
  }
  const run = (from: Saved | null, until: number): { saved: Saved; lrs: number[] } => {
    const schedule = from ? validateSchedule(from.schedule) : resumeSchedule;
    const v = tf.variable(from ? tf.tensor1d(from.w) : tf.tensor1d([1, 2, -3, 0.5]));
    const opt = tf.train.sgd(123);
    const lrs: number[] = [];
    let step = from ? from.step : 0;
    for (; step < until; step++) {
      applySchedule(opt, schedule, step);
      lrs.push(optimizerLearningRate(opt));
      opt.minimize(() => tf.sum(tf.square(tf.sub(v, target))) as tfType.Scalar);
    }
    const saved: Saved = JSON.parse(JSON.stringify({ schedule, step, w: [...(v.dataSync() as Float32Array)] })) as Saved;
    opt.dispose();
    v.dispose();
    return { saved, lrs };
  };
  const full = run(null, N);
  assert.equal(full.lrs.length, N);
  for (const k of [0, 1, 5, 7, 8, 9, 19, 20, 21, N - 1]) {
    const first = run(null, k);
    const rest = run(first.saved, N);
    const lrs = [...first.lrs, ...rest.lrs];
    assert.equal(lrs.length, N);
    lrs.forEach((lr, i) => assert.ok(Object.is(lr, full.lrs[i]), `k=${k}: rate of step ${i}`));
    assert.deepEqual(new Uint8Array(new Float32Array(rest.saved.w).buffer), new Uint8Array(new Float32Array(full.saved.w).buffer), `k=${k}: weights`);
  }
  target.dispose();
});

test('resume mid-warmup with adam through LrScheduler: the rates the optimizer sees are identical', async () => {
  const { tf } = await loadTf('cpu');
  const run = (state: string | null, until: number): { state: string; lrs: number[] } => {
    const sch = state ? LrScheduler.fromJSON(JSON.parse(state)) : new LrScheduler(resumeSchedule);
    const opt = tf.train.adam(0.5);
    const v = tf.variable(tf.tensor1d([1, -1]));
    const lrs: number[] = [];
    while (sch.step < until) {
      const lr = sch.next(opt);
      assert.ok(Object.is(optimizerLearningRate(opt), lr));
      lrs.push(optimizerLearningRate(opt));
      opt.minimize(() => tf.sum(tf.square(v)) as tfType.Scalar);
    }
    opt.dispose();
    v.dispose();
    return { state: JSON.stringify(sch), lrs };
  };
  const full = run(null, N);
  full.lrs.forEach((lr, i) => assert.ok(Object.is(lr, learningRateAt(resumeSchedule, i)), `step ${i}`));
  for (const k of [3, 7, 8, 9]) {
    const first = run(null, k);
    assert.equal((JSON.parse(first.state) as { step: number }).step, k, 'the saved step counts the steps taken');
    const lrs = [...first.lrs, ...run(first.state, N).lrs];
    assert.equal(lrs.length, N);
    lrs.forEach((lr, i) => assert.ok(Object.is(lr, full.lrs[i]), `k=${k}: rate of step ${i}`));
  }
});
