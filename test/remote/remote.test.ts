/** The remote tier against a real engine (Ceph RGW on loopback, scripts/rgw.sh): resume on an empty machine,
 * the faults (gateway killed mid-upload, wrong credentials, missing bucket, a flipped byte, the trainer killed
 * mid-upload), and secrets kept out of everything a run prints or writes. */
import '../../src/platform/node';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Checkpointer, CheckpointError, readCheckpoint, RemoteError, TensorEntry } from '../../src';
import { listCommitted } from '../../src/checkpoint/node/remote-run';
import { bytesOf, tempDir } from '../helpers';
import { CLI, runTrainer, SMALL } from '../soak/trainer-child';
import { Gateway, rgwSkip, startGateway } from './rgw';
import { checkpointName } from '../../src/checkpoint/names';

const skip = rgwSkip;
let gw: Gateway;

before(async () => {
  if (!skip) gw = await startGateway();
});
after(() => gw?.stop());

test('radosgw is present where CKPTIO_REQUIRE_RGW=1', { skip: process.env.CKPTIO_REQUIRE_RGW === '1' ? false : 'CKPTIO_REQUIRE_RGW is not set' }, () => {
  assert.equal(skip, false, `CKPTIO_REQUIRE_RGW=1 but the remote-tier tests would be skipped: ${skip}`);
});

function tensors(step: number, n = 1 << 16): Record<string, TensorEntry> {
  const w = new Float32Array(n).map((_, i) => step * 1000 + (i % 97));
  return { w: { dtype: 'float32', shape: [n], data: w } };
}

function warnings(): { warn: (m: string) => void; seen: string[] } {
  const seen: string[] = [];
  return { warn: (m) => seen.push(m), seen };
}

async function finalWeights(dir: string, step: number) {
  return (await readCheckpoint(path.join(dir, checkpointName(step)))).tensors;
}

test(
  'ckptio train --remote: delete the local directory, resume on an empty one from the remote tier, final weights byte-identical',
  { skip, timeout: 300_000 },
  async () => {
    const root = tempDir();
    const url = gw.url('train');
    const args = [...SMALL, '--backend', 'cpu', '--save-every', '7'];
    runTrainer([...args, '--steps', '40', '--dir', path.join(root, 'ref')]);
    const first = runTrainer([...args, '--steps', '21', '--dir', path.join(root, 'a'), '--remote', url]);
    assert.ok(
      first.some((e) => e.event === 'replicated' && e.step === 21),
      'the last checkpoint was replicated before the run ended',
    );
    fs.rmSync(path.join(root, 'a'), { recursive: true });
    const second = runTrainer([...args, '--steps', '40', '--dir', path.join(root, 'b'), '--remote', url]);
    assert.equal(second.find((e) => e.event === 'start')!.resumedFrom, 21, 'resumed from the remote copy of step 21');
    const [ref, got] = [await finalWeights(path.join(root, 'ref'), 40), await finalWeights(path.join(root, 'b'), 40)];
    assert.ok(Object.keys(ref).length >= 6);
    for (const [name, t] of Object.entries(ref))
      assert.ok(bytesOf(got[name]!.data).equals(bytesOf(t.data)), `tensor ${name} differs after resuming from the remote tier`);
  },
);

test(
  'library: replicated settles after the remote commit; an empty directory restores the newest; remote retention keeps 2',
  { skip, timeout: 120_000 },
  async () => {
    const url = gw.url('lib');
    const dir = tempDir();
    const ckpt = new Checkpointer({ dir, keepLast: 1, remote: { url, keepLast: 2 } });
    const infos = [];
    for (let step = 1; step <= 4; step++) {
      const h = await ckpt.save(step, { tensors: tensors(step), state: { step } });
      await h.durable;
      infos.push(await h.replicated); // one at a time: none superseded
    }
    await ckpt.close();
    assert.deepEqual(
      infos.map((i) => i?.step),
      [1, 2, 3, 4],
    );
    assert.ok(infos.every((i) => i!.key.startsWith(`${url}/ckpt-`)));
    const committed = await listCommitted(gw.objects(url), () => {});
    assert.deepEqual(
      committed.map((c) => c.step),
      [4, 3],
      'remote keepLast 2',
    );
    assert.ok(
      !fs.existsSync(path.join(dir, '.ckptio-replicating')) || fs.readdirSync(path.join(dir, '.ckptio-replicating')).length === 0,
      'no upload left held',
    );

    const empty = tempDir();
    const w = warnings();
    const restored = new Checkpointer({ dir: empty, remote: url, onWarning: w.warn });
    const loaded = await restored.loadLatest();
    await restored.close();
    assert.equal(loaded!.step, 4);
    assert.deepEqual(loaded!.state, { step: 4 });
    assert.ok(bytesOf(loaded!.tensors.w!.data).equals(bytesOf(tensors(4).w!.data)));
  },
);

test('one byte flipped in the newest remote object: rejected on download, the previous remote checkpoint is used', { skip, timeout: 120_000 }, async () => {
  const url = gw.url('flip');
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, remote: url });
  for (let step = 1; step <= 2; step++) await (await ckpt.save(step, { tensors: tensors(step) })).replicated;
  await ckpt.close();
  const objects = gw.objects(url);
  const newest = (await listCommitted(objects, () => {}))[0]!;
  assert.equal(newest.step, 2);
  const name = `${newest.file}~${newest.id}`;
  const local = path.join(tempDir(), 'obj');
  await objects.downloadFile(name, newest.bytes, local);
  const bytes = fs.readFileSync(local);
  bytes[bytes.length - 10]! ^= 0x40; // inside the last tensor's data
  fs.writeFileSync(local, bytes);
  await objects.uploadFile(local, name);

  const w = warnings();
  const restored = new Checkpointer({ dir: tempDir(), remote: url, onWarning: w.warn });
  const loaded = await restored.loadLatest();
  await restored.close();
  assert.equal(loaded!.step, 1, 'the previous remote checkpoint');
  assert.ok(
    w.seen.some((m) => /step 2 is not valid.*ECKPT_CHECKSUM/.test(m)),
    `the rejection is reported: ${w.seen.join(' | ')}`,
  );

  // The CLI on the remote tier: ls lists both, verify names the bad one (exit 1), pull takes the good one.
  const ls = cliJson<{ checkpoints: { step: number }[] }>('ls', url, '--json');
  assert.deepEqual(
    ls.json.checkpoints.map((c) => c.step),
    [1, 2],
  );
  const verify = cliJson<{ ok: boolean; checks: { step: number; ok: boolean; code?: string }[] }>('verify', url, '--json');
  assert.equal(verify.status, 1);
  assert.deepEqual(
    verify.json.checks.map((c) => [c.step, c.ok, c.code ?? null]),
    [
      [2, false, 'ECKPT_CHECKSUM'],
      [1, true, null],
    ],
  );
  const into = tempDir();
  const pull = cliJson<{ step: number; files: string[] }>('pull', url, into, '--json');
  assert.equal(pull.status, 0);
  assert.equal(pull.json.step, 1);
  assert.deepEqual(
    fs.readdirSync(into).filter((n) => n !== 'ckptio.lock'),
    ['ckpt-0000000001.safetensors'],
  );
});

function cliJson<T>(...args: string[]): { status: number | null; json: T } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  assert.ok(r.stdout.trim().startsWith('{'), `ckptio ${args.join(' ')}: ${r.stdout} ${r.stderr}`);
  return { status: r.status, json: JSON.parse(r.stdout) as T };
}

test(
  'radosgw SIGKILLed mid-upload and restarted: nothing partial is visible, the local copy is intact, the upload is redone, replicated only after success',
  { skip, timeout: 180_000 },
  async () => {
    const url = gw.url('gwkill');
    const dir = tempDir();
    let killed = false;
    let committedDuringOutage: number[] | null = null;
    const objects = gw.objects(url);
    const w = warnings();
    const ckpt = new Checkpointer({
      dir,
      onWarning: w.warn,
      remote: {
        url,
        partBytes: 5 << 20,
        concurrency: 1,
        onProgress: () => {
          if (killed) return;
          killed = true;
          gw.restart();
          void listCommitted(objects, () => {}).then((c) => {
            committedDuringOutage = c.map((x) => x.step);
          });
        },
      },
    });
    const big = tensors(3, 10 << 20); // 40 MiB: 8 parts
    const h = await ckpt.save(3, { tensors: big });
    let replicatedAt = 0;
    const replicated = h.replicated.then((info) => {
      replicatedAt = Date.now();
      return info;
    });
    await h.durable;
    const info = await replicated;
    await ckpt.close();
    assert.ok(killed, 'the gateway was killed during the upload');
    assert.deepEqual(committedDuringOutage, [], 'no checkpoint was visible remotely before its upload completed');
    assert.equal(info!.step, 3);
    assert.ok(replicatedAt > 0);
    assert.ok(
      w.seen.some((m) => /retrying/.test(m)),
      `the outage was reported and retried: ${w.seen.join(' | ')}`,
    );
    const committed = await listCommitted(objects, () => {});
    assert.deepEqual(
      committed.map((c) => c.step),
      [3],
    );
    const local = await readCheckpoint(path.join(dir, 'ckpt-0000000003.safetensors'));
    assert.ok(bytesOf(local.tensors.w!.data).equals(bytesOf(big.w!.data)), 'the local copy is intact');
    const restored = await new Checkpointer({ dir: tempDir(), remote: url, lock: true }).loadLatest();
    assert.ok(bytesOf(restored!.tensors.w!.data).equals(bytesOf(big.w!.data)), 'the remote copy downloads and verifies');
  },
);

test('kill -9 of the trainer during an upload: the next start redoes it and leaves no orphan multipart upload', { skip, timeout: 120_000 }, async () => {
  const url = gw.url('trainerkill');
  const dir = tempDir();
  const child = spawnSync(process.execPath, [path.join(__dirname, 'upload-child.js'), dir, url], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(child.signal, 'SIGKILL', `the child killed itself mid-upload: ${child.stderr}`);
  const objects = gw.objects(url);
  assert.equal((await listCommitted(objects, () => {})).length, 0, 'nothing committed by the killed writer');
  assert.ok((await objects.listUploads()).length >= 1, 'the killed writer left a multipart upload');
  const w = warnings();
  const again = new Checkpointer({ dir, onWarning: w.warn, remote: { url, partBytes: 5 << 20 } });
  await again.manifest();
  await again.close(); // waits for the redone upload
  assert.deepEqual(
    (await listCommitted(objects, () => {})).map((c) => c.step),
    [7],
    'the interrupted upload was redone',
  );
  assert.deepEqual(await objects.listUploads(), [], 'no orphan multipart upload after the next start');
  assert.ok(
    w.seen.some((m) => /unfinished multipart upload/.test(m)),
    w.seen.join(' | '),
  );
});

test(
  'a missing bucket and wrong credentials: typed ECKPT_REMOTE errors carrying the S3 code, local checkpoints go on',
  { skip, timeout: 120_000 },
  async () => {
    const w = warnings();
    const ckpt = new Checkpointer({ dir: tempDir(), onWarning: w.warn, remote: { url: 's3://no-such-bucket-ckptio/run', retryMs: 0 } });
    const h = await ckpt.save(1, { tensors: tensors(1) });
    assert.equal((await h.durable)!.step, 1, 'the local save is durable');
    await assert.rejects(
      h.replicated,
      (err: unknown) =>
        err instanceof RemoteError && err instanceof CheckpointError && err.code === 'ECKPT_REMOTE' && err.s3Code === 'NoSuchBucket' && err.status === 404,
    );
    const h2 = await ckpt.save(2, { tensors: tensors(2) });
    assert.equal((await h2.durable)!.step, 2, 'training goes on');
    await ckpt.close();
    assert.ok(
      w.seen.some((m) => /training continues on local checkpoints.*NoSuchBucket/.test(m)),
      w.seen.join(' | '),
    );
  },
);

test('a planted secret appears nowhere in stdout, stderr, events or files of a run that hits wrong credentials', { skip, timeout: 120_000 }, async () => {
  const secret = 'PLANTEDsecretVALUE0123456789abcdefXYZ';
  const keyId = 'CKPTIOWRONGKEYID0001';
  const dir = tempDir();
  const env = { ...process.env, AWS_ACCESS_KEY_ID: keyId, AWS_SECRET_ACCESS_KEY: secret };
  const r = spawnSync(
    process.execPath,
    [CLI, 'train', ...SMALL, '--backend', 'cpu', '--steps', '14', '--save-every', '7', '--dir', dir, '--remote', gw.url('secret')],
    { encoding: 'utf8', env, timeout: 120_000 },
  );
  assert.equal(r.status, 0, `the run finishes on local checkpoints: ${r.stderr}`);
  const events = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; message?: string; step?: number });
  assert.ok(
    events.some((e) => e.event === 'warning' && /ECKPT_REMOTE|InvalidAccessKeyId/.test(e.message ?? '')),
    'the failure is reported',
  );
  assert.ok(
    events.some((e) => e.event === 'durable' && e.step === 14),
    'local checkpoints were written',
  );
  const places: [string, string][] = [
    ['stdout', r.stdout],
    ['stderr', r.stderr],
  ];
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, n.name);
      if (n.isDirectory()) walk(p);
      else places.push([p, fs.readFileSync(p, 'latin1')]);
    }
  };
  walk(dir);
  for (const [where, text] of places) assert.ok(!text.includes(secret), `the secret appears in ${where}`);
  // The check can fail: the secret is in the child's environment, and a child that prints it is caught.
  const leak = spawnSync(process.execPath, ['-e', 'console.error(process.env.AWS_SECRET_ACCESS_KEY)'], { encoding: 'utf8', env });
  assert.ok(leak.stderr.includes(secret));
});

test('remote keys are untrusted: a commit record naming another object or a path outside the directory is ignored', { skip, timeout: 60_000 }, async () => {
  const url = gw.url('untrusted');
  const objects = gw.objects(url);
  const ckpt = new Checkpointer({ dir: tempDir(), remote: url });
  await (
    await ckpt.save(5, { tensors: tensors(5) })
  ).replicated;
  await ckpt.close();
  const good = (await listCommitted(objects, () => {}))[0]!;
  // A record for step 9 whose body names ../../escape, and one whose body names another upload id.
  await objects.putSmall(
    `ckpt-0000000009.safetensors~${'a'.repeat(16)}.commit`,
    Buffer.from(
      JSON.stringify({
        format: 'ckptio.remote-commit',
        version: 1,
        file: '../../escape',
        id: 'a'.repeat(16),
        bytes: 1,
        contentId: null,
        refs: [],
        time: new Date().toISOString(),
        writer: 'ab',
      }),
    ),
  );
  await objects.putSmall(
    `ckpt-0000000008.safetensors~${'b'.repeat(16)}.commit`,
    Buffer.from(
      JSON.stringify({
        format: 'ckptio.remote-commit',
        version: 1,
        file: 'ckpt-0000000008.safetensors',
        id: good.id,
        bytes: good.bytes,
        contentId: null,
        refs: ['../x'],
        time: new Date().toISOString(),
        writer: 'ab',
      }),
    ),
  );
  const w = warnings();
  assert.deepEqual(
    (await listCommitted(objects, w.warn)).map((c) => c.step),
    [5],
  );
  assert.equal(w.seen.length, 2, w.seen.join(' | '));
  const dir = tempDir();
  const loaded = await new Checkpointer({ dir, remote: url, onWarning: () => {} }).loadLatest();
  assert.equal(loaded!.step, 5);
  assert.deepEqual(
    fs.readdirSync(path.dirname(dir)).filter((n) => n === 'escape'),
    [],
  );
});

test(
  'a tag right after the last save (train --tag) uploads once, with no failure; remote retention ranks by commit time, so going back to an earlier step keeps the new checkpoints',
  { skip, timeout: 120_000 },
  async () => {
    const url = gw.url('tagtime');
    const w = warnings();
    const ckpt = new Checkpointer({ dir: tempDir(), onWarning: w.warn, remote: { url, keepLast: 2 } });
    for (const step of [10, 11, 12]) await (await ckpt.save(step, { tensors: tensors(step) })).durable;
    await ckpt.tag(12, 'release'); // while step 12 may still be uploading
    await ckpt.close();
    assert.ok(!w.seen.some((m) => /failed/.test(m)), w.seen.join(' | '));
    const objects = gw.objects(url);
    assert.equal(dec(await objects.getSmall('tag.release', 1 << 16)), JSON.stringify({ step: 12, file: 'ckpt-0000000012.safetensors' }));
    assert.ok((await listCommitted(objects, () => {})).some((c) => c.step === 12));

    // Back to earlier steps in the same run (a rollback): the two newest commits are what stays, and the tagged one.
    const back = new Checkpointer({ dir: tempDir(), onWarning: () => {}, remote: { url, keepLast: 2 } });
    for (const step of [5, 6, 7]) await (await back.save(step, { tensors: tensors(step) })).replicated;
    await back.close();
    assert.deepEqual(
      (await listCommitted(objects, () => {})).map((c) => c.step),
      [12, 7, 6],
    );
  },
);

function dec(b: Uint8Array | null): string | null {
  return b === null ? null : Buffer.from(b).toString('utf8');
}

test(
  'dedup with a remote: the checkpoint holding a frozen layer is uploaded with the one that references it, kept remotely while referenced, and a restore on an empty directory loads whole',
  { skip, timeout: 180_000 },
  async () => {
    const { loadTf } = await import('../../src/tfjs/backend');
    const { modelState } = await import('../../src/tfjs/model-state');
    const { tf } = await loadTf('cpu');
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [32], units: 64, trainable: false, name: 'frozen' }), tf.layers.dense({ units: 4, name: 'head' })],
    });
    const optimizer = tf.train.adam(0.01);
    const x = tf.randomNormal([8, 32], 0, 1, 'float32', 3);
    const y = tf.randomNormal([8, 4], 0, 1, 'float32', 4);
    const vars = model.trainableWeights.map((w) => w.read() as never);
    const url = gw.url('dedup');
    const ckpt = new Checkpointer({ dir: tempDir(), keepLast: 1, dedup: true, onWarning: () => {}, remote: { url, keepLast: 1 } });
    for (let step = 1; step <= 3; step++) {
      optimizer.minimize(() => tf.losses.meanSquaredError(y, model.apply(x) as never) as never, false, vars);
      await (
        await ckpt.save(step, { tensors: modelState(model, optimizer, { tf }) })
      ).replicated;
    }
    await ckpt.close();
    const committed = await listCommitted(gw.objects(url), () => {});
    assert.deepEqual(
      committed.map((c) => c.step),
      [3, 1],
      'step 1 holds the frozen layer step 3 references: kept remotely',
    );
    assert.deepEqual(committed[0]!.refs, ['ckpt-0000000001.safetensors']);
    const restored = await new Checkpointer({ dir: tempDir(), remote: url, onWarning: () => {} }).loadLatest();
    assert.equal(restored!.step, 3);
    const kernel = model.getLayer('frozen').getWeights()[0]!.dataSync() as Float32Array;
    assert.ok(bytesOf(restored!.tensors['model/frozen/kernel']!.data).equals(bytesOf(kernel)), 'the referenced tensor came with it, whole');
  },
);

test('bad remote options are ECKPT_ARGS at construction, before anything is written or uploaded', () => {
  const dir = tempDir();
  for (const remote of [
    's3://Bad_Bucket/x',
    's3://bucket/../x',
    'http://bucket/x',
    { url: 's3://bucket/x', keepLast: 0 },
    { url: 's3://bucket/x', leaseMs: Number.NaN },
    { url: 's3://bucket/x', retryMs: -1 },
    { url: 's3://bucket/x', partBytes: 1 << 20 },
    { url: 's3://bucket/x', concurrency: 0 },
  ]) {
    assert.throws(
      () => new Checkpointer({ dir, remote }),
      (err: unknown) => err instanceof CheckpointError && err.code === 'ECKPT_ARGS',
      JSON.stringify(remote),
    );
  }
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing written');
});
