/** The checkpoint's life after the save: retention policies and their invariants, the run manifest and its
 * recovery, and the run lock. */
import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError } from '../src/binding/errors';
import { native, testing } from '../src/binding/native';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { readPointer } from '../src/checkpoint/directory';
import { MANIFEST_NAME, checkpointName, parseManifest } from '../src/checkpoint/manifest';
import { decideRetention, deleteOlderThan, keepBest, keepEvery, keepLast, keepTagged, keepWithin, RetentionEntry } from '../src/checkpoint/retention';
import { readCheckpoint, TensorEntry } from '../src/format/file';
import { isRoot, listDir, pattern, tempDir } from './helpers';

const { faults } = testing();

const quiet = { onWarning: () => {} };
const t = (step: number): Record<string, TensorEntry> => ({ w: { dtype: 'float32', shape: [1024], data: pattern(1024, step + 1) } });
const DAY = 86_400_000;
const now = Date.UTC(2026, 11, 1);
const e = (step: number, daysAgo: number, metrics: Record<string, number> = {}, tags: string[] = []): RetentionEntry => ({
  step,
  time: now - daysAgo * DAY,
  metrics,
  tags,
});

test('policies compose; the newest, pointer targets and tagged checkpoints are always kept, with their reasons', () => {
  const entries = [
    e(10, 40, { acc: 0.5, f1: 0.9 }),
    e(20, 35, { acc: 0.9, f1: 0.1 }, ['v1_baseline']),
    e(30, 8, { acc: 0.7, f1: 0.2 }),
    e(40, 3, { acc: 0.6, f1: 0.3 }),
    e(50, 1, { acc: 0.1, f1: 0.4 }),
    e(60, 0, {}),
  ];
  const d = decideRetention(
    entries,
    [keepLast(2), keepBest({ metric: 'acc', mode: 'max' }), keepBest({ metric: 'f1', mode: 'max', k: 2 }), keepEvery(30), deleteOlderThan(30)],
    now,
  );
  assert.deepEqual(d.pointers, { latest: 60, 'best-acc': 20, 'best-f1': 10 });
  assert.deepEqual(d.remove, [40], 'only 40 is kept by nothing');
  assert.ok(d.kept.get(10)!.includes('pointer best-f1'), 'older than 30 days but a pointer names it');
  assert.ok(!d.kept.get(10)!.includes('best f1 #1'), 'its policy reason expired');
  assert.deepEqual(d.kept.get(20), ['pointer best-acc', 'tag v1_baseline']);
  assert.deepEqual(d.kept.get(30), ['every 30 steps']);
  assert.deepEqual(d.kept.get(50), ['last 2', 'best f1 #2']);
  assert.deepEqual(d.kept.get(60), ['last 2', 'every 30 steps', 'newest', 'pointer latest']);
  // keepWithin, keepTagged, min mode, ties go to the earlier step.
  const d2 = decideRetention(
    [e(1, 10, { loss: 0.3 }), e(2, 5, { loss: 0.2 }, ['x']), e(3, 1, { loss: 0.2 }), e(4, 0.5, { loss: 0.9 })],
    [keepWithin(2), keepTagged(), keepBest({ metric: 'loss', mode: 'min' })],
    now,
  );
  assert.deepEqual(d2.pointers['best-loss'], 2);
  assert.deepEqual(d2.remove, [1]);
  assert.deepEqual(d2.kept.get(2), ['tagged x', 'best loss #1', 'pointer best-loss', 'tag x']);
  for (const bad of [
    () => keepLast(0),
    () => keepBest({ metric: 'a b', mode: 'max' }),
    () => keepBest({ metric: 'a', mode: 'up' as 'max' }),
    () => keepEvery(1.5),
    () => keepWithin(-1),
    () => deleteOlderThan(NaN),
  ]) {
    assert.throws(bad, (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS');
  }
});

test('keep-best of two metrics holds across a restart, with its pointers; the manifest records why each is kept', async () => {
  const dir = tempDir();
  const retention = [keepBest({ metric: 'acc', mode: 'max' }), keepBest({ metric: 'f1', mode: 'max' })];
  const metrics: Record<number, Record<string, number>> = {
    1: { acc: 0.9, f1: 0.1 },
    2: { acc: 0.2, f1: 0.8 },
    3: { acc: 0.3, f1: 0.2 },
    4: { acc: 0.4, f1: 0.3 },
    5: { acc: 0.5, f1: 0.4 },
    6: { acc: 0.1, f1: 0.5 },
  };
  let ckpt = new Checkpointer({ dir, keepLast: 1, retention, ...quiet });
  for (const s of [1, 2, 3]) await (await ckpt.save(s, { tensors: t(s), metrics: metrics[s] })).durable;
  await ckpt.close();
  ckpt = new Checkpointer({ dir, keepLast: 1, retention, ...quiet }); // a new process would do the same: state from the manifest
  for (const s of [4, 5, 6]) await (await ckpt.save(s, { tensors: t(s), metrics: metrics[s] })).durable;
  await ckpt.close();
  assert.deepEqual(
    listDir(dir).filter((f) => f.startsWith('ckpt-')),
    [checkpointName(1), checkpointName(2), checkpointName(6)],
  );
  assert.equal((await readPointer(dir, 'best-acc'))!.step, 1);
  assert.equal((await readPointer(dir, 'best-f1'))!.step, 2);
  assert.equal((await readPointer(dir, 'latest'))!.step, 6);
  const m = parseManifest(fs.readFileSync(path.join(dir, MANIFEST_NAME)), MANIFEST_NAME);
  assert.deepEqual(
    m.entries.map((x) => [x.step, x.keptBy]),
    [
      [1, ['best acc #1', 'pointer best-acc']],
      [2, ['best f1 #1', 'pointer best-f1']],
      [6, ['last 1', 'newest', 'pointer latest']],
    ],
  );
  assert.deepEqual(m.entries[2]!.parent, { step: 5, contentId: m.entries[2]!.parent!.contentId }, 'parent: the previous checkpoint of the run');
  assert.match(m.entries[2]!.contentId!, /^[0-9a-f]{16}$/);
  assert.notEqual(m.entries[0]!.contentId, m.entries[1]!.contentId);
});

test('a lost or corrupt manifest is rebuilt from the headers (metrics, times, content ids, tags) without reading tensor data', async () => {
  const dir = tempDir();
  let ckpt = new Checkpointer({ dir, keepLast: 5, retention: [keepBest({ metric: 'acc', mode: 'max' })], ...quiet });
  for (const s of [1, 2, 3]) await (await ckpt.save(s, { tensors: t(s), metrics: { acc: s / 10 } })).durable;
  await ckpt.tag(2, 'v1_baseline');
  await ckpt.close();
  const original = parseManifest(fs.readFileSync(path.join(dir, MANIFEST_NAME)), MANIFEST_NAME);
  for (const damage of ['delete', 'corrupt', 'truncate']) {
    if (damage === 'delete') fs.rmSync(path.join(dir, MANIFEST_NAME));
    if (damage === 'corrupt') fs.writeFileSync(path.join(dir, MANIFEST_NAME), '{"version":1,"entries":[{"step":"x"}],"pointers":{}}');
    if (damage === 'truncate') fs.truncateSync(path.join(dir, MANIFEST_NAME), 20);
    const warnings: string[] = [];
    ckpt = new Checkpointer({ dir, keepLast: 5, retention: [keepBest({ metric: 'acc', mode: 'max' })], onWarning: (w) => warnings.push(w) });
    const rebuilt = await ckpt.manifest();
    assert.deepEqual(
      rebuilt.map((x) => ({ step: x.step, time: x.time, metrics: x.metrics, contentId: x.contentId, tags: x.tags, parent: x.parent })),
      original.entries.map((x) => ({ step: x.step, time: x.time, metrics: x.metrics, contentId: x.contentId, tags: x.tags, parent: x.parent })),
      `${damage}: same record`,
    );
    if (damage !== 'delete')
      assert.ok(
        warnings.some((w) => w.includes('rebuilt')),
        `${damage}: warned`,
      );
    await (
      await ckpt.save(4, { tensors: t(4), metrics: { acc: 0.05 } })
    ).durable; // the next save writes a good manifest again
    await ckpt.close();
    fs.rmSync(path.join(dir, checkpointName(4)));
  }
  // A checkpoint the manifest lacks (a crash between the data file and the manifest) is adopted.
  fs.writeFileSync(path.join(dir, MANIFEST_NAME), Buffer.from(JSON.stringify({ version: 1, entries: [], pointers: {} })));
  ckpt = new Checkpointer({ dir, lock: false, ...quiet });
  await ckpt.close();
  const adopted = await new Checkpointer({ dir, ...quiet });
  assert.deepEqual(
    (await adopted.manifest()).map((x) => x.step),
    [1, 2, 3],
  );
  await adopted.close();
});

function readBytes(): number {
  return Number(/read_bytes: (\d+)/.exec(fs.readFileSync('/proc/self/io', 'utf8'))![1]);
}

test(
  'readHeader reads no tensor data: with the page cache dropped, a header scan of a 64 MiB checkpoint reads a few pages',
  { skip: !isRoot() && 'needs root to drop the page cache' },
  async () => {
    const dir = tempDir();
    const big = pattern(16 << 20, 7);
    const ckpt = new Checkpointer({ dir, ...quiet });
    await (
      await ckpt.save(1, { tensors: { big: { dtype: 'float32', shape: [big.length], data: big } } })
    ).durable;
    await ckpt.close();
    const file = path.join(dir, checkpointName(1));
    fs.writeFileSync('/proc/sys/vm/drop_caches', '1');
    let before = readBytes();
    const h = await native.readHeader(file);
    const headerRead = readBytes() - before;
    assert.equal(h.tensors[0]!.bytes, big.byteLength);
    assert.match(h.contentId!, /^[0-9a-f]{16}$/);
    fs.writeFileSync('/proc/sys/vm/drop_caches', '1');
    before = readBytes();
    await readCheckpoint(file);
    const fullRead = readBytes() - before;
    assert.ok(fullRead > big.byteLength / 2, `a verified read fetches the file (${fullRead})`);
    assert.ok(headerRead < 64 << 10, `the header scan fetched ${headerRead} bytes`);
  },
);

function lockHolderChild(dir: string): Promise<{ pid: number; kill: () => Promise<void>; exited: Promise<number | null> }> {
  const code = `const { Checkpointer } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'checkpoint', 'checkpointer.js'))});
    const c = new Checkpointer({ dir: ${JSON.stringify(dir)}, onWarning: () => {} });
    c.manifest().then(() => { process.stdout.write('locked\\n'); setInterval(() => {}, 1000); }, (e) => { process.stdout.write('failed ' + e.code + '\\n'); process.exit(3); });`;
  const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => p.on('exit', (c) => resolve(c)));
  return new Promise((resolve, reject) => {
    p.stdout.on('data', (d: Buffer) => {
      if (d.toString().startsWith('locked'))
        resolve({
          pid: p.pid!,
          exited,
          kill: async () => {
            p.kill('SIGKILL');
            await exited;
          },
        });
      else reject(new Error(d.toString()));
    });
  });
}

test('one writer per run directory: a second Checkpointer is refused with ECKPT_LOCKED naming the holder, the first is unaffected; a killed holder is taken over', async () => {
  const dir = tempDir();
  const first = new Checkpointer({ dir, ...quiet });
  await (
    await first.save(1, { tensors: t(1) })
  ).durable;
  const second = new Checkpointer({ dir, ...quiet });
  await assert.rejects(
    second.save(2, { tensors: t(2) }),
    (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_LOCKED' && err.message.includes(`pid ${process.pid}`),
  );
  await assert.rejects(second.loadLatest(), (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_LOCKED');
  const reader = new Checkpointer({ dir, lock: false, ...quiet });
  assert.equal((await reader.loadLatest())!.step, 1, 'read-only use works while the lock is held');
  await (
    await first.save(2, { tensors: t(2) })
  ).durable;
  await first.close();
  const third = new Checkpointer({ dir, ...quiet }); // released on close
  await (
    await third.save(3, { tensors: t(3) })
  ).durable;
  await third.close();

  // Another process holds it; then it is killed (SIGKILL): the kernel drops the lock, the next writer takes over.
  const holder = await lockHolderChild(dir);
  const refused = new Checkpointer({ dir, ...quiet });
  await assert.rejects(
    refused.manifest(),
    (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_LOCKED' && err.message.includes(`pid ${holder.pid}`),
  );
  await holder.kill();
  const taker = new Checkpointer({ dir, ...quiet });
  await (
    await taker.save(4, { tensors: t(4) })
  ).durable;
  await taker.close();
  assert.deepEqual(
    (await new Checkpointer({ dir, lock: false }).manifest()).map((x) => x.step),
    [2, 3, 4],
    'read-only use reads the manifest',
  );
});

test('a directory that cannot be written fails at open, before any training step', { skip: !isRoot() && 'needs root to mount a read-only tmpfs' }, async () => {
  const dir = tempDir();
  const ro = path.join(dir, 'ro');
  fs.mkdirSync(ro);
  const { execFileSync } = await import('node:child_process');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'none', ro]);
  try {
    const ckpt = new Checkpointer({ dir: ro, ...quiet });
    await assert.rejects(ckpt.manifest(), (err: unknown) => err instanceof CheckpointError && (err.code === 'EROFS' || err.code === 'EACCES'));
  } finally {
    execFileSync('umount', [ro]);
  }
});

test('a crash at every I/O operation of a save that moves two best pointers and prunes leaves a consistent directory', async (tc) => {
  const dir = tempDir();
  const retention = [keepBest({ metric: 'acc', mode: 'max' }), keepBest({ metric: 'f1', mode: 'max' })];
  const metrics: Record<number, Record<string, number>> = {
    1: { acc: 0.9, f1: 0.1 },
    2: { acc: 0.2, f1: 0.2 },
    3: { acc: 0.3, f1: 0.3 },
    4: { acc: 0.95, f1: 0.9 },
  };
  const prepare = async () => {
    for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
    const c = new Checkpointer({ dir, keepLast: 1, retention, ...quiet });
    for (const s of [1, 2, 3]) {
      await (
        await c.save(s, { tensors: t(s), metrics: metrics[s] })
      ).durable;
      if (s === 2) await c.tag(2, 'v1');
    }
    await c.close();
  };
  const step4 = async (): Promise<boolean> => {
    const c = new Checkpointer({ dir, keepLast: 1, retention, ...quiet });
    try {
      await (
        await c.save(4, { tensors: t(4), metrics: metrics[4] })
      ).durable;
      return true;
    } catch {
      return false;
    } finally {
      await c.close().catch(() => {});
    }
  };
  await prepare();
  faults.configure({});
  assert.equal(await step4(), true);
  const total = faults.stats().total;
  faults.disable();
  // After the save: 4 is newest and best on both metrics, 2 is tagged; 1 and 3 go.
  assert.deepEqual(
    listDir(dir).filter((f) => f.startsWith('ckpt-')),
    [checkpointName(2), checkpointName(4)],
  );
  const states = new Map<string, number>();
  for (let k = 1; k <= total; k++) {
    await prepare();
    faults.configure({ crashAfter: k });
    const acked = await step4();
    faults.disable();
    const at = `crash after op ${k}/${total}`;
    const valid = new Set<number>();
    for (const name of fs.readdirSync(dir)) {
      const s = /^ckpt-(\d+)\.safetensors$/.exec(name);
      if (
        s &&
        (await readCheckpoint(path.join(dir, name)).then(
          () => true,
          () => false,
        ))
      )
        valid.add(Number(s[1]));
    }
    assert.ok(valid.has(2), `${at}: the tagged checkpoint is gone`);
    assert.ok(valid.has(3) || valid.has(4), `${at}: no newest valid checkpoint`);
    for (const name of ['latest', 'best-acc', 'best-f1', 'tag.v1']) {
      const p = await readPointer(dir, name);
      assert.ok(p && valid.has(p.step), `${at}: ${name} is missing or names a missing file`);
      if (acked && name !== 'tag.v1') assert.equal(p.step, 4, `${at}: acknowledged, ${name} still at ${p.step}`);
    }
    const reopened = new Checkpointer({ dir, lock: false, ...quiet });
    assert.deepEqual(
      (await reopened.manifest()).map((x) => x.step),
      [...valid].sort(),
      `${at}: the reopened record matches the files`,
    );
    const key = [...valid].sort().join(',');
    states.set(key, (states.get(key) ?? 0) + 1);
  }
  tc.diagnostic(`${total} crash points; checkpoint sets: ${[...states].map(([s, n]) => `${s} (${n})`).join('; ')}`);
  assert.ok(states.size >= 3, 'the crash points reach before the save, before the prune and after it');
});

test('dedup: a frozen layer is stored once and by reference after; retention keeps the file holding it; loads are whole and verified', async () => {
  const { loadTf } = await import('../src/tfjs/backend');
  const { modelState } = await import('../src/tfjs/model-state');
  const { restoreModelState } = await import('../src/tfjs/restore');
  const { tf } = await loadTf('cpu');
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [64], units: 256, trainable: false, name: 'frozen' }), tf.layers.dense({ units: 4, name: 'head' })],
  });
  const optimizer = tf.train.adam(0.01);
  const x = tf.randomNormal([16, 64], 0, 1, 'float32', 3);
  const y = tf.randomNormal([16, 4], 0, 1, 'float32', 4);
  // The frozen layer's variables are still tf-trainable: pass the LayersModel's trainable weights explicitly.
  const vars = model.trainableWeights.map((w) => w.read() as never);
  const stepOnce = () => optimizer.minimize(() => tf.losses.meanSquaredError(y, model.apply(x) as never) as never, false, vars);
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 2, dedup: true, ...quiet });
  const infos = [];
  for (let s = 1; s <= 4; s++) {
    stepOnce();
    infos.push((await (await ckpt.save(s, { tensors: modelState(model, optimizer, { tf }) })).durable)!);
  }
  await ckpt.close();
  const frozenBytes = (64 * 256 + 256) * 4;
  assert.deepEqual(
    infos.map((i) => i.dedupedBytes),
    [0, frozenBytes, frozenBytes, frozenBytes],
    'bytes saved reported per save',
  );
  assert.ok(infos[1]!.bytes < infos[0]!.bytes - frozenBytes + 4096, 'the second file is smaller by the frozen layer');
  // keepLast 2 keeps 3 and 4, and 1, which holds the frozen layer both refer to; 2 goes.
  assert.deepEqual(
    listDir(dir).filter((f) => f.startsWith('ckpt-')),
    [checkpointName(1), checkpointName(3), checkpointName(4)],
  );
  const m = parseManifest(fs.readFileSync(path.join(dir, MANIFEST_NAME)), MANIFEST_NAME);
  assert.deepEqual(m.entries.find((e) => e.step === 1)!.keptBy.sort(), ['referenced by step 3', 'referenced by step 4']);
  // A load is whole and byte-exact, and restores into a fresh model.
  const reader = new Checkpointer({ dir, lock: false, ...quiet });
  const loaded = (await reader.loadLatest())!;
  assert.equal(loaded.step, 4);
  assert.ok(loaded.tensors['model/frozen/kernel'], 'the referenced tensor is back');
  assert.equal(loaded.metadata['ckptio.refs'], undefined);
  const fresh = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [64], units: 256, trainable: false, name: 'frozen' }), tf.layers.dense({ units: 4, name: 'head' })],
  });
  restoreModelState(fresh, tf.train.adam(0.01), loaded, { tf });
  for (const [a, b] of fresh.getWeights().map((w, i) => [w, model.getWeights()[i]!])) {
    assert.ok(Buffer.from((a!.dataSync() as Float32Array).buffer).equals(Buffer.from((b!.dataSync() as Float32Array).buffer)));
  }
  // Across a restart (and a lost manifest) the reference still protects the holder.
  fs.rmSync(path.join(dir, MANIFEST_NAME));
  const again = new Checkpointer({ dir, keepLast: 1, dedup: true, ...quiet });
  const r = await again.prune();
  await again.close();
  assert.deepEqual(r.removed, [checkpointName(3)], 'the holder (1) stays for 4; 3 goes');
  // A holder that is damaged makes the load of a checkpoint referring to it fail (verified), never silently partial.
  const holder = path.join(dir, checkpointName(1));
  const bytes = fs.readFileSync(holder);
  bytes[bytes.length - 8] ^= 0xff;
  fs.writeFileSync(holder, bytes);
  await assert.rejects(
    new Checkpointer({ dir, lock: false, ...quiet }).load(path.join(dir, checkpointName(4))),
    (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_CHECKSUM',
  );
  // A reference that names a path outside the run is refused.
  const { parseRefs } = await import('../src/checkpoint/dedup');
  assert.throws(
    () => parseRefs({ 'ckptio.refs': JSON.stringify({ w: { file: '../x/ckpt-0000000001.safetensors', dtype: 'float32', shape: [1] } }) }, 'f'),
    (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_FORMAT',
  );
});

test('review regressions: tag racing saves, pointers of other runs, a missing old file, a save below the newest, close with a save waiting, the lock through a symlink, steps past 10 digits', async () => {
  // tag() while saves are queued: the tag file names a file that stays, and the record has it.
  let dir = tempDir();
  let c = new Checkpointer({ dir, keepLast: 1, ...quiet });
  await (
    await c.save(10, { tensors: t(10) })
  ).durable;
  const tagged = c.tag(10, 'v1');
  const later = [await c.save(11, { tensors: t(11) }), await c.save(12, { tensors: t(12) })];
  await tagged;
  await Promise.all(later.map((h) => h.durable));
  assert.equal((await readPointer(dir, 'tag.v1'))!.file, checkpointName(10));
  assert.ok(fs.existsSync(path.join(dir, checkpointName(10))), 'the tagged checkpoint stays');
  assert.deepEqual((await c.manifest()).find((e) => e.step === 10)!.tags, ['v1']);
  await c.close();

  // A pointer an earlier run maintained (best-val_acc) keeps its checkpoint when this run does not maintain it.
  dir = tempDir();
  c = new Checkpointer({ dir, keepLast: 1, retention: [keepBest({ metric: 'val_acc', mode: 'max' })], ...quiet });
  await (
    await c.save(1, { tensors: t(1), metrics: { val_acc: 0.9 } })
  ).durable;
  await (
    await c.save(2, { tensors: t(2), metrics: { val_acc: 0.1 } })
  ).durable;
  await c.close();
  c = new Checkpointer({ dir, keepLast: 1, ...quiet });
  const d3 = (await (await c.save(3, { tensors: t(3) })).durable)!;
  assert.deepEqual(d3.pruned, [checkpointName(2)], 'best-val_acc still names step 1, so it stays');
  assert.ok(fs.existsSync(path.join(dir, checkpointName(1))));

  // A checkpoint removed by hand does not make every later save fail (the unlink is already done).
  fs.rmSync(path.join(dir, checkpointName(3)));
  await (
    await c.save(4, { tensors: t(4) })
  ).durable;
  await (
    await c.save(5, { tensors: t(5) })
  ).durable;
  assert.deepEqual(
    listDir(dir).filter((f) => f.startsWith('ckpt-')),
    [checkpointName(1), checkpointName(5)],
  );

  // A save below the newest step is not removed by its own job.
  const low = (await (await c.save(2, { tensors: t(2) })).durable)!;
  assert.deepEqual(low.pruned, []);
  assert.ok(fs.existsSync(path.join(dir, checkpointName(2))));
  assert.equal((await readPointer(dir, 'latest'))!.step, 5, 'latest stays at the newest step');

  // Steps are 10-digit file names.
  await assert.rejects(c.save(10_000_000_000, { tensors: t(1) }), (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS');
  await c.close();

  // close() with a save waiting for room: the lock is released only after that save is durable.
  dir = tempDir();
  c = new Checkpointer({ dir, maxInflight: 1, ...quiet });
  faults.configure({ delayMs: { fdatasync: 150 } });
  try {
    const first = await c.save(1, { tensors: t(1) });
    const second = c.save(2, { tensors: t(2) }); // waits for room
    const closing = c.close();
    const order: string[] = [];
    void first.durable.then(() => order.push('1 durable'));
    void second.then((h) => h.durable).then(() => order.push('2 durable'));
    await closing;
    order.push('closed');
    assert.deepEqual(order, ['1 durable', '2 durable', 'closed']);
  } finally {
    faults.disable();
  }

  // The lock file is never followed through a symlink (an unpacked archive could point it anywhere).
  dir = tempDir();
  const victim = path.join(dir, 'victim.txt');
  fs.writeFileSync(victim, 'keep me');
  fs.mkdirSync(path.join(dir, 'run'));
  fs.symlinkSync(victim, path.join(dir, 'run', 'ckptio.lock'));
  c = new Checkpointer({ dir: path.join(dir, 'run'), ...quiet });
  await assert.rejects(c.manifest(), (err: unknown) => err instanceof CheckpointError && err.code === 'ELOOP');
  assert.equal(fs.readFileSync(victim, 'utf8'), 'keep me');

  // A tag that is a directory or a FIFO is a warning, not a failure or a hang.
  dir = tempDir();
  fs.mkdirSync(path.join(dir, 'tag.x'));
  const { execFileSync } = await import('node:child_process');
  execFileSync('mkfifo', [path.join(dir, 'tag.y')]);
  const warnings: string[] = [];
  c = new Checkpointer({ dir, onWarning: (w) => warnings.push(w) });
  await (
    await c.save(1, { tensors: t(1) })
  ).durable;
  await c.close();
  assert.equal(warnings.filter((w) => w.includes('not a readable pointer')).length, 2);
});

test('dedup: a step that others reference cannot be saved again (its bytes would change under them)', async () => {
  const { loadTf } = await import('../src/tfjs/backend');
  const { modelState } = await import('../src/tfjs/model-state');
  const { tf } = await loadTf('cpu');
  const frozen = tf.variable(tf.ones([4]), false, 'frozen_dedup_replace');
  const moving = tf.variable(tf.zeros([4]), true, 'moving_dedup_replace');
  const dir = tempDir();
  const c = new Checkpointer({ dir, dedup: true, ...quiet });
  const save = async (s: number) => (await c.save(s, { tensors: modelState(null, null, { tf, variables: { frozen, moving } }) })).durable;
  await save(10);
  moving.assign(tf.ones([4]));
  assert.equal((await save(11))!.dedupedBytes, 16);
  await assert.rejects(save(10), (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS' && err.message.includes('11'));
  await c.close().catch(() => {});
  frozen.dispose();
  moving.dispose();
});
