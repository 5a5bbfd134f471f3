/** Child process for the zero-stall tests: a synchronous custom training loop as users write it (each step
 * `optimizer.minimize`, a save every `every` steps whose `await` is the loop's only one), default options.
 *
 *   node sync-loop-child.js <json config>
 *
 * mode 'loop': after each save(k) returns, checks that no event-loop turn ran inside the call, computes
 * synchronously for 3x the time an idle save took to become durable, then reads `latest` synchronously and prints
 * {event:'verified', step, onDisk, latest, lastDurableStep, turned}. Runs until killed.
 * mode 'resume': prints {event:'resumed', step} for the newest valid checkpoint.
 * mode 'exit': saves once and calls process.exit(0) as soon as save() returned. */
import '../../src/platform/node';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tfType from '@tensorflow/tfjs';
import { Checkpointer } from '../../src/checkpoint/checkpointer';
import { checkpointName } from '../../src/checkpoint/manifest';
import { loadTf } from '../../src/tfjs/backend';
import { modelState } from '../../src/tfjs/model-state';
import { mainThreadCopy } from '../../src/tfjs/wasm-heap';

interface Config {
  backend: 'cpu' | 'wasm';
  mode: 'loop' | 'resume' | 'exit';
  dir: string;
  every?: number;
  units?: number;
}

const out = (o: unknown) => fs.writeSync(1, JSON.stringify(o) + '\n');

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2]!) as Config;
  const { tf } = await loadTf(cfg.backend);
  const units = cfg.units ?? 256;
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [256], units, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  const optimizer = tf.train.adam(0.001);
  const x = tf.randomNormal([64, 256], 0, 1, 'float32', 3);
  const y = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: 64 }, (_, i) => i % 10),
      'int32',
    ),
    10,
  );
  const step = () =>
    tf.tidy(() => {
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.predict(x) as tfType.Tensor) as tfType.Scalar);
    });
  const ckpt = new Checkpointer({ dir: cfg.dir });
  if (cfg.mode === 'resume') {
    const loaded = await ckpt.loadLatest();
    out({ event: 'resumed', step: loaded?.step ?? null });
    await ckpt.close();
    return;
  }
  step();
  if (cfg.mode === 'exit') {
    await ckpt.save(1, { tensors: modelState(model, optimizer, { tf }) });
    out({ event: 'returned', step: 1, copiedBytes: mainThreadCopy.bytes });
    process.exit(0);
  }
  // An idle save's time to durable: the budget the loop then computes for, three times over.
  const first = await ckpt.save(0, { tensors: modelState(model, optimizer, { tf }) });
  const idleMs = (await first.durable)!.msToDurable;
  out({ event: 'idle', msToDurable: idleMs });
  const every = cfg.every ?? 5;
  for (let s = 1; ; s++) {
    step();
    if (s % every !== 0) continue;
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    const t0 = performance.now();
    await ckpt.save(s, { tensors: modelState(model, optimizer, { tf }) });
    const callMs = performance.now() - t0;
    const turnedInCall = turned;
    const until = performance.now() + 3 * Math.max(idleMs, 1);
    let steps = 0;
    while (performance.now() < until) {
      step();
      steps++;
    }
    const onDisk = fs.existsSync(path.join(cfg.dir, checkpointName(s)));
    let latest: number | null = null;
    try {
      latest = (JSON.parse(fs.readFileSync(path.join(cfg.dir, 'latest'), 'utf8')) as { step: number }).step;
    } catch {
      /* absent */
    }
    out({
      event: 'verified',
      step: s,
      onDisk,
      latest,
      lastDurableStep: ckpt.lastDurableStep,
      turned: turnedInCall,
      callMs,
      computeSteps: steps,
      copiedBytes: mainThreadCopy.bytes,
    });
    s += steps;
    s += every - (s % every) - 1;
  }
}

main().catch((err: unknown) => {
  out({ event: 'error', message: String((err as Error)?.stack ?? err) });
  process.exit(1);
});
