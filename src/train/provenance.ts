/** Where a run came from: library versions, the backend (on webgpu, the adapter Dawn gave: a software adapter's
 * timings are not a GPU's), git commit and dirty flag of the working tree (if any). */
import '../platform/node';
import { execFileSync } from 'node:child_process';
import { currentWebGpuAdapter, WebGpuAdapterReport } from '../tfjs/webgpu';

export interface Provenance {
  node: string;
  ckptio: string;
  tfjs: string;
  backend: string;
  /** webgpu only: vendor, description, software or not, and which Dawn backend (vulkan / opengles). */
  adapter?: WebGpuAdapterReport;
  /** webgpu only: versions of @tensorflow/tfjs-backend-webgpu and of the `webgpu` (Dawn) package. */
  tfjsBackendWebgpu?: string;
  dawn?: string;
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
  let git: Provenance['git'];
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    const dirty =
      execFileSync('git', ['status', '--porcelain'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim() !== '';
    git = { commit, dirty };
  } catch {
    git = null;
  }
  const adapter = backend === 'webgpu' ? currentWebGpuAdapter() : null;
  return {
    node: process.version,
    ckptio: (require('../../../package.json') as { version: string }).version,
    tfjs: version('@tensorflow/tfjs-core'),
    backend,
    ...(adapter ? { adapter, tfjsBackendWebgpu: version('@tensorflow/tfjs-backend-webgpu'), dawn: version('webgpu') } : {}),
    git,
  };
}
