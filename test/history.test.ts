/** The run's whole history: every save and resume appended beside the manifest, so log and report show the whole
 * run after retention removed most of its checkpoints, at a per-save cost that does not grow with the run. */
import '../src/platform/node';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Checkpointer, MemoryStore, TensorEntry } from '../src';
import { HISTORY_NAME } from '../src/checkpoint/history';
import { MANIFEST_NAME } from '../src/checkpoint/manifest';
import { readRun } from '../src/checkpoint/run-reader';
import { buildReport } from '../src/cli/report';
import { tempDir } from './helpers';
import { CLI } from './soak/trainer-child';

function tensors(step: number): Record<string, TensorEntry> {
  return { w: { dtype: 'float32', shape: [4], data: new Float32Array([step, step, step, step]) } };
}

async function run20(dir: string): Promise<void> {
  const ckpt = new Checkpointer({ dir, keepLast: 2, onWarning: () => {} });
  for (let step = 1; step <= 20; step++) await (await ckpt.save(step, { tensors: tensors(step), metrics: { loss: 1 / step } })).durable;
  await ckpt.close();
}

test('keepLast 2 and 20 saves: the history keeps all 20 (2 still on disk), log and report list and plot all 20', async () => {
  const dir = tempDir();
  await run20(dir);
  const run = await readRun(dir);
  assert.equal(run.checkpoints.filter((c) => c.present).length, 2);
  assert.equal(run.manifest!.entries.length, 2, 'the manifest stays the size of what is kept');
  const saves = run.history!.filter((e) => e.event === 'save');
  assert.deepEqual(
    saves.map((e) => e.step),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  assert.equal(saves[4]!.metrics.loss, 1 / 5);

  const log = spawnSync(process.execPath, [CLI, 'log', dir, '--json'], { encoding: 'utf8' });
  assert.equal(log.status, 0, log.stderr);
  const history = (JSON.parse(log.stdout) as { runs: { history: { event: string; step: number; exists: boolean }[] }[] }).runs[0]!.history;
  assert.equal(history.length, 20);
  assert.deepEqual(
    history.filter((e) => e.exists).map((e) => e.step),
    [19, 20],
  );
  const text = spawnSync(process.execPath, [CLI, 'log', dir], { encoding: 'utf8' }).stdout;
  assert.match(text, /20 saves, 0 resumes, 2 checkpoint\(s\) kept/);
  assert.equal(text.match(/ {2}removed$/gm)?.length, 18, text);
  assert.equal(text.match(/ {2}kept$/gm)?.length, 2, text);

  const report = await buildReport(dir);
  assert.equal(report.runs[0]!.entries.length, 20, 'the report draws all 20 saves');
  assert.equal(report.runs[0]!.removed!.length, 18);
  assert.equal(report.html.match(/<circle class="pt[^"]*" data-metric="loss"/g)?.length, 20, 'the loss panel plots 20 points');
  assert.equal(report.html.match(/class="pt pt-removed"/g)?.length, 18, 'removed checkpoints drawn as such');
  assert.doesNotMatch(report.html, /resume-marker/, 'no resume recorded, none inferred');
});

test('a resume is recorded; the history is appended to (one file, one line per save), never rewritten', async () => {
  const dir = tempDir();
  const ckpt = new Checkpointer({ dir, keepLast: 1, onWarning: () => {} });
  await (
    await ckpt.save(1, { tensors: tensors(1) })
  ).durable;
  await new Promise((resolve) => setTimeout(resolve, 50)); // the append is queued once the save settled
  const first = fs.statSync(path.join(dir, HISTORY_NAME));
  for (let step = 2; step <= 20; step++) await (await ckpt.save(step, { tensors: tensors(step) })).durable;
  await ckpt.close();
  const last = fs.statSync(path.join(dir, HISTORY_NAME));
  assert.equal(last.ino, first.ino, 'the same file: appended, not replaced by a rewrite');
  const lines = fs.readFileSync(path.join(dir, HISTORY_NAME), 'utf8').trim().split('\n');
  assert.equal(lines.length, 20);
  assert.equal(last.size, first.size * 20 + lines.slice(9).length, 'every line the size of the first (plus a digit from step 10 on)');
  assert.ok(fs.statSync(path.join(dir, MANIFEST_NAME)).size < 2000, 'the manifest does not grow with the run');

  const again = new Checkpointer({ dir, onWarning: () => {} });
  assert.equal((await again.loadLatest())!.step, 20);
  await (
    await again.save(21, { tensors: tensors(21) })
  ).durable;
  await again.close();
  const events = (await readRun(dir)).history!;
  assert.deepEqual(
    events.slice(-2).map((e) => [e.event, e.step]),
    [
      ['resume', 20],
      ['save', 21],
    ],
  );
  const report = await buildReport(dir);
  assert.deepEqual(report.runs[0]!.resumes, [20], 'the report marks the recorded resume');
});

test('the history is untrusted: invalid lines are skipped and reported; a symlink under its name is not followed', async () => {
  const dir = tempDir();
  await run20(dir);
  fs.appendFileSync(path.join(dir, HISTORY_NAME), 'not json\n{"event":"save","step":3,"file":"../../etc/passwd","time":"2026-01-01T00:00:00Z"}\n');
  const run = await readRun(dir);
  assert.equal(run.history!.length, 20);
  assert.match(run.historyProblem!.message, /2 line\(s\)/);

  const linked = tempDir();
  const target = path.join(tempDir(), 'elsewhere.txt');
  fs.writeFileSync(target, 'untouched\n');
  fs.symlinkSync(target, path.join(linked, HISTORY_NAME));
  const warnings: string[] = [];
  const ckpt = new Checkpointer({ dir: linked, onWarning: (m) => warnings.push(m) });
  assert.equal((await (await ckpt.save(1, { tensors: tensors(1) })).durable)!.step, 1, 'the save is durable');
  await ckpt.close();
  assert.equal(fs.readFileSync(target, 'utf8'), 'untouched\n', 'the append did not follow the link');
  assert.ok(
    warnings.some((m) => m.includes(HISTORY_NAME)),
    warnings.join(' | '),
  );
});

test('a MemoryStore keeps a history too; a store without appends keeps none and says nothing', async () => {
  const store = new MemoryStore('history');
  const ckpt = new Checkpointer({ store, keepLast: 1 });
  for (let step = 1; step <= 3; step++) await (await ckpt.save(step, { tensors: tensors(step) })).durable;
  await ckpt.close();
  assert.equal((await readRun(store)).history!.length, 3);
});
