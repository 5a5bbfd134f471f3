/** The demo's model: a tf.LayersModel MLP with seeded initializers (the same weights in every run with the same
 * seed), and the tf.train optimizers the CLI offers. */
import '../platform/node';
import type * as tfType from '@tensorflow/tfjs';
import { argumentError } from '../binding/errors';

type Tf = typeof tfType;

export const OPTIMIZER_NAMES = ['sgd', 'momentum', 'rmsprop', 'adagrad', 'adadelta', 'adam', 'adamax'] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

/** Dense layers with ReLU between them and logits out (the loss applies the softmax). */
export function buildMlp(tf: Tf, sizes: number[], seed: number): tfType.Sequential {
  const model = tf.sequential();
  for (let l = 0; l + 1 < sizes.length; l++) {
    const last = l + 2 === sizes.length;
    model.add(
      tf.layers.dense({
        units: sizes[l + 1]!,
        activation: last ? 'linear' : 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: seed * 1000 + l }),
        ...(l === 0 ? { inputShape: [sizes[0]!] } : {}),
      }),
    );
  }
  return model;
}

export function makeOptimizer(tf: Tf, name: OptimizerName, lr: number): tfType.Optimizer {
  switch (name) {
    case 'sgd':
      return tf.train.sgd(lr);
    case 'momentum':
      return tf.train.momentum(lr, 0.9);
    case 'rmsprop':
      return tf.train.rmsprop(lr);
    case 'adagrad':
      return tf.train.adagrad(lr);
    case 'adadelta':
      return tf.train.adadelta(lr);
    case 'adam':
      return tf.train.adam(lr);
    case 'adamax':
      return tf.train.adamax(lr);
    default:
      throw argumentError(`unknown optimizer ${String(name)} (${OPTIMIZER_NAMES.join(', ')})`);
  }
}
