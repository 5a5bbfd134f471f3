import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { readCheckpoint, writeCheckpoint } from '../../src/format/file';
import { writerKind } from '../../src/binding/native';
import { bytesOf, commandExists, tempDir } from '../helpers';

// Faults injected by strace (`-e inject=`) into the real binary's system calls, one invocation at a time,
// over a save that replaces an existing checkpoint: EIO and ENOSPC must reject the save with that code and
// leave the old file untouched and no temporary behind; SIGKILL at any of them must leave the old or the
// new checkpoint at the final name, valid. Injection counts are per thread, so these are the writer
// thread's (and the O_DIRECT pipeline thread's) calls. close(2) is left to the fault twin
// (test/faults.test.ts): the main thread closes files during start-up and an injected close there breaks
// node's own loading, not ours.

const SRC = path.resolve(__dirname, '..', '..', 'src');
const CHILD = `
const { writeCheckpoint } = require(${JSON.stringify(SRC)});
const fs = require('fs');
const [target, direct] = process.argv.slice(1);
const data = new Float32Array(3 << 20).fill(2.5);
writeCheckpoint(target, { w: { dtype: 'float32', shape: [data.length], data } }, { direct }).then(
  (r) => fs.writeSync(1, JSON.stringify({ ok: true, leftover: r.leftover ?? null }) + '\\n'),
  (e) => fs.writeSync(1, JSON.stringify({ ok: false, name: e.name, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path }) + '\\n'));
`;
const OLD = new Float32Array(3 << 20).fill(-1);
const NEW = new Float32Array(3 << 20).fill(2.5);
// The portable writer (Node's fs) has no fallocate or ftruncate, renames with rename(2) and keeps the replaced
// file by link(2) until the directory fsync.
const SYSCALLS =
  writerKind === 'native'
    ? ['openat', 'fallocate', 'pwrite64', 'ftruncate', 'fdatasync', 'renameat2', 'fsync', 'unlinkat']
    : ['openat', 'link', 'pwrite64', 'fdatasync', 'rename', 'fsync', 'unlink'];
const RENAME = writerKind === 'native' ? 'renameat2' : 'rename';
const UNLINK = writerKind === 'native' ? 'unlinkat' : 'unlink';
const ERRNO: Record<string, number> = { EIO: 5, ENOSPC: 28 };

interface Outcome {
  result: { ok: boolean; name?: string; code?: string; errno?: number; syscall?: string; path?: string; leftover?: { code: string } | null } | null;
  trace: string;
}

function straced(dir: string, target: string, direct: string, traceArgs: string[]): Outcome {
  const out = path.join(dir, '..', `${path.basename(dir)}.trace`);
  const r = spawnSync('strace', ['-f', '-qq', '-o', out, ...traceArgs, process.execPath, '-e', CHILD, target, direct], { encoding: 'utf8' });
  const trace = fs.readFileSync(out, 'utf8');
  fs.rmSync(out);
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  return { result: line ? (JSON.parse(line) as Outcome['result']) : null, trace };
}

/** How many times each syscall is invoked per thread during one save (the injection counter's unit). */
function invocations(dir: string, target: string, direct: string): Map<string, number> {
  const counts = new Map<string, number>();
  const tally = (trace: string, onlyDirArgs: boolean) => {
    const perThread = new Map<string, number>();
    for (const l of trace.split('\n')) {
      const m = /^(\d+)\s+(\w+)\(/.exec(l);
      if (!m || (onlyDirArgs && m[2] !== 'openat')) continue;
      const key = `${m[1]} ${m[2]}`;
      perThread.set(key, (perThread.get(key) ?? 0) + 1);
    }
    for (const [key, n] of perThread) {
      const name = key.split(' ')[1]!;
      counts.set(name, Math.max(counts.get(name) ?? 0, n));
    }
  };
  tally(straced(dir, target, direct, ['-e', `trace=${SYSCALLS.filter((s) => s !== 'openat').join(',')}`]).trace, false);
  // openat is also the main thread's daily bread: only calls on our directory count (-P).
  tally(straced(dir, target, direct, ['-P', dir, '-e', 'trace=openat']).trace, true);
  return counts;
}

async function reset(dir: string, target: string): Promise<Buffer> {
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
  await writeCheckpoint(target, { w: { dtype: 'float32', shape: [OLD.length], data: OLD } });
  return fs.readFileSync(target);
}

async function finalIs(target: string): Promise<'old' | 'new'> {
  const r = await readCheckpoint(target);
  const data = bytesOf(r.tensors.w!.data);
  if (data.equals(bytesOf(OLD))) return 'old';
  if (data.equals(bytesOf(NEW))) return 'new';
  throw new Error('the final name holds neither the old nor the new checkpoint');
}

const skip = !commandExists('strace') && 'strace not installed (.ci/run installs it)';

for (const direct of ['off', 'on']) {
  const portableSkip = direct === 'on' && writerKind === 'portable' && 'native writer only: O_DIRECT';
  test(`strace -e inject= EIO, ENOSPC and SIGKILL at every save syscall (O_DIRECT ${direct})`, { skip: skip || portableSkip, timeout: 600_000 }, async (t) => {
    const dir = tempDir();
    const target = path.join(dir, 'model.safetensors');
    await reset(dir, target);
    const counts = invocations(dir, target, direct);
    for (const s of ['openat', 'pwrite64', 'fdatasync', RENAME, 'fsync'])
      assert.ok((counts.get(s) ?? 0) > 0, `the save makes no ${s} call: ${JSON.stringify([...counts])}`);
    let cases = 0;
    for (const syscall of SYSCALLS) {
      const n = counts.get(syscall) ?? 0;
      const whens = [...new Set(syscall === 'pwrite64' ? [1, 2, n] : Array.from({ length: n }, (_, i) => i + 1))].filter((w) => w >= 1 && w <= n);
      for (const when of whens) {
        for (const fault of ['EIO', 'ENOSPC', 'SIGKILL']) {
          const old = await reset(dir, target);
          const what = `${syscall} #${when} ${fault}`;
          const inject = `inject=${syscall}:${fault === 'SIGKILL' ? 'signal=SIGKILL' : `error=${fault}`}:when=${when}`;
          const { result, trace } = straced(dir, target, direct, [...(syscall === 'openat' ? ['-P', dir] : []), '-e', `trace=${syscall}`, '-e', inject]);
          cases++;
          if (fault === 'SIGKILL') {
            assert.match(trace, /killed by SIGKILL/, `${what}: not killed`);
            assert.equal(result, null, `${what}: the save reported before the kill`);
            await finalIs(target);
            continue;
          }
          assert.match(trace, /\(INJECTED\)/, `${what}: nothing injected`);
          assert.ok(result, `${what}: the child printed nothing`);
          if (result.ok) {
            // Only the removal of the replaced file comes after the commit is durable; it must be reported.
            assert.equal(syscall, UNLINK, `${what}: the save succeeded although a ${syscall} failed`);
            assert.equal(result.leftover?.code, fault, `${what}: the failed removal was not reported`);
            assert.equal(await finalIs(target), 'new');
            continue;
          }
          assert.equal(result.name, 'CheckpointError', what);
          assert.equal(result.code, fault, `${what}: ${JSON.stringify(result)}`);
          assert.equal(result.errno, ERRNO[fault], what);
          assert.ok(result.syscall && result.path, `${what}: syscall and path are reported: ${JSON.stringify(result)}`);
          assert.ok(fs.readFileSync(target).equals(old), `${what}: the previous checkpoint changed`);
          assert.deepEqual(fs.readdirSync(dir), ['model.safetensors'], `${what}: a temporary file was left behind`);
        }
      }
    }
    t.diagnostic(`${cases} injections; calls per thread: ${[...counts].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });
}
