/** Each recipe in examples/ (the README's three drop-ins) runs, and its resume claims hold. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempDir } from './helpers';

const examples = path.join(__dirname, '..', 'examples');

function run(name: string, ...args: string[]): Record<string, unknown> {
  const out = execFileSync(process.execPath, [path.join(examples, `${name}.js`), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const line = out
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  assert.ok(line, `${name} printed its result`);
  return JSON.parse(line) as Record<string, unknown>;
}

test('examples/fit-callback: 2 epochs, then a second run resumes at epoch 2 and ends where 4 uninterrupted epochs end', () => {
  const dir = tempDir();
  const straight = run('fit-callback', path.join(dir, 'straight'), '4');
  const first = run('fit-callback', path.join(dir, 'resumed'), '2');
  assert.equal(first.resumedFrom, null);
  const second = run('fit-callback', path.join(dir, 'resumed'), '4');
  assert.equal(second.initialEpoch, 2);
  assert.equal(second.resumedFrom, first.step);
  assert.equal(second.loss, straight.loss, 'same final loss, bit for bit');
});

test('examples/custom-loop: 20 steps, then resume to 40, gives the kernel of 40 uninterrupted steps', () => {
  const dir = tempDir();
  const straight = run('custom-loop', path.join(dir, 'straight'), '40');
  run('custom-loop', path.join(dir, 'resumed'), '20');
  const second = run('custom-loop', path.join(dir, 'resumed'), '40');
  assert.equal(second.resumedFrom, 20);
  assert.equal(second.kernel, straight.kernel);
});

test('examples/io-handler: same predictions after the round trip, and an exported model.json', () => {
  const dir = tempDir();
  const r = run('io-handler', dir);
  assert.equal(r.samePredictions, true);
  assert.ok(fs.existsSync(r.exported as string));
});
