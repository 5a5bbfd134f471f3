/** Incremental fine-tuning and lineage: train on digits 0-7 (tagged v1_baseline), fine-tune on 0-9 from the tag
 * (the head grows 8 -> 10: a partial load that names exactly the head), then fine-tune that run again with a
 * frozen first layer; the lineage survives retention and `ckptio log` shows baseline -> fine-tune -> fine-tune. */
import '../src/platform/node';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { readCheckpoint } from '../src/format/file';
import { bytesOf, CLI, cli as runCli, tempDir } from './helpers';

const SMALL = [
  '--layers',
  '32',
  '--batch',
  '32',
  '--train-limit',
  '1200',
  '--warmup',
  '0',
  '--eval-every',
  '1000',
  '--save-every',
  '10',
  '--keep-last',
  '1',
  '--backend',
  'cpu',
  '--log',
  'json',
];

interface Event {
  event: string;
  [k: string]: unknown;
}

/** A CLI run that must succeed, as its JSON event lines. */
function cli(...args: string[]): Event[] {
  const r = runCli(args);
  assert.equal(r.status, 0, `ckptio ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Event);
}

test(
  'train 0-7 -> finetune 0-9 (head changed: partial load) -> finetune with a frozen layer: accuracy per class group, lineage',
  { timeout: 300_000 },
  async () => {
    const root = tempDir();
    const base = path.join(root, 'base'),
      inc1 = path.join(root, 'inc1'),
      inc2 = path.join(root, 'inc2');
    cli('train', ...SMALL, '--epochs', '1', '--classes', '0-7', '--tag', 'v1_baseline', '--dir', base);

    const e1 = cli(
      'finetune',
      ...SMALL,
      '--epochs',
      '4',
      '--from',
      `${base}:v1_baseline`,
      '--dir',
      inc1,
      '--classes',
      '0-9',
      '--lr-scale',
      '0.5',
      '--tag',
      'incremental_a',
    );
    const ft = e1.find((e) => e.event === 'finetune')!;
    assert.deepEqual(
      (ft.notLoaded as string[]).map((s) => s.split(':')[0]).sort(),
      [
        'model/1-dense/bias',
        'model/1-dense/kernel',
        'optimizer/m/model/1-dense/bias',
        'optimizer/m/model/1-dense/kernel',
        'optimizer/v/model/1-dense/bias',
        'optimizer/v/model/1-dense/kernel',
      ],
      'exactly the head (and its Adam slots) did not load',
    );
    assert.equal(ft.lr, 2e-3 * 0.5, "the parent's learning rate times --lr-scale");
    const [before, after] = ['before', 'after'].map((p) => e1.find((e) => e.event === 'classes' && e.phase === p)!);
    assert.deepEqual(before!.old, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(before!.new, [8, 9]);
    assert.ok((before!.oldAcc as number) > 0.5, `the baseline knows the old classes (${before!.oldAcc})`);
    assert.equal(before!.newAcc, 0, 'and not the new ones (its head has no outputs for them)');
    assert.ok((after!.newAcc as number) > 0.3, `after fine-tuning the new classes are learned (${after!.newAcc})`);

    const e2 = cli(
      'finetune',
      ...SMALL,
      '--epochs',
      '1',
      '--from',
      inc1,
      '--dir',
      inc2,
      '--classes',
      '0-9',
      '--freeze',
      '0',
      '--dedup',
      '--tag',
      'incremental_b',
    );
    const durable = e2.filter((e) => e.event === 'durable');
    assert.equal(durable[0]!.dedupedBytes, 0, 'the first save of the run stores everything');
    assert.ok(
      durable.slice(1).every((e) => e.dedupedBytes === (784 * 32 + 32) * 4),
      'later saves store the frozen layer by reference (bytes saved reported)',
    );
    assert.deepEqual(
      (e2.find((e) => e.event === 'finetune')!.notLoaded as string[]).map((s) => s.split(' ')[0]).sort(),
      ['optimizer/m/model/0-dense/bias', 'optimizer/m/model/0-dense/kernel', 'optimizer/v/model/0-dense/bias', 'optimizer/v/model/0-dense/kernel'],
      "same shape: every weight loads; only the frozen layer's optimizer slots are left out (it is not trained)",
    );
    const parentFinal = (await new Checkpointer({ dir: inc1, lock: false }).loadLatest())!;
    const childFinal = (await new Checkpointer({ dir: inc2, lock: false }).loadLatest())!;
    assert.ok(
      bytesOf(childFinal.tensors['model/0-dense/kernel']!.data).equals(bytesOf(parentFinal.tensors['model/0-dense/kernel']!.data)),
      'the frozen layer did not change',
    );
    assert.ok(!bytesOf(childFinal.tensors['model/1-dense/kernel']!.data).equals(bytesOf(parentFinal.tensors['model/1-dense/kernel']!.data)), 'the head did');

    // Lineage: every checkpoint of a fine-tune names its origin, so the link survives keep-last 1.
    const m2 = await new Checkpointer({ dir: inc2, lock: false }).manifest();
    assert.ok(m2.length >= 1 && m2.every((e) => e.origin?.run === inc1), 'every checkpoint of inc2 names inc1 as its origin');
    const header = await readCheckpoint(path.join(inc1, parentFinal.path.split('/').pop()!));
    assert.ok(header.metadata['ckptio.origin']?.includes(base), 'and inc1 names the baseline');
    const log = spawnSync(process.execPath, [CLI, 'log', inc2, '--json'], { encoding: 'utf8' });
    assert.equal(log.status, 0, log.stderr);
    const runs = (JSON.parse(log.stdout) as { runs: { dir: string }[] }).runs.map((r) => path.basename(r.dir));
    assert.deepEqual(runs, ['base', 'inc1', 'inc2'], 'ckptio log shows baseline -> fine-tune -> fine-tune');
  },
);
