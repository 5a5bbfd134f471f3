/** The only module that touches tfjs engine and backend internals (tfjs 4.x). test/tfjs-internals.test.ts (the guard per optimizer)
 * fails loudly if an upgrade changes what is used here.
 *
 * - A tensor's data is referenced by a dataId with a refcount in its backend. `backend.incRef(dataId)` holds it
 *   in O(1) without a Tensor object, and `backend.disposeData` + `engine.removeDataId` release it as
 *   engine.disposeTensor would: a snapshot, because tfjs never writes into existing data (Variable.assign swaps
 *   the dataId).
 * - cpu keeps each dataId's values in a plain typed array (`backend.data.get(id).values`), readable in place.
 * - wasm keeps them in its heap at `backend.dataIdMap.get(id).memoryOffset`; the heap is the emscripten module's
 *   `asm.memory` (a WebAssembly.Memory that emscripten grows from JavaScript, through its grow method). */
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError } from '../binding/errors';

type Tf = typeof tfType;
type DataId = object;

interface BackendLike {
  incRef(dataId: DataId): void;
  /** Drops one reference; true once the data itself is freed. */
  disposeData(dataId: DataId, force?: boolean): boolean;
  read(dataId: DataId): Promise<ArrayLike<number> & ArrayBufferView>;
}

interface EngineLike {
  state: { tensorInfo: { get(id: DataId): { backend: BackendLike } | undefined } };
  backend: BackendLike;
  backendName: string;
  /** What engine.disposeTensor does once the backend has freed the data: the engine's own record goes. */
  removeDataId(dataId: DataId, backend: BackendLike): void;
}

type CpuData = { values?: ArrayLike<number> & ArrayBufferView };

interface CpuBackend extends BackendLike {
  /** tfjs's DataStorage: get() is has() + get() on the WeakMap it keeps as `data`. */
  data: { get(id: DataId): CpuData | undefined; data?: WeakMap<DataId, CpuData> };
}

interface WasmBackend extends BackendLike {
  dataIdMap: { get(id: DataId): { memoryOffset: number } | undefined };
  /** The emscripten module: its heap view (replaced at each grow) and, as asm.memory, the WebAssembly.Memory. */
  wasm: { HEAPU8: Uint8Array; asm?: { memory?: unknown }; wasmMemory?: unknown };
}

function engineOf(tf: Tf): EngineLike {
  return tf.engine() as unknown as EngineLike;
}

/** The engine's current backend, resolved once per snapshot. */
export interface CurrentBackend {
  name: string;
  cpu: CpuBackend | null;
  /** The cpu backend's own map, read with one lookup per tensor instead of DataStorage.get's two. */
  cpuData: { get(id: DataId): CpuData | undefined } | null;
  wasm: WasmBackend | null;
}

export function currentBackend(tf: Tf): CurrentBackend {
  const engine = engineOf(tf);
  const backend = engine.backend as Partial<CpuBackend & WasmBackend>;
  const name = engine.backendName;
  const cpu = name === 'cpu' && backend.data ? (backend as CpuBackend) : null;
  return {
    name,
    cpu,
    cpuData: cpu ? (cpu.data.data instanceof WeakMap ? cpu.data.data : cpu.data) : null,
    wasm: name === 'wasm' && backend.dataIdMap && backend.wasm ? (backend as WasmBackend) : null,
  };
}

/** On cpu, a tensor's values array itself: tfjs never writes into existing data (assign swaps the dataId) and the
 * cpu backend does not reuse freed arrays, so holding the array is the reference, with no refcount and no
 * Tensor object. undefined when the tensor is not on this cpu backend. */
export function cpuValues(current: CurrentBackend, t: tfType.Tensor): ArrayBufferView | undefined {
  const values = current.cpuData?.get(t.dataId as DataId)?.values;
  return values && ArrayBuffer.isView(values) ? values : undefined;
}

/** A counted reference on a tensor's data (wasm, webgpu, tfjs-node), without a Tensor object: the backend keeps
 * the data until dropData. While held, tf.memory().numDataBuffers counts it (numTensors does not). */
export interface HeldData {
  backend: BackendLike;
  dataId: DataId;
  heap: boolean;
}

export function holdData(tf: Tf, current: CurrentBackend, t: tfType.Tensor): HeldData {
  const dataId = t.dataId as DataId;
  if (current.wasm?.dataIdMap.get(dataId)) {
    current.wasm.incRef(dataId);
    return { backend: current.wasm, dataId, heap: true };
  }
  const info = engineOf(tf).state.tensorInfo.get(dataId);
  if (!info) throw new CheckpointError('tensor is disposed or unknown to the tfjs engine', { code: 'ECKPT_ARGS' });
  info.backend.incRef(dataId);
  return { backend: info.backend, dataId, heap: false };
}

/** Releases a holdData reference, freeing the data when it was the last, as engine.disposeTensor would. */
export function dropData(tf: Tf, held: HeldData): void {
  if (held.backend.disposeData(held.dataId)) engineOf(tf).removeDataId(held.dataId, held.backend);
}

/** The held wasm data's bytes in the heap now (resolve again after anything that may grow the heap). */
export function heapBytes(held: HeldData, byteLength: number): Uint8Array {
  const entry = (held.backend as WasmBackend).dataIdMap.get(held.dataId);
  if (!entry) throw new CheckpointError('wasm tensor data moved out of the heap', { code: 'ECKPT_TFJS_INTERNALS' });
  return (held.backend as WasmBackend).wasm.HEAPU8.subarray(entry.memoryOffset, entry.memoryOffset + byteLength);
}

/** The held data's values through the backend's asynchronous read (webgpu: GPU->staging copy + mapAsync). */
export function readData(held: HeldData): Promise<ArrayBufferView> {
  return held.backend.read(held.dataId);
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

// ---- Optimizer state (tfjs-core 4.x src/optimizers) ----

/** A per-weight slot variable as tf.train optimizers keep it: `originalName` is `<engine variable name><suffix>`. */
export interface SlotEntry {
  originalName: string;
  variable: tfType.Variable;
}

export interface SlotFamily {
  /** The optimizer field holding the array of slots, indexed by the variable's position in applyGradients. */
  field: string;
  /** What tfjs appends to the variable's name in `originalName`; without the slash it names the family. */
  suffix: string;
}

export interface OptimizerLayout {
  slots: readonly SlotFamily[];
  /** Scalar tf.Variables the optimizer updates every step (Adam's running beta products, Adamax's counter). */
  scalarVariables: readonly string[];
}

/** Everything each tf.train optimizer carries from one step to the next, by getClassName(). Besides these, every
 * optimizer has the JS number `iterations_` and its `learningRate`; the other fields are constructor
 * hyperparameters (or, for SGD/Momentum, a kept scalar derived from them). test/tfjs-internals.test.ts checks that
 * no optimizer holds a Variable or slot array this table does not list. */
export const OPTIMIZER_LAYOUTS: Readonly<Record<string, OptimizerLayout>> = {
  SGD: { slots: [], scalarVariables: [] },
  Momentum: { slots: [{ field: 'accumulations', suffix: '/momentum' }], scalarVariables: [] },
  RMSProp: {
    slots: [
      { field: 'accumulatedMeanSquares', suffix: '/rms' },
      { field: 'accumulatedMoments', suffix: '/momentum' },
      { field: 'accumulatedMeanGrads', suffix: '/mg' },
    ],
    scalarVariables: [],
  },
  Adagrad: { slots: [{ field: 'accumulatedGrads', suffix: '/accumulator' }], scalarVariables: [] },
  Adadelta: {
    slots: [
      { field: 'accumulatedGrads', suffix: '/accum_grad' },
      { field: 'accumulatedUpdates', suffix: '/accum_var' },
    ],
    scalarVariables: [],
  },
  Adam: {
    slots: [
      { field: 'accumulatedFirstMoment', suffix: '/m' },
      { field: 'accumulatedSecondMoment', suffix: '/v' },
    ],
    scalarVariables: ['accBeta1', 'accBeta2'],
  },
  Adamax: {
    slots: [
      { field: 'accumulatedFirstMoment', suffix: '/m' },
      { field: 'accumulatedWeightedInfNorm', suffix: '/v' },
    ],
    scalarVariables: ['iteration', 'accBeta1'],
  },
};

function internalsError(message: string): CheckpointError {
  return new CheckpointError(`${message} (tfjs internals changed? ckptio knows tfjs 4.x)`, { code: 'ECKPT_TFJS_INTERNALS' });
}

export function optimizerLayout(optimizer: tfType.Optimizer): { className: string; layout: OptimizerLayout } {
  const className = optimizer.getClassName();
  const layout = OPTIMIZER_LAYOUTS[className];
  if (!layout) {
    throw new CheckpointError(
      `optimizer ${className} is not one of the tf.train optimizers ckptio can checkpoint (${Object.keys(OPTIMIZER_LAYOUTS).join(', ')})`,
      {
        code: 'ECKPT_ARGS',
      },
    );
  }
  return { className, layout };
}

function isVariable(v: unknown): v is tfType.Variable {
  return typeof v === 'object' && v !== null && typeof (v as tfType.Variable).assign === 'function' && 'dataId' in v;
}

/** The live slot array of one family (entries may be missing before the first step touches a variable). */
export function readSlots(optimizer: tfType.Optimizer, family: SlotFamily): (SlotEntry | undefined)[] {
  const arr = (optimizer as unknown as Record<string, unknown>)[family.field];
  if (!Array.isArray(arr)) throw internalsError(`${optimizer.getClassName()}.${family.field} is not an array`);
  return arr.map((e: unknown, i) => {
    if (e == null) return undefined;
    const entry = e as Partial<SlotEntry>;
    if (typeof entry.originalName !== 'string' || !isVariable(entry.variable)) {
      throw internalsError(`${optimizer.getClassName()}.${family.field}[${i}] is not {originalName, variable}`);
    }
    return entry as SlotEntry;
  });
}

/** Replaces a family's slot array; holes are left for tfjs to create lazily (zeros) at the next step. */
export function writeSlots(optimizer: tfType.Optimizer, family: SlotFamily, slots: (SlotEntry | undefined)[]): void {
  const o = optimizer as unknown as Record<string, unknown>;
  if (!Array.isArray(o[family.field])) throw internalsError(`${optimizer.getClassName()}.${family.field} is not an array`);
  const arr: SlotEntry[] = [];
  slots.forEach((s, i) => {
    if (s) arr[i] = s;
  });
  arr.length = slots.length;
  o[family.field] = arr;
}

export function scalarVariable(optimizer: tfType.Optimizer, field: string): tfType.Variable {
  const v = (optimizer as unknown as Record<string, unknown>)[field];
  if (!isVariable(v) || v.rank !== 0) throw internalsError(`${optimizer.getClassName()}.${field} is not a scalar tf.Variable`);
  return v;
}

/** Steps applied so far (`iterations_`, a JS number; undefined before the first step, which tfjs reads as 0). */
export function optimizerIterations(optimizer: tfType.Optimizer): number {
  const n = (optimizer as unknown as { iterations_?: unknown }).iterations_;
  if (n == null) return 0;
  if (typeof n !== 'number') throw internalsError(`${optimizer.getClassName()}.iterations_ is not a number`);
  return n;
}

export function setOptimizerIterations(optimizer: tfType.Optimizer, iterations: number): void {
  (optimizer as unknown as { iterations_?: number }).iterations_ = iterations;
}

/** Every own field of the optimizer that holds a Variable or an array of slots: the guard test compares this
 * with OPTIMIZER_LAYOUTS so that state a tfjs upgrade adds cannot go unsaved silently. */
export function statefulFields(optimizer: tfType.Optimizer): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(optimizer as unknown as Record<string, unknown>)) {
    if (isVariable(v)) out.push(k);
    else if (Array.isArray(v) && v.some((e) => e && typeof e === 'object' && isVariable((e as SlotEntry).variable))) out.push(k);
  }
  return out.sort();
}

// ---- Layers models ----

/** The order model.fit passes trainable weights to the optimizer (collectedTrainableWeights once compiled). */
export function fitWeightOrder(model: tfType.LayersModel): tfType.LayerVariable[] {
  const collected = (model as unknown as { collectedTrainableWeights?: unknown }).collectedTrainableWeights;
  return (Array.isArray(collected) ? collected : model.trainableWeights) as tfType.LayerVariable[];
}

/** The tf.Variable behind a tfjs-layers weight (typed as a Tensor by tfjs, a Variable named like the weight). */
export function weightVariable(w: tfType.LayerVariable): tfType.Variable {
  const v = w.read() as unknown;
  if (!isVariable(v) || (v as tfType.Variable).name !== w.name) throw internalsError(`weight ${w.name} is not backed by a tf.Variable of the same name`);
  return v as tfType.Variable;
}

/** A WebAssembly.Memory (the lib this builds against has no WebAssembly types). */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
  grow(delta: number): number;
}

const WasmMemoryClass = (globalThis as unknown as { WebAssembly?: { Memory: abstract new (...args: never[]) => WasmMemory } }).WebAssembly?.Memory;

/** The WebAssembly.Memory behind the wasm backend's heap, or null when it cannot be found. */
export function wasmMemory(current: CurrentBackend): WasmMemory | null {
  const m = current.wasm?.wasm.asm?.memory ?? current.wasm?.wasm.wasmMemory;
  return WasmMemoryClass !== undefined && m instanceof WasmMemoryClass ? m : null;
}
