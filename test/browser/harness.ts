/** The browser tests' harness: a static server for the test page (COOP/COEP, so the page is cross-origin isolated
 * and shares memory with its worker), and Debian's Chromium started by hand in its own process group, so a test can
 * SIGKILL the whole browser, then driven over CDP by playwright-core. */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { findChromium } from '../../src/cli/report';

/* eslint-disable @typescript-eslint/no-explicit-any */
export const ROOT = path.join(__dirname, '..', '..', '..');
/** What the server serves; nothing else under the root is reachable. */
const SERVED = ['/dist/browser/', '/test/browser/', '/node_modules/@tensorflow/tfjs/dist/', '/node_modules/@tensorflow/tfjs-backend-wasm/dist/'];
const TYPES: Record<string, string> = {
  '.mjs': 'text/javascript',
  '.js': 'text/javascript',
  '.html': 'text/html',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
};

export interface Served {
  url: string;
  close(): Promise<void>;
}

export function serve(): Promise<Served> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const rel = path.posix.normalize(decodeURIComponent(url.pathname));
    const file = path.join(ROOT, rel);
    if (!SERVED.some((p) => rel.startsWith(p)) || !file.startsWith(ROOT + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    // ?isolated=0 serves the page without COOP/COEP: not cross-origin isolated, no SharedArrayBuffer.
    const isolated = url.searchParams.get('isolated') !== '0';
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      ...(isolated ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {}),
      'cross-origin-resource-policy': 'same-origin',
      'cache-control': 'no-store',
    });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({ url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}

export function browserSkipReason(): string | null {
  const c = findChromium();
  if (c.path === null) return c.reason;
  try {
    require.resolve('playwright-core');
  } catch {
    return 'playwright-core is not installed';
  }
  return null;
}

export interface Launched {
  page: any;
  /** Lines the page reported (console lines starting "ckptio-test "), parsed. */
  events: Record<string, unknown>[];
  /** Called with each event as it arrives. */
  onEvent: ((e: Record<string, unknown>) => void) | null;
  /** SIGKILL to every process of the browser at once. */
  kill(): void;
  close(): Promise<void>;
  exited: Promise<void>;
}

/** Chromium with the profile `userDataDir` (where the origin private file system lives, kept across launches), on
 * the test page. */
export async function launch(userDataDir: string, site: Served, options: { isolated?: boolean } = {}): Promise<Launched> {
  const exe = (findChromium() as { path: string }).path;
  const child: ChildProcess = spawn(
    exe,
    [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--no-default-browser-check',
      `--user-data-dir=${userDataDir}`,
      '--remote-debugging-port=0',
      'about:blank',
    ],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const killAll = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  try {
    return await connect(child, exited, killAll, site, options.isolated ?? true);
  } catch (err) {
    // A browser that started but could not be driven must not outlive the test.
    killAll();
    await exited;
    throw err;
  }
}

async function connect(child: ChildProcess, exited: Promise<void>, killAll: () => void, site: Served, isolated: boolean): Promise<Launched> {
  const pw = require('playwright-core');
  const ws = await new Promise<string>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`Chromium did not start: ${err.slice(-2000)}`)), 30_000);
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('exit', (code) => reject(new Error(`Chromium exited (${code}): ${err.slice(-2000)}`)));
  });
  child.stderr!.resume();
  const browser = await pw.chromium.connectOverCDP(ws);
  const context = browser.contexts()[0];
  const page = await context.newPage();
  const launched: Launched = {
    page,
    events: [],
    onEvent: null,
    kill: killAll,
    close: async () => {
      await browser.close().catch(() => {});
      launched.kill();
      await exited;
    },
    exited,
  };
  page.on('console', (msg: any) => {
    const text: string = msg.text();
    if (!text.startsWith('ckptio-test ')) {
      if (msg.type() === 'error') launched.events.push({ consoleError: text });
      if (msg.type() === 'warning') launched.events.push({ consoleWarning: text });
      return;
    }
    const e = JSON.parse(text.slice('ckptio-test '.length)) as Record<string, unknown>;
    launched.events.push(e);
    launched.onEvent?.(e);
  });
  page.on('pageerror', (err: Error) => launched.events.push({ pageError: String(err) }));
  await page.goto(`${site.url}/test/browser/page.html${isolated ? '' : '?isolated=0'}`);
  await page.waitForFunction(() => (globalThis as any).ckptioTest !== undefined, null, { timeout: 30_000 });
  return launched;
}
