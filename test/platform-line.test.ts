/** The platform line: the checkpoint layer (src/checkpoint, outside node/) imports no Node module and nothing that
 * loads one (the native binding, LocalStore, the Node-only modules of checkpoint/node), so the same code runs in the
 * browser; and the browser bundle, as built, imports nothing but the page's tfjs. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '..', '..');
const NODE_ONLY = [
  /^node:/,
  /\/binding\/native$/,
  /\/store\/local$/,
  /\/portable\/(binding|writer-worker|lock)$/,
  /\/checkpoint\/node\//,
  /^\.\/node\//,
  /\/platform\/node$/,
];

/** Every module a file imports at run time (type-only imports are erased). */
function runtimeImports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/^import\s+(?!type\s)[^;]*?from\s+'([^']+)'/gm), ...text.matchAll(/^import\s+'([^']+)'/gm)].map((m) => m[1]!);
}

test('src/checkpoint (outside node/) imports no Node module, directly or through the binding, LocalStore or checkpoint/node', () => {
  const dir = path.join(root, 'src', 'checkpoint');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.includes('checkpointer.ts') && files.length >= 10, `files: ${files.join(', ')}`);
  const offending = files.flatMap((f) =>
    runtimeImports(path.join(dir, f))
      .filter((m) => NODE_ONLY.some((re) => re.test(m)))
      .map((m) => `${f} imports ${m}`),
  );
  assert.deepEqual(offending, []);
});

test('the built browser bundle imports only @tensorflow/tfjs and its worker nothing', () => {
  const dist = path.join(root, 'dist', 'browser');
  const imports = (f: string) => [...fs.readFileSync(path.join(dist, f), 'utf8').matchAll(/^import\s[^;]*?from\s*["']([^"']+)["']/gm)].map((m) => m[1]);
  assert.deepEqual(imports('ckptio.mjs'), ['@tensorflow/tfjs']);
  assert.deepEqual(imports('opfs-worker.mjs'), []);
});
