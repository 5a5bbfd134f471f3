/** The run manifest: rebuilt from the checkpoints' headers when lost or corrupt, without reading tensor data. */
import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { native } from '../src/binding/native';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { MANIFEST_NAME, checkpointName, parseManifest } from '../src/checkpoint/manifest';
import { keepBest } from '../src/checkpoint/retention';
import { readCheckpoint, TensorEntry } from '../src/format/file';
import { isRoot, pattern, tempDir } from './helpers';

const quiet = { onWarning: () => {} };
const t = (step: number): Record<string, TensorEntry> => ({ w: { dtype: 'float32', shape: [1024], data: pattern(1024, step + 1) } });

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
