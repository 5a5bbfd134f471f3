/** Recipe 1: model.fit with a checkpoint callback. Run it twice: the second run resumes where the first stopped.
 *   node dist/examples/fit-callback.js [dir] [epochs]
 * (In your project: import { fitCheckpoint } from 'ckptio'.) */
import * as tf from '@tensorflow/tfjs';
import { fitCheckpoint } from '../src';

async function main(): Promise<void> {
  const [dir = './runs/fit-example', epochs = '4'] = process.argv.slice(2);
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [16], units: 32, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }),
      tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
  const x = tf.randomNormal([256, 16], 0, 1, 'float32', 3);
  const y = tf.sum(x, 1, true);

  const ckpt = await fitCheckpoint(model, { dir, monitor: 'loss' }); // restores the newest valid checkpoint
  await model.fit(x, y, { epochs: Number(epochs), batchSize: 32, shuffle: false, verbose: 0, initialEpoch: ckpt.initialEpoch, callbacks: [ckpt] }); // saves every epoch, off the training thread
  await ckpt.close();
  console.log(
    JSON.stringify({
      resumedFrom: ckpt.resumed?.step ?? null,
      initialEpoch: ckpt.initialEpoch,
      step: ckpt.step,
      loss: (model.evaluate(x, y) as tf.Scalar).dataSync()[0],
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
