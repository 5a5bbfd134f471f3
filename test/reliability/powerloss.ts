/** The power-loss loop on real kernel file systems: a loop-mounted XFS or ext4 (noauto_da_alloc) image, the
 * trainer saving every step into it, and at a random moment FS_IOC_SHUTDOWN without a log flush
 * (`xfs_io -x -c shutdown`), which drops everything the file system had not made durable, as a power cut
 * would (and, unlike a kill, loses what the page cache and the log had not written). Then unmount, mount (journal recovery), and check what survived before the next round resumes
 * from it. Used by test/reliability/powerloss.test.ts and `npm run soak`. */
import '../../src/platform/node';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readPointer, stepOf, POINTER_LATEST } from '../../src/checkpoint/directory';
import { MANIFEST_NAME, parseManifest } from '../../src/checkpoint/manifest';
import { CLI, SMALL, TrainEventLine } from '../soak/trainer-child';

export type FsKind = 'xfs' | 'ext4';

export interface PowerLossResult {
  fs: FsKind;
  shutdowns: number;
  /** Rounds in which the newest step acknowledged durable before the shutdown was missing afterwards. */
  lostAcknowledged: number;
  /** Checkpoint files present after recovery that fail validation (torn, truncated, zero-length). */
  invalidFiles: number;
  /** Rounds in which the `latest` pointer was missing, behind an acknowledged step, or named a bad file. */
  badPointer: number;
  /** Rounds whose restart did not resume from at least the newest acknowledged step. */
  badResume: number;
  acknowledged: number;
  details: string[];
}

/** Why the power-loss tests cannot run here, or null when they can. */
export function powerLossUnavailable(): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (loop devices and mount)';
  for (const cmd of ['losetup', 'mount', 'umount', 'mkfs.xfs', 'mkfs.ext4', 'xfs_io']) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) return `${cmd} is not installed (apt-get install xfsprogs e2fsprogs mount)`;
  }
  const probe = spawnSync('losetup', ['-f']);
  if (probe.status !== 0) return `no free loop device: ${probe.stderr.toString().trim()}`;
  return null;
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
}

export class LoopFs {
  readonly image: string;
  readonly mnt: string;
  private mounted = false;

  constructor(
    readonly kind: FsKind,
    private readonly root: string,
  ) {
    this.image = path.join(root, `${kind}.img`);
    this.mnt = path.join(root, 'mnt');
    fs.mkdirSync(this.mnt);
    // mkfs.xfs refuses images under 300 MB; the file is sparse.
    fs.writeFileSync(this.image, '');
    fs.truncateSync(this.image, kind === 'xfs' ? 320 * 2 ** 20 : 96 * 2 ** 20);
    if (kind === 'xfs') sh('mkfs.xfs', ['-q', '-f', this.image]);
    else sh('mkfs.ext4', ['-q', '-F', this.image]);
  }

  mount(): void {
    // ext4's auto_da_alloc flushes a file replaced by rename, which would hide a missing fdatasync.
    sh('mount', ['-o', this.kind === 'ext4' ? 'loop,noauto_da_alloc' : 'loop', this.image, this.mnt]);
    this.mounted = true;
  }

  /** FS_IOC_SHUTDOWN without flushing the log: what was not durable is gone. */
  shutdown(): void {
    sh('xfs_io', ['-x', '-c', 'shutdown', this.mnt]);
  }

  /** A killed process's files are released a moment after its exit is reported, so a busy mount is retried. */
  unmount(): void {
    if (!this.mounted) return;
    for (let attempt = 0; ; attempt++) {
      const r = spawnSync('umount', [this.mnt], { encoding: 'utf8' });
      if (r.status === 0) break;
      if (attempt === 50) {
        const users = spawnSync('fuser', ['-vm', this.mnt], { encoding: 'utf8' });
        throw new Error(`umount ${this.mnt} failed: ${r.stderr.trim()} ${users.stdout}${users.stderr}`);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
    this.mounted = false;
  }

  /** Never throws (it runs in `finally`, where it must not hide the real failure). */
  dispose(): void {
    if (this.mounted && spawnSync('umount', [this.mnt]).status !== 0) spawnSync('umount', ['-l', this.mnt]);
    this.mounted = false;
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

interface Round {
  events: TrainEventLine[];
  ackedBeforeShutdown: number;
  stderr: string;
}

/** Starts the trainer and, as it reports its `afterAcks`-th durable save, freezes it (SIGSTOP), shuts the file
 * system down and kills it. Freezing at the moment an acknowledgement is read is the harshest moment for the
 * protocol: the next save's fdatasync, which would also force the previous rename into the log, has most
 * likely not run yet. */
function trainUntilShutdown(lfs: LoopFs, dir: string, afterAcks: number, env: NodeJS.ProcessEnv): Promise<Round> {
  return new Promise((resolve, reject) => {
    const args = [CLI, 'train', ...SMALL, '--steps', '1000000', '--save-every', '1', '--keep-last', '3', '--backend', 'wasm', '--dir', dir];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const events: TrainEventLine[] = [];
    let partial = '';
    let stderr = '';
    let acks = 0;
    let ackedBeforeShutdown: number | null = null;
    let failure: Error | null = null;
    child.stdout.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{') || ackedBeforeShutdown !== null) continue;
        const e = JSON.parse(line) as TrainEventLine;
        events.push(e);
        if (e.event !== 'durable' || e.step === undefined || ++acks < afterAcks) continue;
        child.kill('SIGSTOP');
        // Only acknowledgements read before the shutdown are claims we can hold the file system to.
        ackedBeforeShutdown = e.step;
        try {
          lfs.shutdown();
        } catch (err) {
          failure = err as Error;
        }
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (failure) return reject(failure);
      if (ackedBeforeShutdown === null) return reject(new Error(`trainer ended before the shutdown (${code ?? signal}): ${stderr}`));
      resolve({ events, ackedBeforeShutdown, stderr });
    });
  });
}

export async function powerLossLoop(opts: {
  fs: FsKind;
  rounds: number;
  /** Another build of the addon for the trainer (the deliberately broken ones). */
  addon?: string;
  /** Stop at the first round that finds a loss (for the broken-build demonstration). */
  stopAtFirstLoss?: boolean;
  seed?: number;
  log?: (m: string) => void;
}): Promise<PowerLossResult> {
  const lfs = new LoopFs(opts.fs, fs.mkdtempSync(path.join(os.tmpdir(), `ckptio-powerloss-${opts.fs}-`)));
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (opts.addon) env.CKPTIO_ADDON = opts.addon;
  let seed = opts.seed ?? 2024;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const r: PowerLossResult = { fs: opts.fs, shutdowns: 0, lostAcknowledged: 0, invalidFiles: 0, badPointer: 0, badResume: 0, acknowledged: 0, details: [] };
  const note = (m: string) => {
    r.details.push(m);
    opts.log?.(m);
  };
  let prevAcked = -1;
  try {
    lfs.mount();
    const dir = path.join(lfs.mnt, 'run');
    for (let round = 0; round < opts.rounds; round++) {
      const round0 = await trainUntilShutdown(lfs, dir, 1 + Math.floor(rand() * 60), env);
      r.shutdowns++;
      const start = round0.events.find((e) => e.event === 'start');
      if (prevAcked >= 0 && (start?.resumedFrom ?? -1) < prevAcked) {
        r.badResume++;
        note(`round ${round}: resumed from ${start?.resumedFrom ?? 'nothing'} after step ${prevAcked} had survived`);
      }
      const acked = round0.ackedBeforeShutdown;
      r.acknowledged += round0.events.filter((e) => e.event === 'durable').length;
      lfs.unmount();
      lfs.mount();
      // Validated by `ckptio verify` in a child: a read maps the file, and our own mappings would keep the
      // file system busy at the next unmount.
      const verify = spawnSync(process.execPath, [CLI, 'verify', dir], { encoding: 'utf8' });
      let newestValid = -1;
      for (const line of verify.stdout.split('\n')) {
        const ok = /^ok\s+(\S+)/.exec(line);
        const step = ok ? stepOf(ok[1]!) : null;
        if (step !== null) newestValid = Math.max(newestValid, step);
        if (line.startsWith('FAIL')) {
          r.invalidFiles++;
          note(`${opts.fs} round ${round}: present but invalid after recovery: ${line}`);
        }
      }
      if (verify.status !== 0 && !verify.stdout.includes('FAIL')) throw new Error(`ckptio verify failed: ${verify.stderr}`);
      if (newestValid < acked) {
        r.lostAcknowledged++;
        note(`${opts.fs} round ${round}: step ${acked} was acknowledged durable before the shutdown; newest valid after recovery is ${newestValid}`);
      }
      const latest = await readPointer(dir, POINTER_LATEST).catch(() => null);
      if (!latest || latest.step < acked || !fs.existsSync(path.join(dir, latest.file)) || latest.step > newestValid) {
        r.badPointer++;
        note(
          `${opts.fs} round ${round}: latest pointer ${latest ? `${latest.step} (${latest.file})` : 'missing or unreadable'}, acknowledged ${acked}, newest valid ${newestValid}`,
        );
      }
      // The run manifest is part of what an acknowledged save made durable (it is written inside the save's job).
      const manifestFile = path.join(dir, MANIFEST_NAME);
      let listed = false;
      try {
        listed = parseManifest(fs.readFileSync(manifestFile), manifestFile).entries.some((e) => e.step === acked);
      } catch {
        /* missing or invalid: counted below (verify already named an invalid one) */
      }
      if (!listed) {
        r.badPointer++;
        note(`${opts.fs} round ${round}: the manifest does not list step ${acked}, acknowledged before the shutdown`);
      }
      prevAcked = newestValid;
      const lost = r.lostAcknowledged + r.invalidFiles + r.badPointer + r.badResume;
      if (opts.stopAtFirstLoss && lost > 0) return r;
    }
    // The last round's survivors are resumed from too (earlier rounds' by the round after them).
    const last = spawnSync(
      process.execPath,
      [CLI, 'train', ...SMALL, '--steps', String(prevAcked + 1), '--save-every', '1', '--backend', 'wasm', '--dir', dir],
      { encoding: 'utf8', env },
    );
    const start = last.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as TrainEventLine)
      .find((e) => e.event === 'start');
    if (last.status !== 0 || (start?.resumedFrom ?? -1) < prevAcked) {
      r.badResume++;
      note(`${opts.fs} final resume: exit ${last.status}, resumed from ${start?.resumedFrom ?? 'nothing'}, newest valid ${prevAcked}: ${last.stderr.trim()}`);
    }
  } finally {
    lfs.dispose();
  }
  return r;
}
