/** ckptio/browser in headless Chromium (test/browser/page.mjs, served with COOP/COEP by harness.ts): fitCheckpoint
 * on the origin private file system with the whole browser SIGKILLed mid-save, then a resume byte-identical to an
 * uninterrupted run; and checkpoints moving between the browser and Node unchanged. Skipped without Chromium or
 * playwright-core, unless CKPTIO_REQUIRE_CHROMIUM=1 (CI), where that fails. */
import '../../src/platform/node';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type * as tfType from '@tensorflow/tfjs';
import { Checkpointer } from '../../src/checkpoint/checkpointer';
import { readCheckpoint } from '../../src/format/file';
import { loadTf } from '../../src/tfjs/backend';
import { modelState } from '../../src/tfjs/model-state';
import { restoreModelState } from '../../src/tfjs/restore';
import { browserSkipReason, launch, Launched, serve, Served } from './harness';

const reason = browserSkipReason();
const skip = reason === null ? false : `skipped: ${reason}`;
if (skip) console.log(`browser tests ${skip}`);
test(
  'Chromium and playwright-core are present where CKPTIO_REQUIRE_CHROMIUM=1',
  { skip: process.env.CKPTIO_REQUIRE_CHROMIUM === '1' ? false : 'CKPTIO_REQUIRE_CHROMIUM is not set' },
  () => {
    assert.equal(skip, false, `CKPTIO_REQUIRE_CHROMIUM=1 but the browser tests would be ${skip}`);
  },
);

let site: Served;
const profiles: string[] = [];
before(async () => {
  if (!skip) site = await serve();
});
after(async () => {
  await site?.close();
  for (const p of profiles) fs.rmSync(p, { recursive: true, force: true });
});

function profile(): string {
  const p = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-chromium-'));
  profiles.push(p);
  return p;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
const call = <T>(b: Launched, fn: string, ...args: unknown[]): Promise<T> =>
  b.page.evaluate(([f, a]: [string, unknown[]]) => (globalThis as any).ckptioTest[f](...a), [fn, args]) as Promise<T>;

test(
  'fitCheckpoint in the browser: the browser SIGKILLed mid-save at random moments (10 rounds), then a resume byte-identical to an uninterrupted run',
  { skip, timeout: 600_000 },
  async () => {
    const full = await launch(profile(), site);
    const expected = await call<string[]>(full, 'train', { dir: 'runs/full' }).finally(() => full.close());

    const killedProfile = profile();
    let kills = 0;
    let temps = 0;
    let final: string[] | null = null;
    let lastDurable = 0;
    const delays: number[] = [];
    const resumedAt: number[] = [];
    let midSave = 0;
    const lost: string[] = [];
    for (let round = 0; round < 40 && final === null; round++) {
      const b = await launch(killedProfile, site);
      let killedAt: number | null = null;
      let inFlight = false;
      b.onEvent = (e) => {
        if (typeof e.started === 'number') {
          // Nothing acknowledged is lost: the run resumes at or after the last step reported durable before the kill.
          if (e.started < lastDurable) lost.push(`round ${round} resumed at step ${e.started}, but step ${lastDurable} was reported durable`);
          if (e.started > 0) resumedAt.push(e.started);
        }
        if (typeof e.warning === 'string' && e.warning.includes('stale temporary')) temps++;
        if (typeof e.durable === 'number') {
          lastDurable = Math.max(lastDurable, e.durable);
          inFlight = false;
        }
        // The batch's save was handed to the writer just before its batchEnd: a kill 0-25 ms later lands while it is
        // written, flushed or moved, or just after (a save takes about 10-30 ms here).
        if (e.batchEnd === true) {
          inFlight = true;
          if (kills < 10 && killedAt === null && e.step !== undefined && (e.step as number) > 2) {
            const delay = Math.floor(Math.random() * 25);
            killedAt = delay;
            setTimeout(() => {
              if (inFlight) midSave++;
              b.kill();
            }, delay);
          }
        }
      };
      const outcome = await call<string[]>(b, 'train', { dir: 'runs/killed', slowMs: 40 }).then(
        (hashes) => ({ hashes }),
        (err: Error) => ({ err }),
      );
      if ('hashes' in outcome && killedAt === null) {
        final = outcome.hashes;
        await b.close();
        break;
      }
      if (killedAt === null) await b.close(); // a failure without a kill: the browser must not outlive the test
      await b.exited;
      assert.ok(killedAt !== null, `round ${round} failed without a kill: ${'err' in outcome ? outcome.err.message : ''}`);
      kills++;
      delays.push(killedAt);
      const errors = b.events.filter((e) => e.pageError);
      assert.deepEqual(errors, [], 'no page errors before the kill');
    }
    console.log(
      `browser kill rounds: ${kills} kills, ${delays.join(' ')} ms after a batch's save was handed over; ${midSave} before that save was reported durable; ` +
        `${temps} restarts removed a temporary file of an interrupted save; resumed at steps ${resumedAt.join(' ')}`,
    );
    assert.deepEqual(lost, [], 'no acknowledged save was lost');
    assert.ok(kills >= 10, `at least 10 kills landed (${kills})`);
    assert.ok(midSave >= 1, 'at least one kill landed with a save in flight');
    assert.ok(temps >= 1, 'at least one kill interrupted a save while it was written (its temporary file was found at the restart)');
    assert.ok(final !== null, 'a last round ran to the end');
    assert.deepEqual(final, expected, 'after the kills, every weight and Adam slot is byte-identical to the uninterrupted run');
  },
);

function smallModel(tf: typeof tfType): tfType.Sequential {
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [256], units: 1024, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.dropout({ rate: 0.2, seed: 3 }));
  m.add(tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  m.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  return m;
}

async function hashes(model: tfType.LayersModel): Promise<string[]> {
  const h = (v: ArrayBufferView) =>
    createHash('sha256')
      .update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
      .digest('hex')
      .slice(0, 16);
  return [...model.weights.map((w) => h(w.read().dataSync())), ...(await model.optimizer.getWeights()).map((w) => h(w.tensor.dataSync()))];
}

test(
  'a checkpoint made in the browser loads and resumes in Node, and one made in Node resumes in the browser, unchanged',
  { skip, timeout: 180_000 },
  async () => {
    const { tf } = await loadTf('cpu');
    const b = await launch(profile(), site);
    try {
      // Browser -> Node: the file as the browser wrote it verifies in Node and restores the same state.
      const inBrowser = await call<string[]>(b, 'train', { dir: 'runs/there', epochs: 2 });
      const names = await call<string[]>(b, 'list', 'runs/there');
      const newest = names
        .filter((n) => /^ckpt-\d{10}\.safetensors$/.test(n))
        .sort()
        .at(-1)!;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-from-browser-'));
      profiles.push(dir);
      fs.writeFileSync(path.join(dir, newest), Buffer.from(await call<string>(b, 'readFile', `runs/there/${newest}`), 'base64'));
      const r = await readCheckpoint(path.join(dir, newest));
      assert.equal(r.verified, true);
      const model = smallModel(tf);
      const loaded = await new Checkpointer({ dir, lock: false }).loadLatest();
      assert.equal(loaded?.step, 16, 'two epochs of 8 batches');
      restoreModelState(model, model.optimizer, loaded!);
      assert.deepEqual(await hashes(model), inBrowser, 'Node restores the browser-trained weights and Adam slots byte for byte');

      // Node -> browser: Node trains further and saves; the browser restores exactly that.
      const x = tf.randomNormal([8, 256], 0, 1, 'float32', 7);
      const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32'), 4).toFloat();
      for (let i = 0; i < 3; i++) await model.trainOnBatch(x, y);
      const nodeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-to-browser-'));
      profiles.push(nodeDir);
      const ckpt = new Checkpointer({ dir: nodeDir });
      await (
        await ckpt.save(19, { tensors: modelState(model) })
      ).durable;
      await ckpt.close();
      const file = 'ckpt-0000000019.safetensors';
      await call(b, 'writeFiles', 'runs/here', { [file]: fs.readFileSync(path.join(nodeDir, file)).toString('base64') });
      const back = await call<{ step: number; hashes: string[] }>(b, 'restoreFrom', 'runs/here');
      assert.equal(back.step, 19);
      assert.deepEqual(back.hashes, await hashes(model), 'the browser restores the Node-trained weights and Adam slots byte for byte');
      const browserFile = Buffer.from(await call<string>(b, 'readFile', `runs/here/${file}`), 'base64');
      assert.ok(browserFile.equals(fs.readFileSync(path.join(nodeDir, file))), 'the file is unchanged in the browser');
    } finally {
      await b.close();
    }
  },
);

test(
  'in the browser every refusal is a CheckpointError with its code: bad dir, remote, sharded, a second writer, lz4',
  { skip, timeout: 180_000 },
  async () => {
    const b = await launch(profile(), site);
    try {
      const codes = await call<Record<string, unknown>>(b, 'errors');
      assert.deepEqual(codes, {
        dotdot: 'CheckpointError:ECKPT_ARGS',
        empty: 'CheckpointError:ECKPT_ARGS',
        remote: 'CheckpointError:ECKPT_ARGS',
        sharded: 'CheckpointError:ECKPT_ARGS',
        locked: 'CheckpointError:ECKPT_LOCKED',
        lz4: 'CheckpointError:ECKPT_ARGS',
        afterClose: 1,
      });
    } finally {
      await b.close();
    }
  },
);

test(
  'threaded wasm in the page: the writer reads the shared heap in place (nothing copied), and the file holds the saved bytes though the model was disposed and its memory overwritten before durable',
  { skip, timeout: 180_000 },
  async () => {
    const b = await launch(profile(), site);
    try {
      const r = await call<{ expected: string[]; got: string[]; stats: { copiedBytes: number; inPlaceBytes: number }; shared: boolean }>(b, 'wasmInPlace', {
        dir: 'runs/wasm',
      });
      assert.equal(r.shared, true, 'the threaded build runs, its heap a SharedArrayBuffer');
      assert.equal(r.stats.copiedBytes, 0, 'no tensor byte copied on the page');
      assert.equal(r.stats.inPlaceBytes, (512 * 512 + 512) * 4, 'the kernel and bias read in place');
      assert.deepEqual(r.got, r.expected, 'the file holds the bytes of the save');
    } finally {
      await b.close();
    }
  },
);

test('a page that is not cross-origin isolated (no SharedArrayBuffer) saves by transfer and resumes byte-identically', { skip, timeout: 180_000 }, async () => {
  const isolatedRun = await launch(profile(), site);
  const expected = await call<string[]>(isolatedRun, 'train', { dir: 'runs/t', epochs: 2 }).finally(() => isolatedRun.close());
  const plainProfile = profile();
  const first = await launch(plainProfile, site, { isolated: false });
  await call<string[]>(first, 'train', { dir: 'runs/t', epochs: 1 }).finally(() => first.close());
  assert.deepEqual(
    first.events.find((e) => 'isolated' in e),
    { isolated: false },
    'the page is not cross-origin isolated',
  );
  assert.ok((first.events.find((e) => 'done' in e)!.copiedBytes as number) > 0, 'the saves were copied and transferred');
  const second = await launch(plainProfile, site, { isolated: false });
  const resumed = await call<string[]>(second, 'train', { dir: 'runs/t', epochs: 2 }).finally(() => second.close());
  assert.equal(second.events.find((e) => 'started' in e)!.started, 8, 'resumed after the first epoch');
  assert.deepEqual(resumed, expected, 'the same state as an isolated page training the two epochs at once');
});

test(
  'a failed move (another worker holds the pointer open): that save rejects after its data, the one queued behind it is aborted, no temporary is left, and saving works again',
  { skip, timeout: 180_000 },
  async () => {
    const b = await launch(profile(), site);
    try {
      const r = await call<Record<string, unknown>>(b, 'moveFailure', { dir: 'runs/busy' });
      assert.deepEqual(r, {
        second: 'CheckpointError:EBUSY:files:true',
        third: 'CheckpointError:ECKPT_ABORTED:planned:false',
        temps: [],
        close: 'EBUSY', // close() rethrows the run's first failed save, as in Node
        latest: 4,
      });
    } finally {
      await b.close();
    }
  },
);
