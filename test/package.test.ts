/** The package as a user gets it: `npm pack`, then install the tarball into a fresh project on a PATH with node
 * and npm but no compiler, cmake, make or python, and use it from CommonJS, ESM and TypeScript. The addon that
 * loads must be the tarball's prebuilt one. CKPTIO_PACKAGE_TGZ=<file> skips the pack and tests that tarball
 * (scripts/node-matrix.sh uses it to run the install round trip once per Node version). */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '..', '..');

/** node, npm, npx, sh, env (and bash, which some npm shims use): nothing that compiles. */
function toolDir(dir: string): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const which = (cmd: string): string | undefined => {
    const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
    return r.status === 0 && r.stdout.trim() ? fs.realpathSync(r.stdout.trim()) : undefined;
  };
  const tools: Record<string, string | undefined> = {
    node: process.execPath,
    npm: which('npm'),
    npx: which('npx'),
    sh: which('sh'),
    env: which('env'),
    bash: which('bash'),
  };
  for (const [name, target] of Object.entries(tools)) {
    if (!target) continue;
    fs.symlinkSync(target, path.join(bin, name));
  }
  return bin;
}

/** The parent's environment without what would steer the child away from a user's: the test runner's context,
 * npm's lifecycle variables (when run under `npm test`), the addon overrides. */
function userEnv(bin: string, home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k === 'NODE_TEST_CONTEXT' || k.startsWith('CKPTIO_') || k === 'NODE_OPTIONS' || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  env.PATH = bin;
  env.HOME = home;
  return env;
}

const CJS = `'use strict';
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { writeCheckpoint, readCheckpoint, CheckpointError } = require('ckptio');
(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-cjs-'));
  const file = path.join(dir, 'a.safetensors');
  const data = new Float32Array([1.5, -2, 3.25, 4]);
  const w = await writeCheckpoint(file, { w: { dtype: 'float32', shape: [2, 2], data } }, { metadata: { from: 'cjs' } });
  const r = await readCheckpoint(file);
  if (!r.verified || r.metadata.from !== 'cjs' || Buffer.compare(Buffer.from(r.tensors.w.data.buffer, r.tensors.w.data.byteOffset, 16), Buffer.from(data.buffer)) !== 0) throw new Error('round trip differs');
  let code;
  try { await readCheckpoint(path.join(dir, 'missing.safetensors')); } catch (e) { code = e instanceof CheckpointError ? e.code : 'not a CheckpointError'; }
  const addons = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && /ckptio[^/]*\\.node$/.test(p));
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ bytes: w.bytes, code, addons: [...new Set(addons)] }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

const ESM = `import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { createRequire } from 'node:module';
import { Checkpointer, CheckpointError } from 'ckptio';
import ckptio from 'ckptio';
const require = createRequire(import.meta.url);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-esm-'));
const ckpt = new Checkpointer({ dir, keepLast: 2, onWarning: () => {} });
const data = new Int32Array([7, -8, 9]);
const h = await ckpt.save(3, { tensors: { t: { dtype: 'int32', shape: [3], data } }, state: { step: 3 } });
await h.durable;
await ckpt.close();
const again = new Checkpointer({ dir, onWarning: () => {} });
const back = await again.loadLatest();
await again.close();
if (!back || back.step !== 3 || Array.from(back.tensors.t.data).join() !== '7,-8,9' || back.state.step !== 3) throw new Error('save/load differs');
const addons = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && /ckptio[^/]*\\.node$/.test(p));
fs.rmSync(dir, { recursive: true, force: true });
// Node >= 23 also names the whole CommonJS object 'module.exports'.
const named = Object.keys(await import('ckptio')).filter((k) => !['default', '__esModule', 'module.exports'].includes(k)).sort();
const required = Object.keys(require('ckptio')).filter((k) => k !== '__esModule').sort();
console.log(JSON.stringify({
  sameClass: CheckpointError === require('ckptio').CheckpointError && ckptio.Checkpointer === Checkpointer,
  sameNames: named.join() === required.join() ? true : named.join() + ' vs ' + required.join(),
  addons: [...new Set(addons)],
}));
`;

const TS_ESM = `import { Checkpointer, readCheckpoint, writeCheckpoint, CheckpointError } from 'ckptio';
import type { ReadResult, TensorEntry, WriteResult } from 'ckptio';
export async function roundTrip(file: string): Promise<number> {
  const t: TensorEntry = { dtype: 'float32', shape: [1], data: new Float32Array([1]) };
  const w: WriteResult = await writeCheckpoint(file, { t });
  const r: ReadResult = await readCheckpoint(file, { verify: true });
  const c = new Checkpointer({ dir: '.', keepLast: 1 });
  await c.close();
  const e: unknown = null;
  if (e instanceof CheckpointError) { const code: string = e.code; return code.length; }
  return w.bytes + r.bytes;
}
`;

const TS_BROWSER = `import { Checkpointer, OpfsStore, fitCheckpoint, CheckpointError } from 'ckptio/browser';
import type { CheckpointerOptions, OpfsStoreStats } from 'ckptio/browser';
export function make(): [Checkpointer, OpfsStoreStats, typeof fitCheckpoint] {
  const options: CheckpointerOptions = { store: new OpfsStore('runs/a'), keepLast: 2 };
  const c = new Checkpointer(options);
  const e: unknown = null;
  if (e instanceof CheckpointError) throw e;
  return [c, (c.store as OpfsStore).stats, fitCheckpoint];
}
`;

const TS_CJS = `import ckptio = require('ckptio');
export function make(dir: string): ckptio.Checkpointer {
  const bytes: number = 1;
  void bytes;
  return new ckptio.Checkpointer({ dir, maxInflight: 1, onFull: 'skip' });
}
`;

test('the packed tarball installs without a compiler and works from CommonJS, ESM and TypeScript', { timeout: 240_000 }, () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-pkg-'));
  try {
    // 1. The tarball, and what is in it.
    let tgz = process.env.CKPTIO_PACKAGE_TGZ;
    // The linux-arm64 prebuilt is cross-built by prepack with aarch64-linux-gnu-g++. A machine without that
    // compiler packs without it (CKPTIO_PREPACK_PARTIAL), unless CKPTIO_REQUIRE_ARM64=1 (CI) makes that a failure.
    const crossCompiler = spawnSync('sh', ['-c', 'command -v aarch64-linux-gnu-g++']).status === 0;
    const expectArm64 = crossCompiler || process.env.CKPTIO_REQUIRE_ARM64 === '1';
    if (!tgz) {
      const t0 = Date.now();
      const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, NODE_TEST_CONTEXT: undefined, CKPTIO_PREPACK_PARTIAL: expectArm64 ? undefined : '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 64 << 20,
      });
      // The build scripts (prepack, prepare) print to stdout too; npm's JSON comes last.
      const info = JSON.parse(out.slice(out.lastIndexOf('\n[\n') + 1)) as { filename: string; size: number }[];
      tgz = path.join(work, path.basename(info[0].filename));
      console.log(`npm pack: ${((Date.now() - t0) / 1000).toFixed(1)} s, ${(info[0].size / 1024).toFixed(0)} KiB`);
    }
    tgz = path.resolve(tgz);
    const listing = execFileSync('tar', ['tzf', tgz], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    assert.ok(listing.includes('prebuilds/linux-x64/ckptio.glibc.node'), 'the linux-x64 prebuilt addon is in the tarball');
    if (expectArm64) assert.ok(listing.includes('prebuilds/linux-arm64/ckptio.glibc.node'), 'the linux-arm64 prebuilt addon is in the tarball');
    else console.log('no aarch64-linux-gnu-g++ here: the tarball was packed without prebuilds/linux-arm64/');
    assert.ok(listing.includes('index.mjs') && listing.includes('dist/src/index.d.ts'), 'ESM wrapper and types');
    for (const f of ['dist/browser/ckptio.mjs', 'dist/browser/opfs-worker.mjs', 'dist/browser/types/browser.d.ts'])
      assert.ok(listing.includes(f), `ckptio/browser: ${f} is in the tarball`);
    const unwanted = listing.filter(
      (f) =>
        /^(dist\/)?(test|benches)\//.test(f) ||
        /(^|\/)(build|build-[^/]+)\//.test(f) ||
        /\.test\.[jt]s$/.test(f) ||
        /(^|\/)corpus\//.test(f) ||
        /^src\//.test(f) ||
        /\.tsbuildinfo$/.test(f) ||
        /^node_modules\//.test(f),
    );
    assert.deepEqual(unwanted, [], 'no tests, benches, fuzz corpora, build trees or sources of the JS');
    const pkg = JSON.parse(execFileSync('tar', ['xzOf', tgz, 'package/package.json'], { encoding: 'utf8' })) as {
      scripts?: Record<string, string>;
      gypfile?: boolean;
    };
    for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(pkg.scripts?.[s], undefined, `no ${s} script`);
    // npm adds an implicit `node-gyp rebuild` install for a package with binding.gyp unless gypfile is false.
    if (listing.includes('binding.gyp')) assert.equal(pkg.gypfile, false, 'binding.gyp shipped, so gypfile: false');

    // 2. A fresh project, installed on a PATH without compilers.
    const bin = toolDir(work);
    for (const tool of ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'cmake', 'python3', 'python', 'node-gyp']) {
      assert.equal(fs.existsSync(path.join(bin, tool)), false);
    }
    const app = path.join(work, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const env = userEnv(bin, process.env.HOME ?? os.homedir());
    const t1 = Date.now();
    const install = spawnSync(
      'npm',
      ['install', tgz, '@tensorflow/tfjs@^4.22.0', 'typescript@^5.9.3', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'],
      { cwd: app, env, encoding: 'utf8' },
    );
    assert.equal(install.status, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
    console.log(`npm install (tarball + @tensorflow/tfjs + typescript): ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    const lock = JSON.parse(fs.readFileSync(path.join(app, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { hasInstallScript?: boolean; dev?: boolean }>;
    };
    const scripted = Object.entries(lock.packages)
      .filter(([k, v]) => v.hasInstallScript && k.startsWith('node_modules/') && !/^node_modules\/(@tensorflow\/[^/]+|typescript|core-js)$/.test(k))
      .map(([k]) => k);
    // The user's own tfjs brings core-js (a postinstall); ckptio and what it depends on bring none.
    assert.deepEqual(scripted, [], "no package of ckptio's has an install script");
    // npm 11 lists every install-relevant script it would run, `prepare` included for a tarball install.
    const flagged = `${install.stdout}\n${install.stderr}`
      .split('\n')
      .map((l) => /^npm warn install-scripts\s+(@?[^@\s]+)@\S+ \(/.exec(l)?.[1])
      .filter((n): n is string => !!n)
      .filter((n) => !/^(@tensorflow\/.*|core-js)$/.test(n));
    assert.deepEqual(flagged, [], 'npm flags no script of ckptio or its dependencies (allowScripts)');
    const installed = fs.realpathSync(path.join(app, 'node_modules', 'ckptio'));
    const prebuilt = path.join(installed, 'prebuilds', `${process.platform}-${process.arch}`, 'ckptio.glibc.node');

    // 3. CommonJS and ESM round trips; the addon in the process is the tarball's.
    const runIn = (file: string, text: string): { bytes?: number; code?: string; addons: string[]; sameClass?: boolean; sameNames?: boolean | string } => {
      fs.writeFileSync(path.join(app, file), text);
      const r = spawnSync(process.execPath, [file], { cwd: app, env, encoding: 'utf8' });
      assert.equal(r.status, 0, `${file}:\n${r.stdout}\n${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!);
    };
    const cjs = runIn('cjs.js', CJS);
    assert.ok(cjs.bytes! > 0);
    assert.equal(cjs.code, 'ENOENT', 'a CheckpointError with the errno name');
    assert.deepEqual(cjs.addons, [prebuilt], 'CommonJS loaded the prebuilt addon from the tarball');
    const esm = runIn('esm.mjs', ESM);
    assert.equal(esm.sameClass, true, 'one module instance: the same CheckpointError and Checkpointer for import and require');
    assert.equal(esm.sameNames, true, 'index.mjs exports every name the CommonJS build does');
    assert.deepEqual(esm.addons, [prebuilt], 'ESM loaded the prebuilt addon from the tarball');

    // 4. ckptio/browser as installed: ESM that imports nothing but tfjs (no Node module, no addon).
    for (const f of ['ckptio.mjs', 'opfs-worker.mjs']) {
      const text = fs.readFileSync(path.join(app, 'node_modules', 'ckptio', 'dist', 'browser', f), 'utf8');
      const imports = [...text.matchAll(/^import\s[^;]*?from\s*["']([^"']+)["']/gm)].map((m) => m[1]);
      assert.deepEqual(imports, f === 'ckptio.mjs' ? ['@tensorflow/tfjs'] : [], `${f} imports only the page's tfjs`);
      assert.ok(!/["']node:|\.node["']|lz4-napi/.test(text), `${f} names no Node module, addon or lz4-napi`);
    }

    // 5. A TypeScript consumer against the installed types, with the installed tsc.
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, skipLibCheck: true, noEmit: true, types: [] },
        files: ['consumer.mts', 'consumer.cts', 'consumer-browser.mts'],
      }),
    );
    fs.writeFileSync(path.join(app, 'consumer.mts'), TS_ESM);
    fs.writeFileSync(path.join(app, 'consumer-browser.mts'), TS_BROWSER);
    fs.writeFileSync(path.join(app, 'consumer.cts'), TS_CJS);
    const tsc = spawnSync(process.execPath, [path.join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: app,
      env,
      encoding: 'utf8',
    });
    assert.equal(tsc.status, 0, `tsc on the consumer:\n${tsc.stdout}\n${tsc.stderr}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
