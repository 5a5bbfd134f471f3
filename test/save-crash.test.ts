/** A crash at every I/O operation of a save that moves pointers and prunes leaves a consistent directory. */
import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { testing } from '../src/binding/native';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { readPointer } from '../src/checkpoint/directory';
import { checkpointName } from '../src/checkpoint/manifest';
import { keepBest } from '../src/checkpoint/retention';
import { readCheckpoint, TensorEntry } from '../src/format/file';
import { listDir, pattern, tempDir } from './helpers';

const { faults } = testing();

const quiet = { onWarning: () => {} };
const t = (step: number): Record<string, TensorEntry> => ({ w: { dtype: 'float32', shape: [1024], data: pattern(1024, step + 1) } });

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
