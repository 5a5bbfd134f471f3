import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { readCheckpoint } from '../src/format/file';
import { tempDir } from './helpers';
import { CLI, SMALL } from './soak/trainer-child';

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal}: the trainer finishes the step, makes the save durable and exits 0`, { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, [CLI, 'train', ...SMALL, '--steps', '100000', '--save-every', '1000', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!sent && /"event":"step","step":30,/.test(out)) {
        sent = true;
        child.kill(signal);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(code, 0);
    const events = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; step?: number; path?: string; signal?: string });
    const stopped = events.find((e) => e.event === 'stopped');
    assert.ok(stopped && stopped.signal === signal, 'a stopped event names the signal');
    const durable = events.filter((e) => e.event === 'durable').pop();
    assert.ok(durable && durable.step === stopped.step, 'the last step was made durable before exit');
    const r = await readCheckpoint(path.join(dir, path.basename(durable.path!)));
    assert.equal(r.metadata['ckptio.step'], String(stopped.step));
    assert.ok(r.verified);
  });
}
