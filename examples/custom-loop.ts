/** Recipe 2: a custom training loop with optimizer.minimize, saving every 10 steps without stalling and resuming
 * bit for bit (weights, Adam's moments and its beta products, the step).
 *   node dist/examples/custom-loop.js [dir] [steps]
 * (In your project: import { Checkpointer, modelState, restoreModelState } from 'ckptio'.) */
import * as tf from '@tensorflow/tfjs';
import { Checkpointer, modelState, restoreModelState } from '../src';

async function main(): Promise<void> {
  const [dir = './runs/loop-example', steps = '40'] = process.argv.slice(2);
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [8], units: 1, kernelInitializer: tf.initializers.zeros() })] });
  const optimizer = tf.train.adam(0.05);
  const x = tf.randomNormal([64, 8], 0, 1, 'float32', 7);
  const y = tf.matMul(x, tf.range(1, 9).reshape([8, 1]));

  const ckpt = new Checkpointer({ dir, keepLast: 2 });
  const resumed = await ckpt.loadLatest();
  if (resumed) restoreModelState(model, optimizer, resumed); // strict: throws ECKPT_MISMATCH if it does not fit
  let step = resumed?.step ?? 0;
  for (; step < Number(steps); step++) {
    optimizer.minimize(() => tf.losses.meanSquaredError(y, model.predict(x) as tf.Tensor) as tf.Scalar);
    if ((step + 1) % 10 === 0) await ckpt.save(step + 1, { tensors: modelState(model, optimizer) }); // O(1) per tensor
  }
  await ckpt.close(); // waits until every save is durable
  const kernel = Buffer.from((model.getWeights()[0]!.dataSync() as Float32Array).buffer).toString('hex');
  console.log(JSON.stringify({ resumedFrom: resumed?.step ?? null, step, kernel }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
