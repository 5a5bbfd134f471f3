/** The run lock: one writer per run directory, and a directory that cannot be written fails at open. */
import './testing-addon'; // first: the testing build is this process's addon (src/binding/native.ts, testing())
import '../src/platform/node';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointError } from '../src/binding/errors';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { TensorEntry } from '../src/format/file';
import { isRoot, pattern, tempDir } from './helpers';

const quiet = { onWarning: () => {} };
const t = (step: number): Record<string, TensorEntry> => ({ w: { dtype: 'float32', shape: [1024], data: pattern(1024, step + 1) } });

function lockHolderChild(dir: string): Promise<{ pid: number; kill: () => Promise<void>; exited: Promise<number | null> }> {
  const code = `const { Checkpointer } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'index.js'))});
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
