/** Where a run came from: library versions, git commit and dirty flag of the working tree (if any). */
import { execFileSync } from 'node:child_process';

export interface Provenance {
  node: string;
  ckptio: string;
  tfjs: string;
  backend: string;
  git: { commit: string; dirty: boolean } | null;
}

function version(pkg: string): string {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function provenance(backend: string, cwd = process.cwd()): Provenance {
  let git: Provenance['git'] = null;
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    git = { commit, dirty };
  } catch {
    git = null;
  }
  return { node: process.version, ckptio: (require('../../../package.json') as { version: string }).version, tfjs: version('@tensorflow/tfjs-core'), backend, git };
}
