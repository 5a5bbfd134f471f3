/** Child process for test/tfjs-webgpu.test.ts: a small LayersModel (dense, batch norm, dense; Adam) on the webgpu
 * backend. It never calls process.exit on success: the test checks that it exits by itself after close().
 * Prints JSON lines; hashes are read with data() (dataSync goes through OffscreenCanvas on webgpu).
 *
 *   node webgpu-child.js <json config>
 *   phases: probe | full | first | resume (exact resume), snapshot (a snapshot keeps step-k values), leak (100 saves),
 *   failed-read (one backend read fails while others are in flight), read-after-return (no read before save()
 *   returns) */
import '../../src/platform/node';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type * as tfType from '@tensorflow/tfjs';
import { Checkpointer } from '../../src/checkpoint/checkpointer';
import { loadTf } from '../../src/tfjs/backend';
import { collectModelState, modelState } from '../../src/tfjs/model-state';
import { restoreModelState } from '../../src/tfjs/restore';
import { snapshot } from '../../src/tfjs/snapshot';
import { TensorList } from '../../src/format/tensor-list';

type Tf = typeof tfType;

export interface WebGpuChildConfig {
  phase: 'probe' | 'full' | 'first' | 'resume' | 'snapshot' | 'leak' | 'failed-read' | 'read-after-return';
  dir?: string;
  /** Steps of the uninterrupted run, and where 'first' stops. */
  total?: number;
  first?: number;
  saves?: number;
}

const out = (o: unknown) => fs.writeSync(1, JSON.stringify(o) + '\n');

export function buildModel(tf: Tf): tfType.Sequential {
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [12], units: 16, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  m.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  return m;
}

function data(tf: Tf): { x: tfType.Tensor; y: tfType.Tensor } {
  const x = tf.randomNormal([32, 12], 0, 1, 'float32', 5);
  const labels = tf.tensor1d(
    Array.from({ length: 32 }, (_, i) => (i * 3) % 4),
    'int32',
  );
  const y = tf.oneHot(labels, 4).toFloat();
  labels.dispose();
  return { x, y };
}

function step(tf: Tf, model: tfType.Sequential, x: tfType.Tensor, y: tfType.Tensor, i: number): void {
  const vars = model.trainableWeights.map((w) => w.read() as tfType.Variable);
  const b = i % 4;
  tf.tidy(() => {
    const xb = x.slice([b * 8], [8]);
    const yb = y.slice([b * 8], [8]);
    model.optimizer.minimize(() => tf.losses.softmaxCrossEntropy(yb, model.apply(xb, { training: true }) as tfType.Tensor) as tfType.Scalar, false, vars);
  });
}

const hash = (v: ArrayBufferView) =>
  createHash('sha256')
    .update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
    .digest('hex')
    .slice(0, 16);

async function stateHashes(model: tfType.LayersModel): Promise<Record<string, string>> {
  const { tensors } = collectModelState(model, undefined);
  const h: Record<string, string> = {};
  for (const [k, t] of Object.entries(tensors)) h[k] = hash(await t.data());
  return h;
}

export interface GpuMemory {
  /** tf.memory(): tensors, data buffers (dataIds) and their bytes, as the engine counts them. */
  numTensors: number;
  numDataBuffers: number;
  numBytes: number;
  /** The backend's own count of dataIds (a snapshot's reference keeps an old one alive). */
  numDataIds: number;
  /** tf.memory() on webgpu: bytes of GPU buffers in use, and allocated (in use + the backend's free pool). */
  numBytesInGPU: number;
  numBytesAllocatedInGPU: number;
  /** The backend's buffer manager: GPU buffers in use (tensors and MAP_READ staging being read) and pooled. */
  numUsedGpuBuffers: number;
  numFreeGpuBuffers: number;
}

function gpuMemory(tf: Tf): GpuMemory {
  const m = tf.memory() as tfType.MemoryInfo & { numDataBuffers: number; numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
  const b = tf.backend() as unknown as { numDataIds(): number; bufferManager?: { getNumUsedBuffers(): number; getNumFreeBuffers(): number } };
  if (m.numBytesInGPU === undefined || m.numBytesAllocatedInGPU === undefined || !b.bufferManager)
    throw new Error('tf.memory() has no numBytesInGPU / the backend no bufferManager: not the webgpu backend?');
  return {
    numTensors: m.numTensors,
    numDataBuffers: m.numDataBuffers,
    numBytes: m.numBytes,
    numDataIds: b.numDataIds(),
    numBytesInGPU: m.numBytesInGPU,
    numBytesAllocatedInGPU: m.numBytesAllocatedInGPU,
    numUsedGpuBuffers: b.bufferManager.getNumUsedBuffers(),
    numFreeGpuBuffers: b.bufferManager.getNumFreeBuffers(),
  };
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2]!) as WebGpuChildConfig;
  const { tf, adapter, close } = await loadTf('webgpu');
  out({ adapter });
  try {
    if (cfg.phase === 'probe') return;
    const total = cfg.total ?? 10,
      first = cfg.first ?? 4;
    if (cfg.phase === 'resume') buildModel(tf).dispose(); // shifts tfjs's layer-name counters, as a real resume does
    const model = buildModel(tf);
    const { x, y } = data(tf);
    if (cfg.phase === 'full' || cfg.phase === 'first' || cfg.phase === 'resume') {
      const ckpt = new Checkpointer({ dir: cfg.dir! });
      let i = 0;
      if (cfg.phase === 'resume') {
        const loaded = await ckpt.loadLatest();
        if (!loaded) throw new Error('nothing to resume');
        restoreModelState(model, model.optimizer, loaded, { tf });
        i = loaded.step;
      }
      const end = cfg.phase === 'first' ? first : total;
      for (; i < end; i++) step(tf, model, x, y, i);
      if (cfg.phase === 'first') {
        const h = await ckpt.save(i, { tensors: modelState(model, undefined, { tf }) });
        await h.durable;
      }
      await ckpt.close();
      out({ done: await stateHashes(model), step: i });
    } else if (cfg.phase === 'snapshot') {
      for (let i = 0; i < first; i++) step(tf, model, x, y, i);
      const expected = await stateHashes(model);
      const { tensors } = collectModelState(model, undefined);
      let stats: unknown = null;
      const snap = snapshot(tf, tensors, {
        maxReadBytesInFlight: 4096,
        onCopyStats: (s) => {
          stats = s;
        },
      });
      // Training goes on: every variable's data is swapped by these steps before a byte of the snapshot is read.
      for (let i = first; i < first + 3; i++) step(tf, model, x, y, i);
      const entries = TensorList.from(await snap.materialize()).toRecord();
      const got: Record<string, string> = {};
      for (const [k, e] of Object.entries(entries)) got[k] = hash(e.data);
      snap.release();
      out({ expected, got, live: await stateHashes(model), stats });
    } else if (cfg.phase === 'failed-read') {
      // The backend's read is wrapped: the second read fails at once, every other one takes 150 ms. The snapshot
      // must not give any tensor's data back to the backend while a read of it is still in flight.
      const backend = tf.backend() as unknown as { read(id: object): Promise<ArrayBufferView>; disposeData(id: object, force?: boolean): boolean };
      const read = backend.read.bind(backend);
      const disposeData = backend.disposeData.bind(backend);
      const inFlight = new Set<object>();
      const droppedInFlight: number[] = [];
      let reads = 0;
      let disposes = 0;
      backend.read = (id) => {
        const n = ++reads;
        if (n === 2) return Promise.reject(new Error('injected read failure'));
        inFlight.add(id);
        return new Promise((resolve) => setTimeout(resolve, 150)).then(() => read(id)).finally(() => inFlight.delete(id));
      };
      backend.disposeData = (id, force) => {
        disposes++;
        if (inFlight.has(id)) droppedInFlight.push(disposes);
        return disposeData(id, force);
      };
      const { tensors } = collectModelState(model, undefined);
      const snap = snapshot(tf, tensors, { maxReadBytesInFlight: 1 << 30 });
      let error: string | null = null;
      try {
        await snap.materialize();
      } catch (err) {
        error = (err as Error).message;
      }
      const inFlightAtRejection = inFlight.size;
      snap.release(); // what Checkpointer does with a source whose materialize() failed
      backend.read = read;
      backend.disposeData = disposeData;
      out({ error, reads, inFlightAtRejection, droppedInFlight, tensors: Object.keys(tensors).length });
    } else if (cfg.phase === 'read-after-return') {
      // Issuing a read costs the main thread (encode + submit), so none may be issued before the caller's save()
      // has returned: the backend's read is counted at that moment and after the save is durable.
      const backend = tf.backend() as unknown as { read(id: object): Promise<ArrayBufferView> };
      const read = backend.read.bind(backend);
      let reads = 0;
      backend.read = (id) => {
        reads++;
        return read(id);
      };
      const ckpt = new Checkpointer({ dir: cfg.dir!, keepLast: 2 });
      const counts: { atReturn: number; atDurable: number }[] = [];
      for (let i = 0; i < 3; i++) {
        step(tf, model, x, y, i);
        const before = reads;
        const h = await ckpt.save(i + 1, { tensors: modelState(model, undefined, { tf }) });
        const atReturn = reads - before;
        await h.durable;
        counts.push({ atReturn, atDurable: reads - before });
      }
      await ckpt.close();
      backend.read = read;
      out({ counts, tensors: Object.keys(collectModelState(model, undefined).tensors).length });
    } else if (cfg.phase === 'leak') {
      const ckpt = new Checkpointer({ dir: cfg.dir!, keepLast: 2, maxInflight: 1, onFull: 'wait' });
      const saves = cfg.saves ?? 100;
      let durableSaves = 0;
      const one = async (i: number) => {
        step(tf, model, x, y, i); // new data for every variable: each save reads its tensors from the GPU
        const h = await ckpt.save(i + 1, { tensors: modelState(model, undefined, { tf }) });
        if (await h.durable) durableSaves++;
      };
      // Warm: one save per batch of step()'s cycle of 4, so the backend's pool holds every size it will use.
      for (let i = 0; i < 4; i++) await one(i);
      const before = gpuMemory(tf);
      let peak = before;
      const samples: GpuMemory[] = [];
      for (let i = 1; i <= saves; i++) {
        await one(3 + i);
        const m = gpuMemory(tf);
        if (i % 10 === 0) samples.push(m);
        if (m.numTensors > peak.numTensors || m.numBytesInGPU > peak.numBytesInGPU) peak = m;
      }
      const after = gpuMemory(tf);
      await ckpt.close();
      out({ before, after, peak, samples, saves, durableSaves, tensorsPerSave: Object.keys(collectModelState(model, undefined).tensors).length });
    }
    model.dispose();
    x.dispose();
    y.dispose();
  } finally {
    await close();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    const e = err as { code?: string; stack?: string };
    out({ error: e.code ?? 'ERROR', message: String((err as Error).message ?? err) });
    process.stderr.write(`${e.stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
