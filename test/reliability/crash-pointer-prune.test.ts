import '../testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, test } from 'node:test';
import { Checkpointer, readCheckpoint, TensorEntry } from '../../src';
import { testing } from '../../src/binding/native';
import { readPointer, POINTER_BEST, POINTER_LATEST, checkpointName } from '../../src/checkpoint/directory';
import { pattern, tempDir } from '../helpers';

const { faults } = testing();

afterEach(() => faults.disable());

// Crash-state enumeration (fault twin) over one whole Checkpointer save: the checkpoint's commit, then the
// `latest` and `best` pointer updates, then the prune of the oldest checkpoint. After a crash at every
// I/O operation of that sequence, the directory must hold: readable pointers naming valid checkpoints,
// never behind an acknowledged save; the previous checkpoint; and nothing torn.

const tensors = (step: number): Record<string, TensorEntry> => ({ w: { dtype: 'float32', shape: [300_000], data: pattern(300_000, step) } });
const quiet = { onWarning: () => {} };

async function prepare(dir: string): Promise<void> {
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
  const ckpt = new Checkpointer({ dir, keepLast: 2, best: 'max', ...quiet });
  for (const step of [1, 2]) await (await ckpt.save(step, { tensors: tensors(step), metric: step })).durable;
  await ckpt.close();
}

async function step3(dir: string): Promise<boolean> {
  const ckpt = new Checkpointer({ dir, keepLast: 2, best: 'max', ...quiet });
  try {
    const h = await ckpt.save(3, { tensors: tensors(3), metric: 3 });
    await h.durable;
    return true;
  } catch {
    return false;
  } finally {
    await ckpt.close().catch(() => {}); // releases the run lock, as a process exit would
  }
}

for (const torn of [false, true]) {
  test(`crash at every I/O operation of save + pointer update + prune (torn ${torn})`, async (t) => {
    const dir = tempDir();
    await prepare(dir);
    faults.configure({});
    assert.equal(await step3(dir), true);
    const total = faults.stats().total;
    faults.disable();
    assert.deepEqual(
      fs.readdirSync(dir).sort(),
      [checkpointName(2), checkpointName(3), POINTER_BEST, POINTER_LATEST, 'ckptio-history.jsonl', 'ckptio-manifest.json', 'ckptio.lock'].sort(),
      'the save pruned step 1',
    );
    const outcomes = new Map<string, number>();
    for (let k = 1; k <= total; k++) {
      await prepare(dir);
      faults.configure({ crashAfter: k, torn });
      const resolved = await step3(dir);
      const crashed = faults.stats().crashed;
      faults.disable();
      assert.ok(crashed || resolved, `crash ${k} of ${total} did not happen`);
      const at = `crash after op ${k}/${total}`;
      const valid = new Set<number>();
      for (const name of fs.readdirSync(dir)) {
        const m = /^ckpt-(\d+)\.safetensors$/.exec(name);
        if (!m) continue;
        await readCheckpoint(path.join(dir, name)).catch((err: unknown) => assert.fail(`${at}: ${name} does not validate: ${String(err)}`));
        valid.add(Number(m[1]));
      }
      assert.ok(valid.has(2), `${at}: the previous checkpoint is gone`);
      for (const name of [POINTER_LATEST, POINTER_BEST]) {
        const p = await readPointer(dir, name);
        assert.ok(p, `${at}: ${name} pointer missing or unreadable`);
        assert.ok(p.step === 2 || p.step === 3, `${at}: ${name} points at ${p.step}`);
        assert.ok(valid.has(p.step) && p.file === checkpointName(p.step), `${at}: ${name} names a missing file`);
        if (resolved) assert.equal(p.step, 3, `${at}: acknowledged save, ${name} still at ${p.step}`);
      }
      const latest = await new Checkpointer({ dir, lock: false, ...quiet }).loadLatest();
      assert.ok(latest && (latest.step === 3 || latest.step === 2), `${at}: resume found ${latest?.step}`);
      if (resolved) assert.equal(latest.step, 3);
      const key = `ckpts ${[...valid].sort().join(',')} latest ${(await readPointer(dir, POINTER_LATEST))!.step}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    t.diagnostic(`${total} crash points; states: ${[...outcomes].map(([s, n]) => `${s} (${n})`).join('; ')}`);
    assert.ok(outcomes.size >= 3, 'the crash points reach before, between and after the pointer update and the prune');
  });
}
