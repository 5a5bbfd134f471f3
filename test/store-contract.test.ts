/** The CheckpointStore contract (src/store/store.ts), one suite run on every store: LocalStore, MemoryStore and
 * S3Store (against Ceph RGW, where radosgw is installed). A new store passes this before it is used. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Checkpointer, CheckpointError, CheckpointStore, LocalStore, MemoryStore, S3Store, TensorEntry } from '../src';
import { CONTENT_ID_TOKEN } from '../src/binding/native';
import { TensorList } from '../src/format/tensor-list';
import { bytesOf, tempDir } from './helpers';
import { Gateway, rgwSkip, startGateway } from './remote/rgw';

interface Harness {
  name: string;
  skip: string | false;
  /** A fresh, empty location; `again` opens a second store over the same location (MemoryStore: the same one). */
  make(): Promise<{ store: CheckpointStore; again: () => CheckpointStore; corrupt: (name: string) => Promise<void> }>;
}

let gw: Gateway | null = null;
let memories = 0;

const harnesses: Harness[] = [
  {
    name: 'LocalStore',
    skip: false,
    make: async () => {
      const dir = tempDir();
      return {
        store: new LocalStore(dir),
        again: () => new LocalStore(dir),
        corrupt: async (name) => {
          const file = path.join(dir, name);
          const bytes = fs.readFileSync(file);
          bytes[bytes.length - 2]! ^= 0x10;
          fs.writeFileSync(file, bytes);
        },
      };
    },
  },
  {
    name: 'MemoryStore',
    skip: false,
    make: async () => {
      const label = `contract-${++memories}`;
      const store = new MemoryStore(label);
      return {
        store,
        again: () => store,
        corrupt: async (name) => {
          const b = store.rawObject(name)!;
          b[b.length - 2]! ^= 0x10;
        },
      };
    },
  },
  {
    name: 'S3Store (Ceph RGW)',
    skip: rgwSkip,
    make: async () => {
      const url = gw!.url('contract');
      return {
        store: new S3Store(url, { partBytes: 5 << 20 }),
        again: () => new S3Store(url),
        corrupt: async (name) => {
          const objects = gw!.objects(url);
          const bytes = Buffer.from((await objects.downloadBytes(name))!);
          bytes[bytes.length - 2]! ^= 0x10;
          await objects.uploadBytes(name, bytes);
        },
      };
    },
  },
];

before(async () => {
  if (!rgwSkip) gw = await startGateway();
});
after(() => gw?.stop());

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

function tensors(seed: number, n = 1000): Record<string, TensorEntry> {
  return {
    w: { dtype: 'float32', shape: [n], data: new Float32Array(n).map((_, i) => seed + i / 7) },
    step: { dtype: 'int32', shape: [1], data: new Int32Array([seed]) },
  };
}

for (const h of harnesses) {
  describe(`CheckpointStore contract: ${h.name}`, { skip: h.skip }, () => {
    test('open, an empty list, small objects whole or absent', async () => {
      const { store } = await h.make();
      await store.open();
      assert.deepEqual(
        (await store.list()).filter((o) => !o.name.startsWith('ckptio.lock')),
        [],
      );
      assert.equal(await store.readSmall('latest'), null);
      await store.writeSmall('latest', enc('{"step":1}'));
      assert.equal(dec(await store.readSmall('latest')), '{"step":1}');
      await store.writeSmall('latest', enc('{"step":2}'));
      assert.equal(dec(await store.readSmall('latest')), '{"step":2}', 'a rewrite replaces whole');
      await store.remove(['latest']);
      assert.equal(await store.readSmall('latest'), null);
    });

    test('names are plain: a path, "..", "" or NUL is refused with ECKPT_ARGS and nothing is written', async () => {
      const { store } = await h.make();
      await store.open();
      for (const bad of ['../x', 'a/b', '..', '', 'a\0b']) {
        await assert.rejects(
          store.writeSmall(bad, enc('x')),
          (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS',
          JSON.stringify(bad),
        );
      }
    });

    test('commit: the checkpoint, then its small objects (content id substituted), then the removals; read verifies', async () => {
      const { store } = await h.make();
      await store.open();
      const t1 = tensors(1);
      let consumed = 0;
      let settledWith: unknown = 'not yet';
      const r1 = await store.commit({
        name: 'ckpt-0000000001.safetensors',
        tensors: TensorList.from(t1),
        options: { metadata: { 'ckptio.step': '1' } },
        files: [{ name: 'latest', data: enc(`{"step":1,"contentId":"${CONTENT_ID_TOKEN}"}`) }],
        remove: [],
        onConsumed: () => consumed++,
        onSettled: (err) => {
          settledWith = err;
        },
      });
      assert.ok(consumed <= 1);
      store.poll?.();
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(settledWith, null, 'onSettled(null, result) once the commit settled');
      assert.match(r1.contentId ?? '', /^[0-9a-f]{16}$/);
      assert.ok(r1.bytes > 4000);
      const latest = JSON.parse(dec(await store.readSmall('latest'))!) as { contentId: string };
      assert.equal(latest.contentId, r1.contentId, "the token in a small object is the checkpoint's content id");
      await store.commit({
        name: 'ckpt-0000000002.safetensors',
        tensors: TensorList.from(tensors(2)),
        options: { metadata: { 'ckptio.step': '2' } },
        files: [{ name: 'latest', data: enc('{"step":2}') }],
        remove: ['ckpt-0000000001.safetensors'],
      });
      const names = (await store.list()).map((o) => o.name);
      assert.ok(names.includes('ckpt-0000000002.safetensors') && !names.includes('ckpt-0000000001.safetensors'), names.join(','));
      const read = await store.read('ckpt-0000000002.safetensors');
      assert.ok(read.verified);
      assert.ok(bytesOf(read.tensors.w!.data).equals(bytesOf(tensors(2).w!.data)));
      assert.equal(read.metadata['ckptio.step'], '2');
      const header = await store.readHeader('ckpt-0000000002.safetensors');
      assert.equal(header.bytes, read.bytes);
      assert.deepEqual(header.tensors.map((t) => [t.name, t.dtype, t.shape]).sort(), [
        ['step', 'int32', [1]],
        ['w', 'float32', [1000]],
      ]);
      assert.equal(header.metadata['ckptio.step'], '2');
    });

    test('a damaged checkpoint is rejected on read (ECKPT_CHECKSUM); a missing one is ENOENT', async () => {
      const { store, corrupt } = await h.make();
      await store.open();
      await store.commit({ name: 'ckpt-0000000003.safetensors', tensors: TensorList.from(tensors(3)), options: {}, files: [], remove: [] });
      await corrupt('ckpt-0000000003.safetensors');
      await assert.rejects(store.read('ckpt-0000000003.safetensors'), (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_CHECKSUM');
      await assert.rejects(store.read('ckpt-0000000009.safetensors'), (err: unknown) => err instanceof CheckpointError && err.code === 'ENOENT');
    });

    test('one writer per location: a second lock is ECKPT_LOCKED until the first is released', async () => {
      const { store, again } = await h.make();
      await store.open();
      const lock = await store.lock();
      const other = again();
      await assert.rejects(other.lock(), (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_LOCKED');
      lock.release();
      await new Promise((resolve) => setTimeout(resolve, 200)); // a lease is released by a write
      (await other.lock()).release();
    });

    test('a Checkpointer over the store: saves, retention, pointers, the manifest, resume in a new Checkpointer', async () => {
      const { store, again } = await h.make();
      const ckpt = new Checkpointer({ store, keepLast: 2, onWarning: () => {} });
      for (let step = 1; step <= 3; step++) await (await ckpt.save(step, { tensors: tensors(step), state: { step }, metric: step })).durable;
      assert.deepEqual(
        (await ckpt.manifest()).map((e) => e.step),
        [2, 3],
      );
      const p = await ckpt.pointer('latest');
      assert.equal(p?.step, 3);
      await ckpt.close();
      const reopened = new Checkpointer({ store: again(), onWarning: () => {} });
      const loaded = await reopened.loadLatest();
      assert.equal(loaded?.step, 3);
      assert.deepEqual(loaded?.state, { step: 3 });
      assert.ok(bytesOf(loaded!.tensors.w!.data).equals(bytesOf(tensors(3).w!.data)));
      const byName = await reopened.load('ckpt-0000000002.safetensors');
      assert.equal(byName.step, 2);
      await reopened.close();
    });
  });
}
