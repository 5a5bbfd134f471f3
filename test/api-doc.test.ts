/** docs/api.md against the package's exports: every name src/index.ts exports (values and types) is documented,
 * every runtime export has its own `### name` section, and every ECKPT_* code of CheckpointErrorCode is listed. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as api from '../src';

const root = path.resolve(__dirname, '..', '..');
const doc = fs.readFileSync(path.join(root, 'docs', 'api.md'), 'utf8');

/** Every name of the `export { ... } from` and `export type { ... } from` statements (multi-line too); `a as b`
 * exports b. */
function exportedNames(entry = 'index.ts'): { values: string[]; types: string[] } {
  const source = fs.readFileSync(path.join(root, 'src', entry), 'utf8').replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g, '');
  const values: string[] = [];
  const types: string[] = [];
  for (const m of source.matchAll(/export\s+(type\s+)?\{([^}]*)\}\s*from\s*['"][^'"]+['"]/g)) {
    const names = m[2]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) =>
        s
          .split(/\s+as\s+/)
          .pop()!
          .trim(),
      );
    (m[1] ? types : values).push(...names);
  }
  return { values, types };
}

/** The exact contents of every `code span` in the doc, and the names of its `### ` headings. */
const spans = new Set([...doc.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!));
const headings = new Set([...doc.matchAll(/^### +`?([^`\n]+?)`? *$/gm)].map((m) => m[1]!));

test('src/index.ts exports are parsed (values and types)', () => {
  const { values, types } = exportedNames();
  assert.ok(values.includes('Checkpointer') && values.includes('LocalStore'), `values: ${values.join(', ')}`);
  assert.ok(types.includes('CheckpointerOptions') && types.includes('StoreLock'), `types: ${types.join(', ')}`);
  assert.equal(new Set([...values, ...types]).size, values.length + types.length, 'a name is exported twice');
});

test('every exported name (of ckptio and of ckptio/browser) appears in docs/api.md in backticks or as a ### heading', () => {
  const node = exportedNames();
  const browser = exportedNames('browser.ts');
  assert.ok(browser.values.includes('OpfsStore') && browser.values.includes('fitCheckpoint'), `browser values: ${browser.values.join(', ')}`);
  const values = [...node.values, ...browser.values];
  const types = [...node.types, ...browser.types];
  const missing = [...values, ...types].filter((n) => !spans.has(n) && !headings.has(n));
  assert.deepEqual(missing, [], `not documented in docs/api.md: ${missing.join(', ')}`);
});

test('every runtime export is a name of src/index.ts and has its own ### section', () => {
  const { values } = exportedNames();
  const runtime = Object.keys(api).filter((k) => k !== 'default' && k !== '__esModule');
  assert.ok(runtime.length > 0);
  const unlisted = runtime.filter((k) => !values.includes(k));
  assert.deepEqual(unlisted, [], `runtime exports not found in src/index.ts's export { } lists: ${unlisted.join(', ')}`);
  const noSection = runtime.filter((k) => !headings.has(k));
  assert.deepEqual(noSection, [], `runtime exports without a "### name" section in docs/api.md: ${noSection.join(', ')}`);
});

test('every code of CheckpointErrorCode is listed in docs/api.md', () => {
  const errors = fs.readFileSync(path.join(root, 'src', 'binding', 'errors.ts'), 'utf8');
  const union = /export type CheckpointErrorCode\s*=([^;]*);/.exec(errors);
  assert.ok(union, 'CheckpointErrorCode union not found in src/binding/errors.ts');
  const codes = [...union[1]!.matchAll(/'(ECKPT_[A-Z0-9_]+)'/g)].map((m) => m[1]!);
  assert.ok(codes.length >= 6, `too few codes parsed: ${codes.join(', ')}`);
  const missing = codes.filter((c) => !spans.has(c));
  assert.deepEqual(missing, [], `error codes not listed in docs/api.md: ${missing.join(', ')}`);
});
