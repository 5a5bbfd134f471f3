/** Section `remote` of npm run bench: the remote tier against Ceph RGW on loopback (started here by scripts/rgw.sh
 * when AWS_ENDPOINT_URL is not set), interleaved with what users use today, in one run:
 *
 * - upload: ckptio's replication of one checkpoint file (Content-MD5 per part, the size read back, the commit
 *   record) vs `@aws-sdk/lib-storage`'s Upload of the same file (same part size and concurrency);
 * - download + verify: ckptio's restore (ranged GETs, then every tensor's XXH3 checked) vs a plain GetObject
 *   streamed to a file (no check);
 * - main-thread CPU per save, plain typed arrays, from the call until durable, with replication on (until
 *   `replicated` too) vs off. */
import '../src/platform/node';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import * as S3 from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { writeCheckpoint } from '../src';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { downloadCheckpoint, listCommitted, replicateFile } from '../src/checkpoint/node/remote-run';
import { S3Objects } from '../src/store/remote/s3';
import { parseRemoteUrl } from '../src/store/remote/url';
import { BenchContext, MiB, settledMainThreadSched, stat, state } from './common';

const SCRIPT = path.resolve(__dirname, '..', '..', 'scripts', 'rgw.sh');
const PART = 16 * MiB;
const CONCURRENCY = 4;

function startGateway(workDir: string): (() => void) | string {
  if (process.env.AWS_ENDPOINT_URL) return () => {};
  if (spawnSync('sh', ['-c', 'command -v radosgw']).status !== 0) return 'radosgw is not installed (scripts/rgw.sh install)';
  const dir = path.join(workDir, 'rgw');
  // Below Linux's ephemeral range (32768-60999): an outgoing connection cannot hold the gateway's port.
  execFileSync('bash', [SCRIPT, 'start', dir, String(10000 + Math.floor(Math.random() * 22000))], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (const line of fs.readFileSync(path.join(dir, 'env'), 'utf8').split('\n')) {
    const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) process.env[m[1]!] = m[2]!;
  }
  return () => {
    execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' });
    for (const k of ['AWS_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'CKPTIO_TEST_BUCKET']) delete process.env[k];
  };
}

const mibps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const fmtRate = (s: { median: number; min: number; max: number }) => `${s.median.toFixed(0)} (${s.min.toFixed(0)}..${s.max.toFixed(0)})`;

export async function remoteBench(ctx: BenchContext): Promise<void> {
  ctx.rows.push('## Remote tier: object storage (Ceph RGW 16.2 on loopback)', '');
  const stop = startGateway(ctx.workDir);
  if (typeof stop === 'string') {
    ctx.rows.push(`Not measured: ${stop}.`, '');
    return;
  }
  try {
    const bucket = process.env.CKPTIO_TEST_BUCKET ?? 'ckptio';
    const url = `s3://${bucket}/bench-${process.pid}`;
    const objects = new S3Objects(parseRemoteUrl(url), { partBytes: PART, concurrency: CONCURRENCY });
    await objects.createBucket();
    const client = new S3.S3Client({
      forcePathStyle: true,
      region: process.env.AWS_REGION ?? 'us-east-1',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const mib = ctx.quick ? 64 : 256;
    const file = path.join(ctx.workDir, 'remote-ckpt.safetensors');
    await writeCheckpoint(file, state(mib * MiB), {});
    const bytes = fs.statSync(file).size;
    const up: Record<'ckptio' | 'lib-storage', number[]> = { ckptio: [], 'lib-storage': [] };
    const down: Record<'ckptio' | 'GetObject', number[]> = { ckptio: [], GetObject: [] };
    for (let r = 0; r < ctx.reps; r++) {
      let t0 = performance.now();
      const commit = await replicateFile(objects, file, { file: 'ckpt-0000000001.safetensors', contentId: null, refs: [], writer: 'b0' });
      up.ckptio.push(mibps(bytes, performance.now() - t0));
      t0 = performance.now();
      await new Upload({
        client,
        params: { Bucket: bucket, Key: `bench-${process.pid}/plain`, Body: fs.createReadStream(file) },
        partSize: PART,
        queueSize: CONCURRENCY,
      }).done();
      up['lib-storage'].push(mibps(bytes, performance.now() - t0));
      const into = fs.mkdtempSync(path.join(ctx.workDir, 'down-'));
      t0 = performance.now();
      await downloadCheckpoint(objects, commit, into);
      down.ckptio.push(mibps(bytes, performance.now() - t0));
      t0 = performance.now();
      const got = await client.send(new S3.GetObjectCommand({ Bucket: bucket, Key: `bench-${process.pid}/plain` }));
      await pipeline(got.Body as Readable, fs.createWriteStream(path.join(into, 'plain')));
      down.GetObject.push(mibps(bytes, performance.now() - t0));
      fs.rmSync(into, { recursive: true, force: true });
      // The engine keeps objects in memory: remove this repetition's.
      await objects.remove(`ckpt-0000000001.safetensors~${commit.id}.commit`);
      await objects.remove(`ckpt-0000000001.safetensors~${commit.id}`);
      await objects.remove('plain');
    }
    const upS = { ckptio: stat(up.ckptio), lib: stat(up['lib-storage']) };
    const downS = { ckptio: stat(down.ckptio), get: stat(down.GetObject) };

    // Main-thread CPU per save with replication on vs off, interleaved.
    const saveMiB = ctx.quick ? 8 : 32;
    const tensors = state(saveMiB * MiB);
    const cpu: Record<'off' | 'on', number[]> = { off: [], on: [] };
    const ckptOff = new Checkpointer({ dir: path.join(ctx.workDir, 'remote-off'), keepLast: 2, onWarning: () => {} });
    const ckptOn = new Checkpointer({ dir: path.join(ctx.workDir, 'remote-on'), keepLast: 2, onWarning: () => {}, remote: { url: `${url}-cpu`, keepLast: 1 } });
    for (let i = 1; i <= ctx.reps + 1; i++) {
      for (const [mode, ckpt] of [
        ['off', ckptOff],
        ['on', ckptOn],
      ] as const) {
        const c0 = (await settledMainThreadSched()).cpuMs;
        const h = await ckpt.save(i, { tensors });
        await h.durable;
        await h.replicated;
        const ms = (await settledMainThreadSched()).cpuMs - c0 - 0.2; // minus the settled read's own cost
        if (i > 1) cpu[mode].push(ms); // the first save opens the run (and, on, starts the worker)
      }
    }
    await ckptOff.close();
    await ckptOn.close();
    const committed = await listCommitted(new S3Objects(parseRemoteUrl(`${url}-cpu`)), () => {});
    const cpuS = { off: stat(cpu.off), on: stat(cpu.on) };
    client.destroy();
    objects.destroy();

    ctx.rows.push(
      `One ${(bytes / MiB).toFixed(0)} MiB checkpoint file, ${ctx.reps} interleaved repetitions, parts of ${PART / MiB} MiB, ${CONCURRENCY} in flight, MiB/s median (min..max). ` +
        'ckptio upload: data object with Content-MD5 per part, size read back, commit record (If-None-Match). lib-storage: `new Upload({ partSize, queueSize }).done()` of the same file, no integrity check. ' +
        "ckptio download: ranged GETs to a temporary file, every tensor's XXH3 verified, fsync, rename. GetObject: one streamed GET to a file, nothing verified. Goal: ckptio >= 0.8x.",
      '',
      '| direction | ckptio MiB/s | baseline | baseline MiB/s | ckptio vs baseline | goal |',
      '|---|---|---|---|---|---|',
      `| upload | ${fmtRate(upS.ckptio)} | lib-storage Upload | ${fmtRate(upS.lib)} | ${(upS.ckptio.median / upS.lib.median).toFixed(2)}x | ${upS.ckptio.median / upS.lib.median >= 0.8 ? 'met' : 'NOT met'} |`,
      `| download + verify | ${fmtRate(downS.ckptio)} | GetObject to a file | ${fmtRate(downS.get)} | ${(downS.ckptio.median / downS.get.median).toFixed(2)}x | ${downS.ckptio.median / downS.get.median >= 0.8 ? 'met' : 'NOT met'} |`,
      '',
      `Main-thread CPU per save of ${saveMiB} MiB of plain typed arrays (default options), from the call until \`durable\` (off) or until \`replicated\` too (on), the thread idle meanwhile, ${ctx.reps} interleaved pairs: ` +
        `off ${cpuS.off.median.toFixed(2)} ms (${cpuS.off.min.toFixed(2)}..${cpuS.off.max.toFixed(2)}), on ${cpuS.on.median.toFixed(2)} ms (${cpuS.on.min.toFixed(2)}..${cpuS.on.max.toFixed(2)}): ` +
        `${(cpuS.on.median - cpuS.off.median).toFixed(2)} ms more with replication (goal: <= 0.2 ms more, ${cpuS.on.median - cpuS.off.median <= 0.2 ? 'met' : 'NOT met'}). ${committed.length} checkpoint(s) committed remotely at the end (remote keepLast 1).`,
      '',
    );
    ctx.results['remote:upload'] = { bytes, ckptioMiBps: upS.ckptio, libStorageMiBps: upS.lib, ratio: upS.ckptio.median / upS.lib.median };
    ctx.results['remote:download'] = { bytes, ckptioMiBps: downS.ckptio, getObjectMiBps: downS.get, ratio: downS.ckptio.median / downS.get.median };
    ctx.results['remote:cpuPerSave'] = { saveMiB, offMs: cpuS.off, onMs: cpuS.on, extraMs: cpuS.on.median - cpuS.off.median };
  } finally {
    stop();
  }
}
