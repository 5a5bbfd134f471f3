import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../src/platform/node';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, test } from 'node:test';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { CheckpointError } from '../src';
import { testing } from '../src/binding/native';
import { bytesOf, listDir, pattern, tempDir } from './helpers';

const { faults } = testing();

afterEach(() => faults.disable());

const tensors = (step: number, n = 1000) => ({ w: { dtype: 'float32' as const, shape: [n], data: pattern(n, step + 1) } });

test('save resolves at snapshot, durable after commit; latest pointer and keepLast pruning follow', async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 2 });
  for (const step of [10, 20, 30, 40]) {
    const h = await ckpt.save(step, { tensors: tensors(step), state: { step, note: 'x' } });
    assert.equal(h.skipped, false);
    const d = await h.durable;
    assert.ok(d && d.step === step && fs.existsSync(d.path));
  }
  await ckpt.close();
  assert.deepEqual(listDir(dir), [
    'ckpt-0000000030.safetensors',
    'ckpt-0000000040.safetensors',
    'ckptio-history.jsonl',
    'ckptio-manifest.json',
    'ckptio.lock',
    'latest',
  ]);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'latest'), 'utf8')), { step: 40, file: 'ckpt-0000000040.safetensors' });
  const last = await new Checkpointer({ dir }).loadLatest();
  assert.equal(last?.step, 40);
  assert.deepEqual(last?.state, { step: 40, note: 'x' });
  assert.ok(bytesOf(last!.tensors.w!.data).equals(bytesOf(tensors(40).w.data)));
  await assert.rejects(ckpt.save(50, { tensors: tensors(50) }), { code: 'ECKPT_CLOSED' });
});

test('loadLatest skips a newest checkpoint that fails validation, with a warning naming the reason', async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 3 });
  for (const step of [1, 2, 3]) await (await ckpt.save(step, { tensors: tensors(step), state: { step } })).durable;
  await ckpt.close();
  const newest = path.join(dir, 'ckpt-0000000003.safetensors');
  const buf = fs.readFileSync(newest);
  buf[buf.length - 5]! ^= 0xff;
  fs.writeFileSync(newest, buf);
  const warnings: string[] = [];
  const loaded = await new Checkpointer({ dir, onWarning: (m) => warnings.push(m) }).loadLatest();
  assert.equal(loaded?.step, 2);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /step 3 is not valid.*ECKPT_CHECKSUM/);
});

test('stale temporary files of dead writers are removed at open; empty directory loads null', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'ckpt-0000000005.safetensors.tmp.999999.0badf00d'), 'partial');
  fs.writeFileSync(path.join(dir, 'unrelated.txt'), 'keep');
  const warnings: string[] = [];
  const ckpt = new Checkpointer({ dir, onWarning: (m) => warnings.push(m) });
  assert.equal(await ckpt.loadLatest(), null);
  assert.deepEqual(listDir(dir), ['ckptio.lock', 'unrelated.txt']);
  assert.match(warnings[0]!, /stale temporary/);
});

test('a failed save rejects durable with the OS code, keeps the previous checkpoint, and flush reports it', async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 1 });
  await (
    await ckpt.save(1, { tensors: tensors(1) })
  ).durable;
  faults.configure({ failures: [{ op: 'fdatasync', nth: 1, errno: 28 }] });
  const h = await ckpt.save(2, { tensors: tensors(2) });
  await assert.rejects(h.durable, (e: unknown) => e instanceof CheckpointError && e.code === 'ENOSPC');
  faults.disable();
  await assert.rejects(ckpt.flush(), { code: 'ENOSPC' });
  assert.deepEqual(listDir(dir), ['ckpt-0000000001.safetensors', 'ckptio-history.jsonl', 'ckptio-manifest.json', 'ckptio.lock', 'latest']);
  assert.equal((await ckpt.loadLatest())?.step, 1);
  assert.equal(ckpt.stats.failed, 1);
});

test("backpressure 'wait': a slow disk blocks the next save, reports the wait, and bytes in flight stay bounded", async () => {
  const dir = tempDir();
  const bytes = 4 * 50_000;
  const ckpt = new Checkpointer({ dir, keepLast: 10, maxInflight: 4, maxInflightBytes: 2 * bytes, onFull: 'wait' });
  faults.configure({ delayMs: { fdatasync: 80 } });
  const handles = [];
  for (let step = 1; step <= 5; step++) handles.push(await ckpt.save(step, { tensors: tensors(step, 50_000) }));
  await ckpt.flush();
  assert.ok(
    handles.slice(2).some((h) => h.waitedMs > 20),
    `later saves waited: ${handles.map((h) => h.waitedMs.toFixed(0))}`,
  );
  assert.ok(ckpt.stats.peakInflightBytes <= 2 * bytes, `peak ${ckpt.stats.peakInflightBytes}`);
  assert.equal(ckpt.stats.saved, 5);
  assert.equal(ckpt.stats.skipped, 0);
});

test("backpressure 'skip': saves beyond the limit are dropped, counted and reported", async () => {
  const dir = tempDir();
  const warnings: string[] = [];
  const ckpt = new Checkpointer({ dir, keepLast: 10, maxInflight: 1, onFull: 'skip', onWarning: (m) => warnings.push(m) });
  faults.configure({ delayMs: { fdatasync: 100 } });
  const first = await ckpt.save(1, { tensors: tensors(1) });
  const second = await ckpt.save(2, { tensors: tensors(2) });
  assert.equal(first.skipped, false);
  assert.equal(second.skipped, true);
  assert.equal(await second.durable, null);
  await ckpt.flush();
  assert.equal(ckpt.stats.skipped, 1);
  assert.match(warnings.join('\n'), /step 2 skipped/);
  assert.deepEqual(
    listDir(dir).filter((f) => f.startsWith('ckpt-')),
    ['ckpt-0000000001.safetensors'],
  );
});

test('best pointer protects the best checkpoint from pruning', async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 1, best: 'max' });
  for (const [step, metric] of [
    [1, 0.5],
    [2, 0.9],
    [3, 0.7],
    [4, 0.8],
  ] as const)
    await (
      await ckpt.save(step, { tensors: tensors(step), metric })
    ).durable;
  await ckpt.close();
  assert.deepEqual(listDir(dir), [
    'best',
    'ckpt-0000000002.safetensors',
    'ckpt-0000000004.safetensors',
    'ckptio-history.jsonl',
    'ckptio-manifest.json',
    'ckptio.lock',
    'latest',
  ]);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'best'), 'utf8')).step, 2);
});

test('a directory that cannot be created is a CheckpointError with code, syscall and path', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'file'), 'x');
  const ckpt = new Checkpointer({ dir: path.join(dir, 'file', 'sub') });
  await assert.rejects(ckpt.save(1, { tensors: tensors(1) }), (e: unknown) => {
    assert.ok(e instanceof CheckpointError, String(e));
    assert.equal(e.code, 'ENOTDIR');
    assert.equal(e.errno, 20);
    assert.equal(e.syscall, 'mkdir');
    assert.ok(e.path);
    return true;
  });
});
