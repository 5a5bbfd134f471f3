/** The every-step bench's synthetic loop without saves, in a process that never loads ckptio (only tfjs), so the
 * in-process "no saves" baseline can be checked against it: a library that slowed every step merely by being
 * loaded would flatter its own ratio.
 *
 *   node bare-loop-child.js '{"backend":"cpu","tensors":8,"steps":200,"spin":123456,"yields":true}'
 * prints {"mean": ms, "p99": ms} of the step times (the first step left out, as in the bench). */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

interface Config {
  backend: 'cpu' | 'wasm';
  tensors: number;
  steps: number;
  spin: number;
  yields: boolean;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2]!) as Config;
  if (cfg.backend === 'wasm') setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep);
  await tf.setBackend(cfg.backend);
  await tf.ready();
  const per = 1 << 18;
  const vars = Array.from({ length: cfg.tensors }, (_, i) => tf.variable(tf.fill([per], i), true, `bare${i}`));
  const alt = vars.map((_, i) => [tf.fill([per], i + 0.5), tf.fill([per], i + 0.25)]);
  const spin = (n: number) => {
    let x = 0;
    for (let i = 0; i < n; i++) x = (x * 1664525 + 1013904223) % 4294967296;
    return x;
  };
  const times: number[] = [];
  for (let s = 1; s <= cfg.steps; s++) {
    const t0 = performance.now();
    spin(cfg.spin);
    if (cfg.yields) vars.forEach((v, i) => v.assign(alt[i]![s % 2]!));
    else tf.tidy(() => vars.forEach((v, i) => v.assign(v.add(alt[i]![s % 2]!))));
    if (cfg.yields) await new Promise<void>((resolve) => setImmediate(resolve));
    times.push(performance.now() - t0);
  }
  const t = times.slice(1).sort((a, b) => a - b);
  console.log(JSON.stringify({ mean: t.reduce((a, b) => a + b, 0) / t.length, p99: t[Math.min(t.length - 1, Math.floor(t.length * 0.99))] }));
}

void main();
