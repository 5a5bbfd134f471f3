import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { commandExists } from '../helpers';

// CI's fixed budget of the libFuzzer run (`npm run fuzz` runs for 10 minutes instead).
const RUNS = Number(process.env.CKPTIO_FUZZ_RUNS ?? 1_000_000);
const ROOT = path.resolve(__dirname, '..', '..', '..');
const missing = commandExists('clang++') ? false : 'clang++ is not installed (apt-get install clang libclang-rt-14-dev); .ci/run installs it';

test(`header parser fuzzer (libFuzzer + ASan + UBSan): ${RUNS} executions without a crash, leak or hang`, { skip: missing, timeout: 900_000 }, (t) => {
  const r = spawnSync('bash', [path.join(ROOT, 'test', 'fuzz', 'run.sh'), String(RUNS)], { cwd: ROOT, encoding: 'utf8', maxBuffer: 2 ** 28 });
  const tail = r.stderr
    .split('\n')
    .filter((l) => !l.startsWith('#') && !l.startsWith('"') && !l.includes('NEW_FUNC'))
    .slice(-25)
    .join('\n');
  assert.equal(r.status, 0, `the fuzzer failed:\n${tail}`);
  assert.match(r.stderr, new RegExp(`Done ${RUNS} runs`));
  const execs = /number_of_executed_units:\s+(\d+)/.exec(r.stderr);
  t.diagnostic(`${execs?.[1]} executions, ${/new_units_added:\s+(\d+)/.exec(r.stderr)?.[1]} new corpus units`);
});
