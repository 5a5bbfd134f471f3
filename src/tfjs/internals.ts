/** The only module that touches tfjs engine and backend internals (tfjs 4.x). test/tfjs-internals.test.ts
 * fails loudly if an upgrade changes what is used here.
 *
 * - A tensor's data is referenced by a dataId with a refcount in its backend. `backend.incRef(dataId)` plus
 *   `engine.makeTensorFromTensorInfo` gives a second tensor on the same data in O(1): a snapshot, because
 *   tfjs never writes into existing data (Variable.assign swaps the dataId).
 * - cpu keeps each dataId's values in a plain typed array (`backend.data.get(id).values`), readable in place.
 * - wasm keeps them in its heap at `backend.dataIdMap.get(id).memoryOffset`. */
import type * as tfType from '@tensorflow/tfjs';

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
