/** Guards for src/tfjs/internals.ts: each fails loudly when a tfjs upgrade changes a private field ckptio uses. */
import '../src/platform/node';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as tfType from '@tensorflow/tfjs';
import { loadTf } from '../src/tfjs/backend';
import {
  fitWeightOrder,
  OPTIMIZER_LAYOUTS,
  optimizerIterations,
  optimizerLayout,
  optimizerLearningRate,
  readSlots,
  scalarVariable,
  setOptimizerIterations,
  setOptimizerLearningRate,
  statefulFields,
  weightVariable,
} from '../src/tfjs/internals';

const MAKE: Record<string, (tf: typeof tfType) => tfType.Optimizer> = {
  SGD: (tf) => tf.train.sgd(0.1),
  Momentum: (tf) => tf.train.momentum(0.1, 0.9, true),
  RMSProp: (tf) => tf.train.rmsprop(0.01, 0.9, 0.5, 1e-7, true),
  Adagrad: (tf) => tf.train.adagrad(0.1),
  Adadelta: (tf) => tf.train.adadelta(1),
  Adam: (tf) => tf.train.adam(0.01),
  Adamax: (tf) => tf.train.adamax(0.01),
};

test('the optimizer table covers exactly the tf.train optimizers', () => {
  assert.deepEqual(Object.keys(OPTIMIZER_LAYOUTS).sort(), Object.keys(MAKE).sort());
});

for (const className of Object.keys(MAKE)) {
  test(`tfjs ${className} keeps its state where ckptio reads and writes it`, async () => {
    const { tf } = await loadTf('cpu');
    const opt = MAKE[className]!(tf);
    const { className: got, layout } = optimizerLayout(opt);
    assert.equal(got, className);
    const a = tf.variable(tf.tensor1d([1, 2, 3]), true);
    const b = tf.variable(
      tf.tensor2d([
        [1, -1],
        [2, 0.5],
      ]),
      true,
    );
    assert.equal(optimizerIterations(opt), 0, 'no step yet');
    for (const f of layout.slots) assert.deepEqual(readSlots(opt, f), [], `${f.field}: slots are created lazily`);
    opt.minimize(() => tf.add(tf.sum(tf.square(a)), tf.sum(tf.mul(b, b))) as tfType.Scalar, false, [a, b]);
    assert.equal(optimizerIterations(opt), 1, 'iterations_ counts steps');
    // Every Variable or slot array the optimizer holds is one ckptio saves: new state in a tfjs upgrade fails here.
    const known = new Set([...layout.slots.map((f) => f.field), ...layout.scalarVariables]);
    for (const field of statefulFields(opt)) assert.ok(known.has(field), `${className}.${field} holds state ckptio does not save`);
    for (const f of layout.slots) {
      const slots = readSlots(opt, f);
      assert.equal(slots.length, 2, `${f.field}: one slot per variable, by position`);
      assert.deepEqual(
        slots.map((s) => s!.originalName),
        [`${a.name}${f.suffix}`, `${b.name}${f.suffix}`],
        `${f.field}: labelled <variable name>${f.suffix}`,
      );
      assert.deepEqual(slots[1]!.variable.shape, [2, 2]);
    }
    for (const field of layout.scalarVariables) assert.equal(scalarVariable(opt, field).rank, 0);
    setOptimizerIterations(opt, 41);
    assert.equal(optimizerIterations(opt), 41);
    assert.equal(typeof optimizerLearningRate(opt), 'number');
    // The learning rate set is the one the next step uses (SGD and Momentum cache -lr in a kept scalar).
    const before = (a.dataSync() as Float32Array).slice();
    setOptimizerLearningRate(opt, 0);
    opt.minimize(() => tf.sum(tf.square(a)) as tfType.Scalar, false, [a]);
    // (RMSProp here carries momentum from the first step and Adadelta scales by its own accumulators.)
    if (className !== 'Adadelta' && className !== 'RMSProp')
      assert.deepEqual([...(a.dataSync() as Float32Array)], [...before], 'lr 0: the variable does not move');
    opt.dispose();
    a.dispose();
    b.dispose();
  });
}

test('a LayersModel weight is a tf.Variable of the same name, and fit trains collectedTrainableWeights in order', async () => {
  const { tf } = await loadTf('cpu');
  const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 }), tf.layers.dense({ units: 1 })] });
  m.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
  for (const w of m.weights) assert.equal(weightVariable(w).name, w.name);
  await m.fit(tf.ones([4, 3]), tf.ones([4, 1]), { epochs: 1, verbose: 0 });
  const order = fitWeightOrder(m).map((w) => w.name);
  assert.deepEqual(
    order,
    m.trainableWeights.map((w) => w.name),
  );
  const slots = readSlots(m.optimizer, OPTIMIZER_LAYOUTS.Adam!.slots[0]!);
  assert.deepEqual(
    slots.map((s) => s!.originalName),
    order.map((n) => `${n}/m`),
    'slot i belongs to weight i of that order',
  );
});
