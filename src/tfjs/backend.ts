/** Picks and initializes the tfjs backend: wasm by default, cpu on request, webgpu (Dawn; Vulkan on a GPU, else
 * Mesa's OpenGL ES in software: tfjs/webgpu.ts) on request, and tfjs-node(-gpu) only when the user has installed
 * it (it cannot be installed from npm alone on machines without outside access). */
import * as path from 'node:path';
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError } from '../binding/errors';
import { requirePeer } from '../binding/peer';
import { closeWebGpu, setupWebGpu, WebGpuAdapterReport, WebGpuOptions } from './webgpu';

export type BackendName = 'wasm' | 'cpu' | 'tensorflow' | 'webgpu';

export interface LoadedTf {
  tf: typeof tfType;
  backend: BackendName;
  /** webgpu: the adapter Dawn gave (also in every checkpoint's provenance). */
  adapter?: WebGpuAdapterReport;
  /** Releases what the backend holds that keeps Node alive (webgpu: the Dawn device and instance; every tensor
   * on the backend is gone afterwards). A no-op for the others. */
  close(): Promise<void>;
}

const noClose = async (): Promise<void> => {};

function tryRequire(name: string): unknown {
  try {
    return require(name);
  } catch {
    return null;
  }
}

export async function loadTf(backend: BackendName = 'wasm', opts: { webgpu?: WebGpuOptions } = {}): Promise<LoadedTf> {
  if (backend === 'tensorflow') {
    const node = (tryRequire('@tensorflow/tfjs-node-gpu') ?? tryRequire('@tensorflow/tfjs-node')) as typeof tfType | null;
    if (!node) {
      throw new CheckpointError(
        "backend 'tensorflow' needs @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu installed (not a dependency of ckptio): npm install @tensorflow/tfjs-node",
        { code: 'ECKPT_MISSING_PACKAGE' },
      );
    }
    await node.setBackend('tensorflow');
    await node.ready();
    return { tf: node, backend, close: noClose };
  }
  const tf = requirePeer<typeof tfType>('@tensorflow/tfjs', 'loadTf');
  if (backend === 'wasm') {
    const wasm = requirePeer<{ setWasmPaths(p: string): void }>('@tensorflow/tfjs-backend-wasm', "loadTf('wasm')");
    const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;
    wasm.setWasmPaths(dist);
  }
  if (backend === 'webgpu') {
    const adapter = await setupWebGpu(tf, opts.webgpu);
    let ok = false;
    try {
      ok = await tf.setBackend('webgpu');
    } finally {
      if (!ok) await closeWebGpu();
    }
    if (!ok)
      throw new CheckpointError(`tfjs backend 'webgpu' failed to initialize on ${adapter.description || adapter.device} (${adapter.dawnBackend})`, {
        code: 'ECKPT_INTERNAL',
      });
    await tf.ready();
    return { tf, backend, adapter, close: closeWebGpu };
  }
  const ok = await tf.setBackend(backend);
  if (!ok) throw new CheckpointError(`tfjs backend '${backend}' failed to initialize`, { code: 'ECKPT_INTERNAL' });
  await tf.ready();
  return { tf, backend, close: noClose };
}
