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
  let ticksAtReturn = -1;
  const p = writeCheckpoint(path.join(dir, 'big'), { w: { dtype: 'float32', shape: [data.length], data } });
  ticksAtReturn = ticks;
  const res = await p;
  clearInterval(timer);
  assert.equal(ticksAtReturn, 0, 'the call returned before any timer could run (it did not write inline)');
  assert.ok(res.bytes > 512 * 2 ** 20);
  assert.ok(ticks >= 10, `timers fired during the write (${ticks} ticks)`);
});
