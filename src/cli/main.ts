/** The `ckptio` command: train (the MNIST demo), and the commands that look after a run directory (ls, inspect,
 * verify, log, prune, diff, tag, export, import; docs/cli.md). Each command's logic is in ./commands. */
import '../platform/node';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import * as fs from 'node:fs';
import { CheckpointError } from '../binding/errors';
import { diff } from './commands/diff';
import { inspect } from './commands/inspect';
import { log } from './commands/log';
import { ls } from './commands/ls';
import { action, EXIT, EXIT_CODES_HELP, intArg, reportError, safe } from './commands/output';
import { parseKeepBest, positiveDays, prune } from './commands/prune';
import { tag } from './commands/tag';
import { exportModel, importModel } from './commands/transfer';
import { verify } from './commands/verify';
import { remoteLs, remotePull, remoteVerify } from './commands/remote';
import { isRemoteUrl } from '../store/remote/url';
import { hasPeer } from '../binding/peer';
import { OPTIMIZER_NAMES } from '../train/model';
import type { FinetuneConfig, TrainConfig, TrainEvent } from '../train/trainer';

function int(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative number`);
    return n;
  };
}

function layers(v: string): number[] {
  const out = v.split(',').map(Number);
  if (out.length === 0 || !out.every((n) => Number.isSafeInteger(n) && n > 0)) throw new InvalidArgumentError('--layers must look like 256,128');
  return out;
}

/** The training flags `train` and `finetune` share. */
function addTrainOptions(cmd: Command, defaultDir: string): Command {
  return cmd
    .option('--dir <dir>', 'checkpoint directory', defaultDir)
    .option('--steps <n>', 'stop after this many steps in total (default: all of --epochs); the LR schedule always spans --epochs', int('--steps', 1))
    .option('--epochs <n>', 'planned length of the run (the LR schedule spans it)', int('--epochs', 1), 6)
    .option('--batch <n>', 'batch size', int('--batch', 1), 64)
    .option('--layers <list>', 'hidden layer sizes', layers, [256, 128])
    .option('--lr <x>', 'peak learning rate', num('--lr'), 2e-3)
    .option('--start-lr <x>', 'learning rate at step 0 of warmup', num('--start-lr'), 0)
    .option('--min-lr <x>', 'final learning rate of the cosine schedule', num('--min-lr'), 1e-5)
    .option('--warmup <n>', 'linear warmup steps', int('--warmup'), 100)
    .addOption(new Option('--schedule <kind>', 'LR schedule after warmup').choices(['cosine', 'constant', 'step']).default('cosine'))
    .addOption(new Option('--optimizer <name>', 'tf.train optimizer').choices([...OPTIMIZER_NAMES]).default('adam'))
    .option('--seed <n>', 'seed for init, split and data order', int('--seed'), 1)
    .option('--save-every <n>', 'checkpoint every N steps', int('--save-every', 1), 50)
    .option('--keep-last <n>', 'checkpoints to keep', int('--keep-last', 1), 3)
    .option('--eval-every <n>', 'validate every N steps', int('--eval-every', 1), 100)
    .option('--resume <mode>', "'auto' (newest valid checkpoint in --dir), 'never', or a checkpoint path", 'auto')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(['wasm', 'cpu', 'webgpu', 'tensorflow']).default('wasm'))
    .addOption(new Option('--log <format>', 'output').choices(['text', 'json']).default('text'))
    .addOption(
      new Option('--compression <codec>', 'compress checkpoint tensors (lz4 on the libuv thread pool; see benches/RESULTS.md for when it pays)')
        .choices(['none', 'lz4'])
        .default('none'),
    )
    .addOption(new Option('--train-limit <n>', 'use only the first N training digits (tests)').argParser(int('--train-limit', 1)).hideHelp())
    .option('--classes <list>', 'digits to train on, e.g. 0-7 or 0,2,4 (the head has max + 1 outputs)', (v: string) => classList(v))
    .option('--tag <name>', 'tag the final checkpoint (tagged checkpoints are never pruned)')
    .option('--dedup', 'store unchanged tensors (a frozen layer) by reference to the checkpoint holding them')
    .option(
      '--remote <s3://bucket/prefix>',
      'replicate every checkpoint to object storage (credentials and endpoint from the AWS environment); an empty --dir resumes from there',
    );
}

function intList(flag: string, v: string): number[] {
  const out = v.split(',').map(Number);
  if (!out.every((n) => Number.isSafeInteger(n) && n >= 0)) throw new InvalidArgumentError(`${flag} must look like 0 or 0,1`);
  return out;
}

function classList(v: string): number[] {
  const out = new Set<number>();
  for (const part of v.split(',')) {
    const m = /^(\d)(?:-(\d))?$/.exec(part.trim());
    if (!m || (m[2] !== undefined && Number(m[2]) < Number(m[1]))) throw new InvalidArgumentError('--classes must look like 0-7 or 0,2,4 (digits 0-9)');
    for (let c = Number(m[1]); c <= Number(m[2] ?? m[1]); c++) out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

// Commander's parsed options are untyped; each one was checked by its own parser above.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function runTrain(o: Record<string, any>, finetune: FinetuneConfig | undefined): Promise<void> {
  requireDemoPackages(o.backend, o.log);
  const { train } = await import('../train/trainer');
  const config: TrainConfig = {
    dir: o.dir,
    steps: o.steps,
    epochs: o.epochs,
    batch: o.batch,
    layers: o.layers,
    lr: o.lr,
    warmup: o.warmup,
    startLr: o.startLr,
    minLr: o.minLr,
    schedule: o.schedule,
    optimizer: o.optimizer,
    seed: o.seed,
    saveEvery: o.saveEvery,
    keepLast: o.keepLast,
    resume: o.resume,
    backend: o.backend,
    evalEvery: o.evalEvery,
    trainLimit: o.trainLimit,
    compression: o.compression,
    classes: o.classes,
    tag: o.tag,
    dedup: !!o.dedup,
    finetune,
    ...(o.remote ? { remote: o.remote } : {}),
  };
  if (o.workers !== undefined) {
    const { trainWorkers } = await import('../train/data-parallel');
    // Every rank's events as JSON lines (with its rank); the text view shows rank 0's progress and every warning.
    const emit = o.log === 'json' ? (e: TrainEvent) => writeLine(JSON.stringify(e)) : workersReporter();
    return trainWorkers(config, o.workers, emit);
  }
  const emit = o.log === 'json' ? (e: TrainEvent) => writeLine(JSON.stringify(e)) : await textReporter();
  await train(config, emit);
}

/** `train --workers` in text: rank 0's saves and end, and warnings from any rank. */
function workersReporter(): (e: TrainEvent & { rank?: number }) => void {
  return (e) => {
    const who = `rank ${e.rank ?? '?'}`;
    if (e.event === 'warning') writeLine(`${who}: warning: ${safe(e.message)}`);
    else if (e.rank !== 0) return;
    else if (e.event === 'start') writeLine(`${e.resumedFrom === null ? 'starting' : `resuming from step ${e.resumedFrom}`}: ${e.totalSteps} steps`);
    else if (e.event === 'durable') writeLine(`step ${e.step} durable on every rank (${safe(e.path)}, ${e.msToDurable.toFixed(0)} ms)`);
    else if (e.event === 'done') writeLine(`done at step ${e.step}; validation accuracy ${e.valAcc === null ? '-' : e.valAcc.toFixed(4)}`);
  };
}

/** The demo needs packages a library user does not: say exactly which are missing, before anything starts. */
function requireDemoPackages(backend: string, log: string): void {
  const needed = ['@tensorflow/tfjs', 'mnist', ...(backend === 'wasm' ? ['@tensorflow/tfjs-backend-wasm'] : []), ...(log === 'text' ? ['cli-progress'] : [])];
  const missing = needed.filter((p) => !hasPeer(p));
  if (missing.length) {
    throw new CheckpointError(
      `ckptio train (the demo) needs ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not installed: npm install ${missing.join(' ')}`,
      { code: 'ECKPT_MISSING_PACKAGE' },
    );
  }
}

function writeLine(text: string): void {
  // Synchronous on purpose: a "durable" line is only ever printed after the commit, and never lost in a
  // pipe buffer when the process is killed right after.
  try {
    fs.writeSync(1, text + '\n');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') readerGone();
    throw err;
  }
}

/** stdout's reader has gone (`ckptio ls DIR | head -1`): stop quietly with status 0, as `git log | head` does. */
function readerGone(): never {
  process.exit(EXIT.ok);
}

export async function main(argv: string[]): Promise<void> {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') readerGone();
    throw err;
  });
  const program = new Command('ckptio')
    .description('Crash-safe, zero-stall checkpoints for TensorFlow.js training')
    .addHelpText('after', EXIT_CODES_HELP)
    // Usage errors are thrown (exit 2, printed as `ckptio: ECKPT_ARGS: ...`) instead of exiting 1 in commander.
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`ckptio: ECKPT_ARGS: ${safe(str.replace(/^error: /, '').trimEnd())}\n`) });

  addTrainOptions(
    program.command('train').description('train an MLP on the embedded MNIST digits, checkpointing as it goes (re-run to resume)'),
    './runs/mnist',
  )
    .option(
      '--workers <n>',
      'data-parallel over N local processes (a demo of sharded checkpoints: each rank saves its shard, a step is durable once every shard is)',
      int('--workers', 1),
    )
    .action(async (o) => runTrain(o, undefined));

  addTrainOptions(
    program
      .command('finetune')
      .description(
        "incremental fine-tuning: start a new run from another run's checkpoint (partial load when the head changed), at a gentler learning rate, recording the parent",
      ),
    './runs/finetune',
  )
    .requiredOption('--from <dir|dir:tag|file>', 'the parent: a run directory (its newest valid checkpoint), DIR:TAG, or a checkpoint file')
    .option('--lr-scale <x>', "the parent's --lr times this (1/5 to 1/10 is usual)", num('--lr-scale'), 0.1)
    .option('--reset-optimizer', "start the optimizer afresh instead of continuing the parent's state")
    .addOption(new Option('--strict <bool>', 'refuse a parent that does not fit exactly').choices(['true', 'false']).default('false'))
    .option('--freeze <layers>', 'indices in model.layers to keep fixed, e.g. 0 or 0,1', (v: string) => intList('--freeze', v), [] as number[])
    .action(async (o) => runTrain(o, { from: o.from, lrScale: o.lrScale, resetOptimizer: !!o.resetOptimizer, strict: o.strict === 'true', freeze: o.freeze }));

  program
    .command('ls <dir>')
    .description(
      'list the checkpoints of a run: step, time, size, metrics, valid, pointers, tags, why kept (read-only, works while a trainer runs); s3://bucket/prefix lists the remote tier',
    )
    .option('--verify', 'also read every checkpoint in full and check its digests')
    .option('--json', 'machine-readable output')
    .action(action((dir: string, o: { verify?: boolean; json?: boolean }) => (isRemoteUrl(dir) ? remoteLs(dir, o) : ls(dir, o))));

  program
    .command('inspect <file>')
    .description('validate a checkpoint (checksums included) and print its tensors and metadata')
    .option('--no-verify', 'skip checksum verification')
    .option('--json', 'machine-readable output')
    .action(action(inspect));

  program
    .command('verify <target>')
    .description(
      'validate a checkpoint file, or every checkpoint, pointer, tag and the manifest of a run directory, or every committed checkpoint of s3://bucket/prefix; exit 1 if anything is bad',
    )
    .option('--json', 'machine-readable output')
    .action(action((target: string, o: { json?: boolean }) => (isRemoteUrl(target) ? remoteVerify(target, o) : verify(target, o))));

  program
    .command('pull <remote> <dir>')
    .description('download the newest committed checkpoint of s3://bucket/prefix that verifies (or --step N), with those it references, into a local directory')
    .option('--step <n>', 'this step instead of the newest', intArg('--step'))
    .option('--json', 'machine-readable output')
    .action(action(remotePull));

  program
    .command('log <dir>')
    .description('the lineage of a run, root first: baseline -> fine-tunes, with steps, metrics, dates and tags (read-only)')
    .option('--json', 'machine-readable output')
    .action(action(log));

  program
    .command('prune <dir>')
    .description(
      'apply retention policies now (takes the run lock: refused while a trainer runs); the newest checkpoint, pointer targets and tagged ones always stay',
    )
    .option('--keep-last <n>', 'keep the newest N', intArg('--keep-last', 1))
    .option(
      '--keep-best <metric:mode[:k]>',
      'keep the K (default 1) best by METRIC, max or min; repeatable (best-<metric> pointer)',
      (v: string, prev?: ReturnType<typeof parseKeepBest>) => parseKeepBest(v, prev),
    )
    .option('--keep-every <steps>', 'keep every checkpoint whose step is a multiple of STEPS (archives)', intArg('--keep-every', 1))
    .option('--keep-within <days>', 'keep everything saved within DAYS', positiveDays('--keep-within'))
    .option(
      '--delete-older-than <days>',
      'what the other policies keep expires after DAYS (protected checkpoints excepted)',
      positiveDays('--delete-older-than'),
    )
    .option('--dry-run', 'print what would go and what stays; change nothing')
    .option('--json', 'machine-readable output')
    .action(action(prune));

  program
    .command('diff <a> <b>')
    .description('compare two checkpoint files: tensors only in A or B, dtype/shape changes, equal bytes and max abs difference')
    .option('--no-verify', 'skip checksum verification')
    .option('--json', 'machine-readable output')
    .action(action(diff));

  program
    .command('tag <dir> <step> <name>')
    .description('tag a committed checkpoint (tagged checkpoints are never pruned); takes the run lock')
    .action(action(tag));

  program
    .command('export <file> <outdir>')
    .description("write a ckptio ioHandler file as tfjs's model.json + weights (loadable with tf.loadLayersModel)")
    .option('--no-verify', 'skip checksum verification of FILE')
    .option('--json', 'machine-readable output')
    .action(action(exportModel));

  program
    .command('import <dir> <file>')
    .description('convert a tfjs model.json directory into one ckptio ioHandler file')
    .option('--json', 'machine-readable output')
    .action(action(importModel));

  program
    .command('report <dir>')
    .description('an HTML page (and PNG) of loss and metrics per step across the lineage, marking checkpoints, fine-tunes and tags (read-only)')
    .requiredOption('--out <file>', 'where to write the HTML page')
    .option('--png <file>', 'also a PNG screenshot (needs chromium and the playwright-core package)')
    .action(async (dir: string, o: { out: string; png?: string }) => {
      const { reportCommand } = await import('./report');
      const r = await reportCommand(dir, { out: o.out, ...(o.png ? { png: o.png } : {}) });
      for (const w of r.warnings) process.stderr.write(`ckptio: warning: ${safe(w)}\n`);
      writeLine(`${safe(r.html)}: ${r.runs} run(s), ${r.checkpoints} checkpoint(s)${r.png ? `, ${safe(r.png)}` : ''}`);
    });

  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // --help and --version exit 0; everything else commander refuses is a usage error.
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
}

async function textReporter(): Promise<(e: TrainEvent) => void> {
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar(
    {
      format: 'step {value}/{total} |{bar}| loss {loss} lr {lr} val {val} | save stall {stall} durable {durable}{remote}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
    },
    Presets.shades_classic,
  );
  const payload = { loss: '-', lr: '-', val: '-', stall: '-', durable: '-', remote: '' };
  let started = false;
  return (e) => {
    switch (e.event) {
      case 'start':
        console.log(e.resumedFrom !== null ? `resumed from step ${e.resumedFrom} (${e.path})` : 'starting a new run');
        console.log(`backend ${e.backend}, ${e.totalSteps} steps, ${e.stepsPerEpoch} per epoch`);
        bar.start(e.totalSteps, e.resumedFrom ?? 0, payload);
        started = true;
        break;
      case 'step':
        payload.loss = e.loss.toFixed(4);
        payload.lr = e.lr.toExponential(2);
        bar.update(e.step, payload);
        break;
      case 'eval':
        payload.val = `${(e.valAcc * 100).toFixed(2)}%`;
        bar.update(e.step, payload);
        break;
      case 'save':
        payload.stall = `${e.stallMs.toFixed(2)}ms`;
        break;
      case 'durable':
        payload.durable = `${e.msToDurable.toFixed(0)}ms`;
        break;
      case 'upload':
        payload.remote = ` remote: step ${e.step} ${Math.floor((100 * e.sent) / Math.max(1, e.total))}%`;
        break;
      case 'replicated':
        payload.remote = ` remote: step ${e.step} in ${e.msToReplicated.toFixed(0)}ms`;
        break;
      case 'warning':
        if (started) bar.stop();
        console.warn(`warning: ${safe(e.message)}`);
        break;
      case 'finetune':
        console.log(
          `fine-tuning from ${e.parent} (step ${e.parentStep}) at lr ${e.lr.toExponential(2)}: ${e.restored} tensors loaded` +
            (e.notLoaded.length ? `; not loaded (new or changed): ${e.notLoaded.map(safe).join(', ')}` : ''),
        );
        break;
      case 'classes': {
        const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(2)}%`);
        if (started && e.phase === 'after') bar.stop();
        console.log(`${e.phase} (step ${e.step}): old classes ${e.old.join(',')} ${pct(e.oldAcc)}; new classes ${e.new.join(',') || '-'} ${pct(e.newAcc)}`);
        break;
      }
      case 'stopped':
        bar.stop();
        console.log(`${e.signal}: stopped after step ${e.step}; the checkpoint is durable. Run the same command to resume.`);
        break;
      case 'done':
        bar.stop();
        console.log(`done: step ${e.step}, validation accuracy ${e.valAcc === null ? '-' : (e.valAcc * 100).toFixed(2) + '%'}, checkpoint ${e.path}`);
        break;
    }
  };
}

if (require.main === module) {
  main(process.argv).catch((err: unknown) => {
    // The exit codes --help documents (a missing optional package is 5), the message made safe for a terminal.
    reportError(err);
    process.exit(process.exitCode ?? EXIT.other);
  });
}
