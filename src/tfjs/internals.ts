/** The only module that touches tfjs engine and backend internals (tfjs 4.x). test/tfjs-internals.test.ts (the guard per optimizer)
 * fails loudly if an upgrade changes what is used here.
 *
 * - A tensor's data is referenced by a dataId with a refcount in its backend. `backend.incRef(dataId)` plus
 *   `engine.makeTensorFromTensorInfo` gives a second tensor on the same data in O(1): a snapshot, because
 *   tfjs never writes into existing data (Variable.assign swaps the dataId).
 * - cpu keeps each dataId's values in a plain typed array (`backend.data.get(id).values`), readable in place.
 * - wasm keeps them in its heap at `backend.dataIdMap.get(id).memoryOffset`. */
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError } from '../binding/errors';

type Tf = typeof tfType;
type DataId = object;

interface BackendLike {
  incRef(dataId: DataId): void;
}

interface EngineLike {
  state: { tensorInfo: { get(id: DataId): { backend: BackendLike } | undefined } };
  makeTensorFromTensorInfo(info: { dataId: DataId; shape: number[]; dtype: string }, backend?: BackendLike): tfType.Tensor;
}

interface CpuBackend extends BackendLike {
  data: { get(id: DataId): { values?: ArrayLike<number> & ArrayBufferView } | undefined };
}

interface WasmBackend extends BackendLike {
  dataIdMap: { get(id: DataId): { memoryOffset: number } | undefined };
  wasm: { HEAPU8: Uint8Array };
}

function engineOf(tf: Tf): EngineLike {
  return tf.engine() as unknown as EngineLike;
}

function backendOf(tf: Tf, t: tfType.Tensor): BackendLike {
  const info = engineOf(tf).state.tensorInfo.get(t.dataId as DataId);
  if (!info) throw new Error('ckptio: tensor is disposed or unknown to the tfjs engine');
  return info.backend;
}

/** A second tensor on `t`'s current data, O(1). Dispose it to drop the reference. */
export function retainData(tf: Tf, t: tfType.Tensor): tfType.Tensor {
  const backend = backendOf(tf, t);
  backend.incRef(t.dataId as DataId);
  return engineOf(tf).makeTensorFromTensorInfo({ dataId: t.dataId as DataId, shape: t.shape, dtype: t.dtype }, backend);
}

export type ByteAccess =
  | { kind: 'in-place'; bytes: Uint8Array } // stable bytes owned by the tensor (cpu): no copy needed
  | { kind: 'heap'; bytes: Uint8Array } // a view into the wasm heap: copy it out before the heap can grow
  | { kind: 'read' }; // only through data()/dataSync() (tfjs-node, webgl, ...)

/** How the bytes of a (retained) tensor can be reached without an extra allocation. */
export function byteAccess(tf: Tf, t: tfType.Tensor): ByteAccess {
  const backend = backendOf(tf, t) as Partial<CpuBackend & WasmBackend>;
  const name = tf.getBackend();
  const bytes = t.size * (t.dtype === 'float32' || t.dtype === 'int32' ? 4 : 1);
  if (name === 'cpu' && backend.data) {
    const values = backend.data.get(t.dataId as DataId)?.values;
    if (values && ArrayBuffer.isView(values)) {
      return { kind: 'in-place', bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
    }
  }
  if (name === 'wasm' && backend.dataIdMap && backend.wasm) {
    const entry = backend.dataIdMap.get(t.dataId as DataId);
    if (entry) return { kind: 'heap', bytes: backend.wasm.HEAPU8.subarray(entry.memoryOffset, entry.memoryOffset + bytes) };
  }
  return { kind: 'read' };
}

interface LearningRateFields {
  learningRate?: unknown;
  setLearningRate?: (lr: number) => void;
}

/** Sets a tf.train optimizer's learning rate for its next step. SGD and momentum cache `-lr` as a kept
 * scalar, which only their own `setLearningRate` refreshes; the others read the `learningRate` field each step. */
export function setOptimizerLearningRate(optimizer: tfType.Optimizer, lr: number): void {
  const o = optimizer as unknown as LearningRateFields;
  if (typeof o.learningRate !== 'number') {
    throw new CheckpointError(`optimizer ${optimizer.getClassName()} has no numeric learningRate field (tfjs internals changed?)`, {
      code: 'ECKPT_TFJS_INTERNALS',
    });
  }
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

/** The learning rate the optimizer will use for its next step. */
export function optimizerLearningRate(optimizer: tfType.Optimizer): number {
  const lr = (optimizer as unknown as LearningRateFields).learningRate;
  if (typeof lr !== 'number') {
    throw new CheckpointError(`optimizer ${optimizer.getClassName()} has no numeric learningRate field (tfjs internals changed?)`, {
      code: 'ECKPT_TFJS_INTERNALS',
    });
  }
  return lr;
}
