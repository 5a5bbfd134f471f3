import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { writeCheckpoint } from '../src';
import { tempDir } from './helpers';

test('timers keep firing while a 512 MiB checkpoint is written', async () => {
  const dir = tempDir();
  const data = new Float32Array(128 << 20); // 512 MiB
  for (let i = 0; i < data.length; i += 1024) data[i] = i;
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const p = writeCheckpoint(path.join(dir, 'big'), { w: { dtype: 'float32', shape: [data.length], data } });
  const res = await p;
  clearInterval(timer);
  assert.ok(res.bytes > 512 * 2 ** 20);
  // A write done on the JS thread would let no timer run before it resolves.
  assert.ok(ticks >= 10, `timers fired during the write (${ticks} ticks)`);
});
