/** Recipe 3: model.save / tf.loadLayersModel through one durable, checksummed file, and an export to tfjs's own
 * model.json + weights for browsers.
 *   node dist/examples/io-handler.js [dir]
 * (In your project: import { ioHandler, exportTfjsModel } from 'ckptio'.) */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { exportTfjsModel, ioHandler } from '../src';

async function main(): Promise<void> {
  const [dir = './runs/io-example'] = process.argv.slice(2);
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'softmax' })] });
  model.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy' });
  const file = path.join(dir, 'model.safetensors');

  await model.save(ioHandler(file), { includeOptimizer: true }); // tmp + fdatasync + rename + dir fsync
  const loaded = await tf.loadLayersModel(ioHandler(file)); // checksums verified
  await exportTfjsModel(file, path.join(dir, 'web')); // model.json + weights-<xxh3>.bin, atomically

  const input = tf.ones([1, 4]);
  const same = Buffer.from((model.predict(input) as tf.Tensor).dataSync().buffer).equals(Buffer.from((loaded.predict(input) as tf.Tensor).dataSync().buffer));
  console.log(JSON.stringify({ file, samePredictions: same, exported: path.join(dir, 'web', 'model.json') }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
