/** Picks and initializes the tfjs backend: wasm by default, cpu on request, and tfjs-node(-gpu) only when
 * the user has installed it (it cannot be installed from npm alone on machines without outside access). */
import * as path from 'node:path';
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError } from '../binding/errors';
import { requirePeer } from './peer';

export type BackendName = 'wasm' | 'cpu' | 'tensorflow';

export interface LoadedTf {
  tf: typeof tfType;
  backend: BackendName;
}

function tryRequire(name: string): unknown {
  try {
    return require(name);
  } catch {
    return null;
  }
}

export async function loadTf(backend: BackendName = 'wasm'): Promise<LoadedTf> {
  if (backend === 'tensorflow') {
    const node = (tryRequire('@tensorflow/tfjs-node-gpu') ?? tryRequire('@tensorflow/tfjs-node')) as typeof tfType | null;
    if (!node) {
      throw new CheckpointError("backend 'tensorflow' needs @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu installed (not a dependency of ckptio): npm install @tensorflow/tfjs-node", { code: 'ECKPT_MISSING_PACKAGE' });
    }
    await node.setBackend('tensorflow');
    await node.ready();
    return { tf: node, backend };
  }
  const tf = requirePeer<typeof tfType>('@tensorflow/tfjs', 'loadTf');
  if (backend === 'wasm') {
    const wasm = requirePeer<{ setWasmPaths(p: string): void }>('@tensorflow/tfjs-backend-wasm', "loadTf('wasm')");
    const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;
    wasm.setWasmPaths(dist);
  }
  const ok = await tf.setBackend(backend);
  if (!ok) throw new CheckpointError(`tfjs backend '${backend}' failed to initialize`, { code: 'ECKPT_INTERNAL' });
  await tf.ready();
  return { tf, backend };
}
