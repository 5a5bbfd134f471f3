import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { writerKind } from '../src/binding/native';
import { commandExists, straceNode, tempDir } from './helpers';

const script = `
const { writeCheckpoint } = require(${JSON.stringify(path.resolve(__dirname, '..', 'src'))});
const fs = require('fs');
(async () => {
  const data = new Float32Array(3 << 20).fill(1.5);
  for (const round of [1, 2]) {
    await writeCheckpoint(process.argv[1], { w: { dtype: 'float32', shape: [data.length], data } });
    fs.writeSync(1, 'RESOLVED ' + round + '\\n');
  }
})();
`;

test(
  'the commit protocol happens in order, before the promise resolves (strace)',
  { skip: !commandExists('strace') && 'strace not installed (.ci/run installs it)' },
  () => {
    const dir = tempDir();
    const target = path.join(dir, 'model.safetensors');
    const out = path.join(dir, 'trace.txt');
    const calls = straceNode(
      script,
      [target],
      ['openat', 'open', 'pwrite64', 'fdatasync', 'fsync', 'close', 'rename', 'renameat', 'renameat2', 'unlink', 'unlinkat', 'fallocate', 'write'],
      out,
    );
    const resolved = calls.filter((c) => c.name === 'write' && c.args.startsWith('1, "RESOLVED'));
    assert.equal(resolved.length, 2);
    let from = 0;
    for (const [round, mark] of resolved.entries()) {
      const window = calls.filter((c) => c.line > from && c.line < mark.line);
      const dirOpen = window.find((c) => (c.name === 'openat' || c.name === 'open') && c.args.includes(`"${dir}"`) && c.args.includes('O_DIRECTORY'));
      assert.ok(dirOpen, `round ${round}: directory opened`);
      const dirFd = dirOpen.result;
      const create = window.find(
        (c) =>
          c.name === 'openat' &&
          /model\.safetensors\.tmp\.\d+\.[0-9a-f]{8}"/.test(c.args) &&
          c.args.includes('O_EXCL') &&
          c.args.includes('O_CREAT') &&
          Number(c.result) >= 0,
      );
      assert.ok(create, `round ${round}: tmp file created with O_EXCL`);
      // The native writer works relative to a directory fd it opens first; the portable one (Node's fs) uses paths
      // and opens the directory for its fsync.
      if (writerKind === 'native') assert.ok(create.args.startsWith(`${dirFd},`), 'tmp created relative to the directory fd');
      const fd = create.result;
      const tmpName = /"([^"]*\.tmp\.[^"]*)"/.exec(create.args)![1]!;
      const writes = window.filter((c) => c.name === 'pwrite64' && c.args.startsWith(`${fd},`) && c.line > create.line);
      assert.ok(writes.length >= 2, 'positional writes to the tmp fd');
      const sync = window.find((c) => c.name === 'fdatasync' && c.args === fd && c.line > create.line);
      assert.ok(sync && sync.result === '0', 'fdatasync(tmp fd)');
      assert.ok(
        writes.every((w) => w.line < sync.line),
        'all writes before fdatasync',
      );
      const close = window.find((c) => c.name === 'close' && c.args === fd && c.line > sync.line);
      assert.ok(close && close.result === '0', 'close after fdatasync');
      const rename = window.find(
        (c) => /^rename/.test(c.name) && c.result === '0' && c.args.includes(`"${tmpName}"`) && /[/"]model\.safetensors"/.test(c.args),
      );
      assert.ok(rename && rename.line > close.line, 'rename after close');
      const dirSync = window.find((c) => c.name === 'fsync' && c.args === dirFd && c.line > rename.line);
      assert.ok(dirSync && dirSync.result === '0', 'fsync(dir fd) after rename');
      assert.ok(dirSync.line < mark.line, 'directory fsync before the promise resolved');
      const writesFinal = calls.filter(
        (c) =>
          (c.name === 'openat' || c.name === 'open') &&
          c.args.includes('model.safetensors"') &&
          !c.args.includes('.tmp.') &&
          /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(c.args),
      );
      assert.deepEqual(writesFinal, [], 'the final name is never opened for writing');
      from = mark.line;
    }
  },
);

test(
  'a Checkpointer that creates its directory fsyncs the parent before the first save resolves (strace)',
  { skip: !commandExists('strace') && 'strace not installed (.ci/run installs it)' },
  () => {
    const root = tempDir();
    const dir = path.join(root, 'a', 'run');
    const out = path.join(root, 'trace.txt');
    const child = `
const { Checkpointer } = require(${JSON.stringify(path.resolve(__dirname, '..', 'src'))});
const fs = require('fs');
(async () => {
  const c = new Checkpointer({ dir: process.argv[1], onWarning: () => {} });
  await (await c.save(1, { tensors: { w: { dtype: 'float32', shape: [2], data: new Float32Array(2) } } })).durable;
  fs.writeSync(1, 'DURABLE\\n');
  await c.close();
})();
`;
    const calls = straceNode(child, [dir], ['mkdir', 'mkdirat', 'openat', 'fsync', 'write'], out);
    const durable = calls.find((c) => c.name === 'write' && c.args.includes('DURABLE'))!;
    for (const parent of [root, path.join(root, 'a')]) {
      const opens = calls.filter((c) => c.name === 'openat' && c.args.includes(`"${parent}"`) && Number(c.result) >= 0).map((c) => c.result);
      const synced = calls.find((c) => c.name === 'fsync' && opens.includes(c.args) && c.line < durable.line);
      assert.ok(synced, `the parent ${parent} of a created directory was not fsynced before the save resolved`);
    }
  },
);

test(
  'a save commits its small files together: every one fdatasynced before any is renamed, then one directory fsync for all (strace)',
  { skip: !commandExists('strace') && 'strace not installed (.ci/run installs it)' },
  () => {
    const root = tempDir();
    const dir = path.join(root, 'run');
    const out = path.join(root, 'trace.txt');
    // Step 3's save writes the checkpoint, then `latest`, `best` and the manifest, then prunes step 1 (keepLast 2).
    const child = `
const { Checkpointer } = require(${JSON.stringify(path.resolve(__dirname, '..', 'src'))});
const fs = require('fs');
(async () => {
  const c = new Checkpointer({ dir: process.argv[1], keepLast: 2, best: 'max', onWarning: () => {} });
  const tensors = { w: { dtype: 'float32', shape: [1024], data: new Float32Array(1024) } };
  for (const step of [1, 2, 3]) {
    if (step === 3) fs.writeSync(1, 'SAVING\\n');
    await (await c.save(step, { tensors, metric: step })).durable;
  }
  fs.writeSync(1, 'DURABLE\\n');
  await c.close();
})();
`;
    fs.mkdirSync(dir);
    const calls = straceNode(child, [dir], ['openat', 'fdatasync', 'fsync', 'close', 'rename', 'renameat', 'renameat2', 'unlink', 'unlinkat', 'write'], out);
    const saving = calls.find((c) => c.name === 'write' && c.args.includes('SAVING'))!;
    const durable = calls.find((c) => c.name === 'write' && c.args.includes('DURABLE'))!;
    const window = calls.filter((c) => c.line > saving.line && c.line < durable.line);
    const dirFds = new Set(window.filter((c) => c.name === 'openat' && c.args.includes(`"${dir}"`) && c.args.includes('O_DIRECTORY')).map((c) => c.result));
    const small = ['latest', 'best', 'ckptio-manifest.json'];
    const tmpOf = new Map<string, { fd: string; name: string }>();
    for (const c of window) {
      const m = /[/"]((latest|best|ckptio-manifest\.json)\.tmp\.\d+\.[0-9a-f]{8})"/.exec(c.args);
      if (c.name === 'openat' && m && c.args.includes('O_EXCL') && Number(c.result) >= 0) tmpOf.set(m[2]!, { fd: c.result, name: m[1]! });
    }
    assert.deepEqual([...tmpOf.keys()].sort(), [...small].sort(), 'each small file written under a temporary name');
    const renames = small.map((n) =>
      window.find((c) => /^rename/.test(c.name) && c.result === '0' && c.args.includes(`${tmpOf.get(n)!.name}"`) && new RegExp(`[/"]${n}"`).test(c.args)),
    );
    assert.ok(
      renames.every((r) => r),
      'each small file renamed into place',
    );
    const firstRename = Math.min(...renames.map((r) => r!.line));
    const lastRename = Math.max(...renames.map((r) => r!.line));
    for (const n of small) {
      const { fd } = tmpOf.get(n)!;
      const sync = window.find((c) => c.name === 'fdatasync' && c.args === fd && c.result === '0');
      assert.ok(sync && sync.line < firstRename, `${n}: fdatasync'ed before any small file is renamed`);
    }
    const dirSyncs = window.filter((c) => c.name === 'fsync' && dirFds.has(c.args) && c.result === '0');
    const between = dirSyncs.filter((c) => c.line > firstRename && c.line < lastRename);
    assert.equal(between.length, 0, "no directory fsync between the small files' renames");
    const groupSync = dirSyncs.find((c) => c.line > lastRename);
    assert.ok(groupSync, 'the directory fsynced after the renames');
    const prune = window.find((c) => /^unlink/.test(c.name) && /[/"]ckpt-0000000001\.safetensors"/.test(c.args));
    assert.ok(prune && prune.line > groupSync.line, 'the prune comes after the small files are durable');
    assert.ok(
      dirSyncs.some((c) => c.line > prune.line),
      'the prune is made durable before the save resolves',
    );
    assert.equal(dirSyncs.length, 3, `directory fsyncs in step 3's save: the checkpoint's, the small files', the prune's (got ${dirSyncs.length})`);
  },
);
