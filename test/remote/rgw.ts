/** A Ceph RADOS Gateway for the remote-tier tests, started by scripts/rgw.sh in a temporary directory on a free
 * port and stopped when the tests end. Where radosgw is not installed the tests skip, unless CKPTIO_REQUIRE_RGW=1
 * (CI), where they fail. */
import '../../src/platform/node';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { S3Objects } from '../../src/store/remote/s3';
import { parseRemoteUrl } from '../../src/store/remote/url';
import { tempDir } from '../helpers';

export const SCRIPT = path.resolve(__dirname, '..', '..', '..', 'scripts', 'rgw.sh');

export const rgwSkip: string | false =
  spawnSync('sh', ['-c', 'command -v radosgw && command -v ceph-mon && command -v ceph-osd']).status === 0
    ? false
    : 'radosgw is not installed (scripts/rgw.sh install)';

export interface Gateway {
  dir: string;
  env: Record<string, string>;
  bucket: string;
  /** A fresh prefix in the test bucket: s3://bucket/<name>-<n>. */
  url(name: string): string;
  objects(url: string): S3Objects;
  /** SIGKILLs radosgw and starts it again. */
  restart(): void;
  stop(): void;
}

let prefixes = 0;

/** Whether nothing listens on the port now (a quick bind on loopback). */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function startGateway(): Promise<Gateway> {
  let dir = '';
  // Ports below Linux's ephemeral range (32768-60999), so an outgoing connection cannot take the gateway's port
  // between the check and radosgw's bind; a start that fails anyway is stopped and retried on another port.
  for (let attempt = 1; ; attempt++) {
    dir = tempDir('ckptio-rgw-');
    let port: number;
    do port = 10000 + Math.floor(Math.random() * 22000);
    while (!(await portFree(port)));
    try {
      execFileSync('bash', [SCRIPT, 'start', dir, String(port)], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 180_000 });
      break;
    } catch (err) {
      spawnSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' });
      if (attempt >= 3) throw err;
    }
  }
  const env: Record<string, string> = {};
  for (const line of fs.readFileSync(path.join(dir, 'env'), 'utf8').split('\n')) {
    const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  Object.assign(process.env, env);
  const bucket = env.CKPTIO_TEST_BUCKET!;
  const gw: Gateway = {
    dir,
    env,
    bucket,
    url: (name) => `s3://${bucket}/${name}-${process.pid}-${++prefixes}`,
    objects: (url) => new S3Objects(parseRemoteUrl(url), { partBytes: 5 << 20 }),
    restart: () => execFileSync('bash', [SCRIPT, 'restart-gateway', dir], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 }),
    stop: () => execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' }),
  };
  await gw.objects(`s3://${bucket}`).createBucket();
  return gw;
}
