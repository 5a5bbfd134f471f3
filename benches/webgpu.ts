/** Manual benchmark (not a test): what a save costs the main thread on the webgpu backend, and the step time with
 * a save every 10 steps vs none. Prints the adapter with every figure (a software adapter is not a GPU).
 *
 *   EGL_PLATFORM=surfaceless node dist/benches/webgpu.js [--layers 784,256,10] [--batch 128] [--steps 40]
 *
 * Main-thread time per save: event-loop utilization (performance.eventLoopUtilization) while one save runs with
 * nothing else on the thread: the snapshot, issuing the GPU->staging copies, the map callbacks and the backend's
 * copy out of the mapped range, and handing the bytes to the writer. The step-time rows train the same model
 * with and without a save every 10 steps (Checkpointer, maxInflight 1). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as tfType from '@tensorflow/tfjs';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { loadTf } from '../src/tfjs/backend';
import { modelState } from '../src/tfjs/model-state';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : def;
}

async function main(): Promise<void> {
  const layers = arg('--layers', '784,256,10').split(',').map(Number);
  const batch = Number(arg('--batch', '128'));
  const steps = Number(arg('--steps', '40'));
  const { tf, adapter, close } = await loadTf('webgpu');
  const who = `${adapter!.dawnBackend} ${adapter!.description || adapter!.device}${adapter!.software ? ' (software)' : ''}`;
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [layers[0]!], units: layers[1]!, activation: 'relu' }));
  for (const u of layers.slice(2, -1)) model.add(tf.layers.dense({ units: u, activation: 'relu' }));
  model.add(tf.layers.dense({ units: layers[layers.length - 1]!, activation: 'softmax' }));
  const optimizer = tf.train.adam(0.001);
  const x = tf.randomNormal([batch, layers[0]!]);
  const y = tf.oneHot(tf.randomUniform([batch], 0, layers[layers.length - 1]!, 'int32'), layers[layers.length - 1]!).toFloat();
  const vars = () => model.trainableWeights.map((w) => w.read() as tfType.Variable);
  const step = async () => {
    const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tfType.Tensor) as tfType.Scalar, true, vars())!;
    await loss.data(); // the step boundary: the loop waits for the GPU like a real one reading its loss
    loss.dispose();
  };
  for (let i = 0; i < 3; i++) await step(); // shaders compiled, slots created
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-webgpu-bench-'));
  const ckpt = new Checkpointer({ dir, keepLast: 2, maxInflight: 1, onFull: 'wait' });
  const stateBytes = modelState(model, optimizer, { tf }).bytes;

  // Main thread per save, alone.
  const perSave: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < 8; i++) {
    const e0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    const h = await ckpt.save(1000 + i, { tensors: modelState(model, optimizer, { tf }) });
    await h.durable;
    wall.push(performance.now() - t0);
    perSave.push(performance.eventLoopUtilization(e0).active);
  }
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)]!;
  console.log(`[${who}] state ${(stateBytes / 2 ** 20).toFixed(2)} MiB: main thread per save ${median(perSave).toFixed(2)} ms (median of 8; wall to durable ${median(wall).toFixed(1)} ms)`);

  // Step time, no saves vs a save every 10 steps.
  const timed = async (saveEvery: number): Promise<number> => {
    const t0 = performance.now();
    for (let i = 1; i <= steps; i++) {
      await step();
      if (saveEvery && i % saveEvery === 0) await ckpt.save(2000 + i + saveEvery * 1000, { tensors: modelState(model, optimizer, { tf }) });
      await new Promise<void>((r) => setImmediate(r));
    }
    return (performance.now() - t0) / steps;
  };
  const none1 = await timed(0);
  const every = await timed(10);
  const none2 = await timed(0);
  const none = (none1 + none2) / 2;
  console.log(`[${who}] ${layers.join('-')} batch ${batch}: ${none.toFixed(1)} ms/step without saves, ${every.toFixed(1)} ms/step with a save every 10 (${(every / none).toFixed(3)}x)`);
  await ckpt.close();
  fs.rmSync(dir, { recursive: true, force: true });
  model.dispose();
  optimizer.dispose();
  await close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
