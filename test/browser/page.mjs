// The page the browser tests drive (test/browser/*.test.ts through playwright-core): it imports ckptio/browser as a
// user would, trains with the page's tfjs on the cpu backend, and reports to the test through console lines
// starting with "ckptio-test " (JSON). Each scenario is a function on window.ckptioTest, called with page.evaluate.
import * as tf from '@tensorflow/tfjs';
import { Checkpointer, fitCheckpoint, modelState, restoreModelState, seededDataset } from '/dist/browser/ckptio.mjs';

const report = (o) => console.log(`ckptio-test ${JSON.stringify(o)}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function sha256(view) {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(d.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Every weight, then every optimizer variable (its iteration count first), hashed in order: names differ between
 * processes (tfjs numbers layers per process), the order does not. */
async function stateHashes(model) {
  const out = [];
  for (const w of model.weights) out.push(await sha256(w.read().dataSync()));
  for (const w of await model.optimizer.getWeights()) out.push(await sha256(w.tensor.dataSync()));
  return out;
}

/** About 1 MiB of weights (3 MiB saved with Adam's slots): a save takes long enough to be killed in the middle. */
function smallModel() {
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [256], units: 1024, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.dropout({ rate: 0.2, seed: 3 }));
  m.add(tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  m.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  return m;
}

function smallData() {
  const x = tf.randomNormal([64, 256], 0, 1, 'float32', 5);
  const labels = tf.tensor1d(
    Array.from({ length: 64 }, (_, i) => (i * 7) % 4),
    'int32',
  );
  return { x, y: tf.oneHot(labels, 4).toFloat() };
}

window.ckptioTest = {
  /** fitDataset with fitCheckpoint (a save every batch), resuming whatever `dir` holds; slowMs of sleep per batch
   * gives a kill room to land mid-save. Reports each durable step and, at the end, the state's hashes. */
  async train({ dir, slowMs = 0, epochs = 3 }) {
    report({ isolated: crossOriginIsolated });
    await tf.setBackend('cpu');
    const { x, y } = smallData();
    const model = smallModel();
    const ds = seededDataset({ xs: x, ys: y, batchSize: 8, seed: 11, tf });
    const cb = await fitCheckpoint(model, {
      dir,
      tf,
      dataset: ds,
      everyBatches: 1,
      keepLast: 2,
      onWarning: (m) => report({ warning: m }),
      onDurable: (d) => report({ durable: d.step }),
    });
    report({ started: cb.step, initialEpoch: cb.initialEpoch });
    let batches = cb.step;
    const slow = new tf.CustomCallback({
      onBatchEnd: async () => {
        report({ batchEnd: true, step: ++batches });
        if (slowMs) await sleep(slowMs);
      },
    });
    await model.fitDataset(ds.dataset, { epochs, verbose: 0, initialEpoch: cb.initialEpoch, callbacks: [cb, slow] });
    await cb.close();
    const hashes = await stateHashes(model);
    report({ done: hashes, copiedBytes: cb.checkpointer.store.stats.copiedBytes });
    return hashes;
  },

  /** The bytes of a file of the origin private file system (base64), for the test to check in Node. */
  async readFile(path) {
    let d = await navigator.storage.getDirectory();
    const parts = path.split('/');
    for (const p of parts.slice(0, -1)) d = await d.getDirectoryHandle(p);
    const bytes = new Uint8Array(await (await (await d.getFileHandle(parts.at(-1))).getFile()).arrayBuffer());
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  },

  /** Writes files (base64) into a directory of the origin private file system, as a copy from elsewhere would. */
  async writeFiles(dir, files) {
    let d = await navigator.storage.getDirectory();
    for (const p of dir.split('/')) d = await d.getDirectoryHandle(p, { create: true });
    for (const [name, b64] of Object.entries(files)) {
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const w = await (await d.getFileHandle(name, { create: true })).createWritable();
      await w.write(bytes);
      await w.close();
    }
  },

  /** Lists a directory of the origin private file system. */
  async list(dir) {
    let d = await navigator.storage.getDirectory();
    for (const p of dir.split('/')) d = await d.getDirectoryHandle(p);
    const names = [];
    for await (const [name] of d.entries()) names.push(name);
    return names.sort();
  },

  /** A model Node trained and saved, restored here: the restored weights' and slots' hashes. */
  async restoreFrom(dir) {
    await tf.setBackend('cpu');
    const model = smallModel();
    const ckpt = new Checkpointer({ dir, lock: false });
    const loaded = await ckpt.loadLatest();
    restoreModelState(model, model.optimizer, loaded);
    await ckpt.close();
    return { step: loaded.step, hashes: await stateHashes(model) };
  },

  /** The page's thread per save of a model of `mib` MiB: save() from call to return, and `stallMs`, over `saves`
   * saves (each awaited to durable before the next training step), with a training step between saves. */
  async mainThreadCost({ dir, mib, saves }) {
    await tf.setBackend('cpu');
    const units = Math.round(Math.sqrt((mib * 1024 * 1024) / 4));
    const m = tf.sequential();
    m.add(tf.layers.dense({ inputShape: [units], units, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
    m.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    const x = tf.randomNormal([4, units], 0, 1, 'float32', 1);
    const ckpt = new Checkpointer({ dir, keepLast: 2 });
    const calls = [];
    const stalls = [];
    const durable = [];
    const parts = [];
    for (let s = 1; s <= saves; s++) {
      await m.trainOnBatch(x, x);
      const t0 = performance.now();
      const state = modelState(m);
      const t1 = performance.now();
      const h = await ckpt.save(s, { tensors: state });
      calls.push(performance.now() - t0);
      parts.push([t1 - t0, performance.now() - t1]);
      stalls.push(h.stallMs);
      durable.push((await h.durable).msToDurable);
    }
    await ckpt.close();
    const bytes = m.weights.reduce((n, w) => n + w.read().size * 4, 0);
    return { bytes, calls, stalls, durable, parts, isolated: crossOriginIsolated };
  },
};
/** What each refusal throws, as { case: code }. */
window.ckptioTest.errors = async () => {
  const codeOf = async (fn) => {
    try {
      await fn();
      return 'no error';
    } catch (e) {
      return `${e.name}:${e.code}`;
    }
  };
  const tensors = { w: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } };
  const first = new Checkpointer({ dir: 'runs/errors' });
  await (
    await first.save(1, { tensors })
  ).durable;
  const out = {
    dotdot: await codeOf(() => new Checkpointer({ dir: 'runs/../x' })),
    empty: await codeOf(() => new Checkpointer({ dir: '/' })),
    remote: await codeOf(() => new Checkpointer({ dir: 'runs/r', remote: 's3://b/p' })),
    sharded: await codeOf(() => new Checkpointer({ dir: 'runs/s', rank: 0, worldSize: 2 })),
    locked: await codeOf(async () => {
      const second = new Checkpointer({ dir: 'runs/errors' });
      await second.manifest();
    }),
    lz4: await codeOf(async () => {
      const c = new Checkpointer({ dir: 'runs/lz4', compression: 'lz4' });
      await (
        await c.save(1, { tensors })
      ).durable;
    }),
  };
  await first.close();
  const reopened = new Checkpointer({ dir: 'runs/errors' });
  out.afterClose = (await reopened.loadLatest())?.step ?? null;
  await reopened.close();
  return out;
};

/** The wasm backend (threaded when the page is cross-origin isolated: its heap is then a SharedArrayBuffer). */
async function useWasm() {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  wasm.setWasmPaths('/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
  await tf.setBackend('wasm');
  await tf.ready();
}

window.ckptioTest.probeWasm = async () => {
  await useWasm();
  const b = tf.backend();
  return { backend: tf.getBackend(), shared: b.wasm.HEAPU8.buffer instanceof SharedArrayBuffer, threads: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') };
};

/** A save on the threaded wasm backend, read in place by the writer: right after save() returns the model is
 * disposed and the freed heap overwritten, before the save is durable; the file must still hold the saved bytes. */
window.ckptioTest.wasmInPlace = async ({ dir }) => {
  await useWasm();
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [512], units: 512, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
  const x = tf.randomNormal([4, 512], 0, 1, 'float32', 1);
  await m.trainOnBatch(x, x);
  const expected = await stateHashes(m);
  const ckpt = new Checkpointer({ dir });
  const h = await ckpt.save(1, { tensors: modelState(m) });
  m.dispose();
  const filler = [];
  for (let i = 0; i < 8; i++) filler.push(tf.fill([512, 512], 7)); // reuses the freed heap
  const file = (await h.durable).path.split('/').at(-1);
  filler.forEach((t) => t.dispose());
  const loaded = await ckpt.load(file);
  const got = [];
  for (const name of Object.keys(loaded.tensors)
    .filter((k) => k.startsWith('model/'))
    .sort())
    got.push(await sha256(loaded.tensors[name].data));
  const stats = { ...ckpt.store.stats };
  await ckpt.close();
  return { expected: expected.slice(0, 2).sort(), got: got.sort(), stats, shared: tf.backend().wasm.HEAPU8.buffer instanceof SharedArrayBuffer };
};

/** What a failed commit does: another worker of the page holds a sync handle on the run's `latest` pointer, so its
 * move fails. The save whose pointer cannot move rejects (the checkpoint itself is in place), the save queued behind
 * it is aborted without writing, no temporary file is left, and once the handle is closed saving works again. */
window.ckptioTest.moveFailure = async ({ dir }) => {
  const tensors = (v) => ({ w: { dtype: 'float32', shape: [2], data: new Float32Array([v, v]) } });
  const ckpt = new Checkpointer({ dir, maxInflight: 2, onWarning: () => {} });
  await (
    await ckpt.save(1, { tensors: tensors(1) })
  ).durable;
  const holder = new Worker(
    URL.createObjectURL(
      new Blob(
        [
          `onmessage = async ({ data }) => {
            let d = await navigator.storage.getDirectory();
            for (const p of data.dir.split('/')) d = await d.getDirectoryHandle(p);
            const h = await (await d.getFileHandle('latest')).createSyncAccessHandle();
            postMessage('held');
            onmessage = () => { h.close(); postMessage('closed'); };
          };`,
        ],
        { type: 'text/javascript' },
      ),
    ),
  );
  const said = () => new Promise((resolve) => (holder.onmessage = (e) => resolve(e.data)));
  let next = said();
  holder.postMessage({ dir });
  await next;
  const outcome = async (h) =>
    h.durable.then(
      () => 'durable',
      (e) => `${e.name}:${e.code}:${e.stage}:${e.dataDurable}`,
    );
  const second = await ckpt.save(2, { tensors: tensors(2) });
  const third = await ckpt.save(3, { tensors: tensors(3) });
  const results = { second: await outcome(second), third: await outcome(third) };
  next = said();
  holder.postMessage('close');
  await next;
  holder.terminate();
  let d = await navigator.storage.getDirectory();
  for (const p of dir.split('/')) d = await d.getDirectoryHandle(p);
  const names = [];
  for await (const [name] of d.entries()) names.push(name);
  results.temps = names.filter((n) => n.includes('.tmp.'));
  await (await ckpt.save(4, { tensors: tensors(4) })).durable.catch((e) => (results.fourth = `${e.code}`));
  await ckpt.close().catch((e) => (results.close = `${e.code}`));
  const again = new Checkpointer({ dir, lock: false });
  results.latest = (await again.loadLatest())?.step ?? null;
  return results;
};

/** A model of `mib` MiB (one dense kernel) on `backend`, trained one step between saves. */
async function bigModel(mib, backend) {
  if (backend === 'wasm') await useWasm();
  else await tf.setBackend(backend);
  const units = Math.round(Math.sqrt((mib * 1024 * 1024) / 4));
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [units], units, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
  return { m, x: tf.randomNormal([4, units], 0, 1, 'float32', 1) };
}

/** The bench (benches/browser.ts): per repetition, interleaved after one warm-up of each, a ckptio save (save()
 * from call to return, and to durable) and tfjs's own model.save to IndexedDB (call to resolve), with a training
 * step before each. Default options. */
window.ckptioTest.benchSaves = async ({ dir, mib, reps, backend = 'cpu' }) => {
  const { m, x } = await bigModel(mib, backend);
  const ckpt = new Checkpointer({ dir, keepLast: 2 });
  const out = { ckptioCall: [], ckptioDurable: [], tfjsSave: [], isolated: crossOriginIsolated, stats: null };
  for (let r = 0; r <= reps; r++) {
    await m.trainOnBatch(x, x);
    let t0 = performance.now();
    const h = await ckpt.save(r + 1, { tensors: modelState(m) });
    const call = performance.now() - t0;
    const d = (await h.durable).msToDurable;
    await m.trainOnBatch(x, x);
    t0 = performance.now();
    await m.save('indexeddb://ckptio-bench');
    const tfjs = performance.now() - t0;
    if (r === 0) continue;
    out.ckptioCall.push(call);
    out.ckptioDurable.push(d);
    out.tfjsSave.push(tfjs);
  }
  out.stats = { ...ckpt.store.stats };
  await ckpt.close();
  m.dispose();
  x.dispose();
  return out;
};

report({ ready: true });
