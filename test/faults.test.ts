import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../src/platform/node';
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import * as path from 'node:path';
import { afterEach, test } from 'node:test';
import { Checkpointer, CheckpointError, readCheckpoint, writeCheckpoint, TensorEntry } from '../src';
import { readPointer } from '../src/checkpoint/directory';
import { FaultOp, testing } from '../src/binding/native';
import { bytesOf, listDir, pattern, tempDir } from './helpers';

const { faults } = testing();

afterEach(() => faults.disable());

function checkpoint(tag: string, n: number): Record<string, TensorEntry> {
  return {
    weight: { dtype: 'float32', shape: [n], data: pattern(n, tag.length * 7919 + n) },
    tag: { dtype: 'uint8', shape: [tag.length], data: new Uint8Array(Buffer.from(tag)) },
  };
}

async function tagOf(file: string): Promise<string> {
  const r = await readCheckpoint(file);
  return Buffer.from(bytesOf(r.tensors.tag!.data)).toString();
}

const ops: FaultOp[] = ['open', 'openat', 'pwrite', 'fallocate', 'fdatasync', 'close', 'rename', 'fsync'];
const errnos = ['EIO', 'ENOSPC', 'EDQUOT', 'EACCES'] as const;

for (const direct of ['on', 'off'] as const) {
  test(`each I/O step failing rejects with its code and leaves the previous checkpoint (direct ${direct})`, async () => {
    for (const op of ops) {
      for (const name of errnos) {
        const dir = tempDir();
        const file = path.join(dir, 'model.safetensors');
        await writeCheckpoint(file, checkpoint('old', 5000), { direct });
        faults.configure({ failures: [{ op, nth: 1, errno: constants.errno[name] }] });
        await assert.rejects(writeCheckpoint(file, checkpoint('new!', 7000), { direct }), (err: unknown) => {
          assert.ok(err instanceof CheckpointError, String(err));
          assert.equal(err.code, name, `${op}: ${err.message}`);
          assert.equal(err.errno, constants.errno[name]);
          assert.ok(err.syscall && err.path, `${op}: syscall and path present`);
          return true;
        });
        assert.equal(faults.stats().injected, 1, `${op} was reached`);
        faults.disable();
        assert.deepEqual(listDir(dir), ['model.safetensors'], `${op}/${name}: no tmp file left`);
        assert.equal(await tagOf(file), 'old', `${op}/${name}: previous checkpoint untouched`);
        await writeCheckpoint(file, checkpoint('next', 3000), { direct });
        assert.equal(await tagOf(file), 'next', `${op}/${name}: the next write succeeds`);
      }
    }
  });
}

test('a failed fdatasync is final: the file is never synced again and taken as good', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'm');
  faults.configure({ failures: [{ op: 'fdatasync', nth: 1, errno: constants.errno.EIO }] });
  await assert.rejects(writeCheckpoint(file, checkpoint('x', 100)), { code: 'EIO', syscall: 'fdatasync' });
  const stats = faults.stats();
  assert.equal(stats.byOp.fdatasync, 1);
  assert.equal(stats.byOp.rename ?? 0, 0);
  faults.disable();
  assert.deepEqual(listDir(dir), []);
});

test('a write the disk refuses partway (ENOSPC on the 3rd pwrite) leaves nothing half-written', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'm');
  await writeCheckpoint(file, checkpoint('old', 100));
  faults.configure({ failures: [{ op: 'pwrite', nth: 3, errno: constants.errno.ENOSPC }] });
  await assert.rejects(writeCheckpoint(file, checkpoint('new', 5_000_000), { direct: 'on' }), { code: 'ENOSPC', syscall: 'pwrite' });
  faults.disable();
  assert.deepEqual(listDir(dir), ['m']);
  assert.equal(await tagOf(file), 'old');
});

for (const torn of [false, true]) {
  for (const direct of ['on', 'off'] as const) {
    test(`crash at every I/O boundary of an overwrite leaves the old or the new checkpoint (torn ${torn}, direct ${direct})`, async () => {
      const dir = tempDir();
      const file = path.join(dir, 'model.safetensors');
      const oldCk = checkpoint('old', 3_000_000); // 12 MB: several 4 MiB blocks
      const newCk = checkpoint('new', 2_500_000);
      await writeCheckpoint(file, oldCk, { direct });
      faults.configure({});
      await writeCheckpoint(file, newCk, { direct });
      const total = faults.stats().total;
      faults.disable();
      assert.ok(total >= 8, `a write has at least 8 I/O operations (saw ${total})`);
      const seen = { old: 0, new: 0 };
      for (let k = 1; k <= total; k++) {
        await writeCheckpoint(file, oldCk, { direct });
        faults.configure({ crashAfter: k, torn });
        let resolved = false;
        try {
          await writeCheckpoint(file, newCk, { direct });
          resolved = true;
        } catch (err) {
          assert.ok(err instanceof CheckpointError);
        }
        assert.equal(faults.stats().crashed, true, `crash ${k} happened`);
        faults.disable();
        const tag = await tagOf(file); // validates and verifies checksums
        assert.ok(tag === 'old' || tag === 'new', `crash after op ${k}: got ${tag}`);
        if (resolved) assert.equal(tag, 'new', `crash after op ${k}: an acknowledged write was lost`);
        seen[tag as 'old' | 'new']++;
      }
      assert.ok(seen.old > 0 && seen.new > 0, `both outcomes occur across crash points: ${JSON.stringify(seen)}`);
    });
  }
}

test('slow disk: the fault twin delays a chosen operation', async () => {
  const dir = tempDir();
  faults.configure({ delayMs: { fdatasync: 150 } });
  const t0 = process.hrtime.bigint();
  await writeCheckpoint(path.join(dir, 'm'), checkpoint('x', 10));
  assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 >= 140);
});

test("the temporary name a save writes under matches the addon's tempNamePattern (the one start-up's sweep uses)", async () => {
  const dir = tempDir();
  faults.configure({ delayMs: { fdatasync: 200 } }); // hold the save between its writes and its rename
  const saving = writeCheckpoint(path.join(dir, 'ckpt-3.safetensors'), checkpoint('t', 10));
  let seen: string[] = [];
  for (let i = 0; i < 200 && seen.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 5));
    seen = listDir(dir);
  }
  await saving;
  assert.equal(seen.length, 1, `one temporary file while the save ran: ${seen.join(', ')}`);
  const m = new RegExp(testing().tempNamePattern).exec(seen[0]!);
  assert.ok(m && seen[0]!.startsWith('ckpt-3.safetensors.tmp.'), `${seen[0]} matches ${testing().tempNamePattern}`);
  assert.equal(Number(m[1]), process.pid);
  assert.deepEqual(listDir(dir), ['ckpt-3.safetensors']);
});

test('a full writer queue rejects with ECKPT_BUSY instead of blocking the JS thread, and leaves no file', async () => {
  const dir = tempDir();
  faults.configure({ delayMs: { fdatasync: 20 } });
  const results = await Promise.allSettled(Array.from({ length: 70 }, (_, i) => writeCheckpoint(path.join(dir, `f${i}`), checkpoint('q', 10))));
  faults.disable();
  const busy = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
  assert.ok(busy.length >= 5, `at least 5 of 70 rejected (queue of 64 + 1 running): ${busy.length}`);
  for (const i of busy) {
    const reason = (results[i] as PromiseRejectedResult).reason as CheckpointError;
    assert.equal(reason.code, 'ECKPT_BUSY');
    assert.match(reason.message, /writer queue is full/);
  }
  const written = listDir(dir);
  assert.equal(written.length, 70 - busy.length);
  for (const i of busy) assert.ok(!written.includes(`f${i}`));
});

test('reads map the file read-only while it is checked; a failing mmap or mprotect is a coded error, and the mapping is given back', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'a.safetensors');
  await writeCheckpoint(file, checkpoint('r', 1000));
  for (const [op, name] of [
    ['mmap', 'ENOMEM'],
    ['mprotect', 'EACCES'],
  ] as [FaultOp, keyof typeof constants.errno][]) {
    faults.configure({ failures: [{ op, nth: 1, errno: constants.errno[name] }] });
    await assert.rejects(readCheckpoint(file), (e: unknown) => e instanceof CheckpointError && e.code === name && e.syscall === op && e.path === file, op);
    const stats = faults.stats();
    assert.equal(stats.injected, 1, `${op} was reached`);
    if (op === 'mprotect') assert.equal(stats.byOp.munmap, 1, 'the mapping was unmapped after the failed mprotect');
    faults.disable();
  }
  const back = await readCheckpoint(file);
  assert.ok(bytesOf(back.tensors.weight!.data).equals(bytesOf(checkpoint('r', 1000).weight!.data)));
});

test("a save's small files commit together: when the last one's fdatasync fails, none is renamed (latest and best stay at the previous step)", async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 5, best: 'max', onWarning: () => {} });
  await (
    await ckpt.save(1, { tensors: checkpoint('one', 100), metric: 1 })
  ).durable;
  // Step 2's save tells how many fdatasyncs one save makes: the checkpoint's, then one per small file.
  faults.configure({});
  await (
    await ckpt.save(2, { tensors: checkpoint('two', 100), metric: 2 })
  ).durable;
  const perSave = faults.stats().byOp.fdatasync ?? 0;
  assert.ok(perSave >= 3, `a save fdatasyncs the checkpoint and its small files (latest, best, manifest): ${perSave}`);
  faults.configure({ failures: [{ op: 'fdatasync', nth: perSave, errno: constants.errno.EIO }] });
  const h = await ckpt.save(3, { tensors: checkpoint('three', 100), metric: 3 });
  await assert.rejects(h.durable, { code: 'EIO', syscall: 'fdatasync', stage: 'files' });
  faults.disable();
  assert.equal((await readPointer(dir, 'latest'))?.step, 2, 'latest still names step 2');
  assert.equal((await readPointer(dir, 'best'))?.step, 2, 'best still names step 2');
  assert.deepEqual(
    listDir(dir).filter((f) => f.includes('.tmp.')),
    [],
    'no temporary file left',
  );
  await ckpt.close().catch(() => {});
});

test("a save's snapshot is released once the writer has read its bytes, before it is durable; the next save is admitted only once it is durable", async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 5, maxInflight: 1, onWarning: () => {} });
  await (
    await ckpt.save(1, { tensors: checkpoint('one', 100) })
  ).durable; // start-up done before the clock runs
  const at: Record<string, number> = {};
  const releases: Record<string, number> = {};
  const source = (tag: string) => ({
    bytes: 400 + tag.length,
    materialize: async () => checkpoint(tag, 100),
    release: () => {
      releases[tag] = (releases[tag] ?? 0) + 1;
      at[`released ${tag}`] ??= performance.now();
    },
  });
  // Each fdatasync (the checkpoint's, then each small file's) takes 400 ms: the first save is durable >= 800 ms
  // after its bytes were written.
  faults.configure({ delayMs: { fdatasync: 400 } });
  const first = await ckpt.save(2, { tensors: source('two') });
  void first.durable.then(() => {
    at['durable two'] = performance.now();
  });
  const second = await ckpt.save(3, { tensors: source('three') });
  at['admitted three'] = performance.now();
  await second.durable;
  faults.disable();
  const seen = JSON.stringify(at);
  assert.ok(at['durable two']! - at['released two']! >= 600, `the first snapshot went back when its bytes were written, not when durable: ${seen}`);
  // Its pointers and removals were decided assuming the first one committed: it waits for that.
  assert.ok(
    second.waitedMs >= 600 && at['admitted three']! - at['released two']! >= 600,
    `the second save waited for the first one's syncs (${second.waitedMs} ms): ${seen}`,
  );
  assert.deepEqual(releases, { two: 1, three: 1 }, 'each snapshot released exactly once');
  assert.equal((await readPointer(dir, 'latest'))?.step, 3);
  await ckpt.close();
});
