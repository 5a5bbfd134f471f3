/** The tensors of one write, packed the way they cross into the addon: one array of data views and flat columns
 * (dtype codes, ranks, dims, one string of names) instead of one object per tensor, so a save of 10,000 tensors
 * costs the main thread a few operations per tensor, not an object walk on each side of the boundary. */
import { argumentError } from '../binding/errors';
import type { DType, NativeReadTable, NativeTensorTable, RawDType, TypedArray } from '../binding/contract';
import { dtypeCode, dtypeOfCode, isDType, readDtypeOfCode, viewAs } from './dtypes';

export interface TensorEntry {
  /** A RawDType only in what a read returns (its data is then a Uint8Array); writing one is ECKPT_ARGS. */
  dtype: DType | RawDType;
  shape: number[];
  data: TypedArray;
}

export class TensorList {
  private readonly nameList: string[] = [];
  private readonly nameLengths: number[] = [];
  private readonly codes: number[] = [];
  private readonly ranks: number[] = [];
  private readonly dims: number[] = [];
  private readonly views: ArrayBufferView[] = [];
  private dimStarts: number[] | null = null;

  get length(): number {
    return this.nameList.length;
  }

  /** Appends a tensor the caller has checked (a dtype the addon knows; the addon checks the byte count). */
  push(name: string, dtype: DType, shape: readonly number[], data: ArrayBufferView): void {
    this.pushCode(name, dtypeCode(dtype), shape, data);
  }

  /** push() with the dtype's code (dtypeCode) looked up once by the caller: the per-tensor path of a snapshot. */
  pushCode(name: string, code: number, shape: readonly number[], data: ArrayBufferView): void {
    if (shape.length > 255) throw argumentError(`tensor "${name}": rank ${shape.length} is above 255`);
    this.nameList.push(name);
    this.nameLengths.push(name.length);
    this.codes.push(code);
    this.ranks.push(shape.length);
    for (let d = 0; d < shape.length; d++) this.dims.push(shape[d]!);
    this.views.push(data);
    this.dimStarts = null;
  }

  name(i: number): string {
    return this.nameList[i]!;
  }

  dtype(i: number): DType {
    return dtypeOfCode(this.codes[i]!);
  }

  shape(i: number): number[] {
    if (this.dimStarts === null) {
      // Where each tensor's dims begin, computed once after the last push.
      const starts: number[] = new Array<number>(this.ranks.length);
      for (let k = 0, at = 0; k < this.ranks.length; at += this.ranks[k]!, k++) starts[k] = at;
      this.dimStarts = starts;
    }
    const start = this.dimStarts[i]!;
    return this.dims.slice(start, start + this.ranks[i]!);
  }

  data(i: number): ArrayBufferView {
    return this.views[i]!;
  }

  /** The tensors at `indices`, in that order (their data is shared, not copied). */
  select(indices: readonly number[]): TensorList {
    const out = new TensorList();
    for (const i of indices) out.push(this.name(i), this.dtype(i), this.shape(i), this.views[i]!);
    return out;
  }

  /** Name -> entry; the data views keep the element type they were given. */
  toRecord(): Record<string, TensorEntry> {
    const out: Record<string, TensorEntry> = {};
    for (let i = 0; i < this.length; i++) out[this.name(i)] = { dtype: this.dtype(i), shape: this.shape(i), data: this.views[i] as TypedArray };
    return out;
  }

  /** The form the addon reads (native/addon/tensor_table.cc, GetTensors). */
  pack(): NativeTensorTable {
    return {
      names: this.nameList.join(''),
      nameLengths: Uint32Array.from(this.nameLengths),
      dtypes: Uint8Array.from(this.codes),
      ranks: Uint8Array.from(this.ranks),
      dims: Float64Array.from(this.dims),
      data: this.views,
    };
  }

  /** A caller's name -> {dtype, shape, data} object, checked as untrusted input. */
  static fromRecord(tensors: Record<string, TensorEntry>): TensorList {
    checkTensorRecord(tensors);
    const out = new TensorList();
    for (const [name, t] of Object.entries(tensors)) {
      checkEntryKind(name, t);
      if (!isDType(t.dtype)) throw argumentError(`tensor "${name}": unknown dtype ${JSON.stringify(t.dtype)}`);
      if (!Array.isArray(t.shape) || t.shape.length > 255 || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw argumentError(`tensor "${name}": shape must be an array of at most 255 non-negative integers`);
      }
      if (!ArrayBuffer.isView(t.data)) throw argumentError(`tensor "${name}": data must be a TypedArray`);
      out.push(name, t.dtype, t.shape, t.data);
    }
    return out;
  }

  static from(tensors: Record<string, TensorEntry> | TensorList): TensorList {
    return tensors instanceof TensorList ? tensors : TensorList.fromRecord(tensors);
  }
}

/** A tfjs tensor, recognised without importing tfjs. */
function isTfTensor(v: unknown): boolean {
  return typeof v === 'object' && v !== null && 'dataId' in v && 'dtype' in v && 'shape' in v && typeof (v as { dataSync?: unknown }).dataSync === 'function';
}

/** The record of named tensors a save or write takes, checked for the shapes a newcomer passes by mistake. */
export function checkTensorRecord(tensors: unknown): void {
  if (isTfTensor(tensors)) {
    throw argumentError(
      'tensors is a single tf.Tensor; pass named tensors: snapshot(tf, { w: tensor }) or modelState(model, optimizer) for tfjs tensors, or { w: { dtype, shape, data } } for typed arrays',
    );
  }
  if (typeof tensors !== 'object' || tensors === null || Array.isArray(tensors) || ArrayBuffer.isView(tensors)) {
    throw argumentError(`tensors must be an object mapping names to { dtype, shape, data } (received ${describe(tensors)})`);
  }
}

/** One entry of that record: a tf.Tensor or a bare typed array is named as such, with what to pass instead. */
export function checkEntryKind(name: string, t: unknown): asserts t is TensorEntry {
  if (isTfTensor(t)) {
    throw argumentError(
      `tensor "${name}" is a tf.Tensor; pass snapshot(tf, { ${JSON.stringify(name)}: tensor }) or modelState(model, optimizer) as tensors (no copy), or { dtype, shape, data: tensor.dataSync() }`,
    );
  }
  if (ArrayBuffer.isView(t)) {
    const dtype = t instanceof Float32Array ? 'float32' : t instanceof Int32Array ? 'int32' : '<dtype>';
    throw argumentError(`tensor "${name}" is a bare ${t.constructor.name}; pass { dtype: '${dtype}', shape: [...], data: it }`);
  }
  if (typeof t !== 'object' || t === null) throw argumentError(`tensor "${name}" must be { dtype, shape, data } (received ${describe(t)})`);
  if (!ArrayBuffer.isView((t as TensorEntry).data))
    throw argumentError(`tensor "${name}": data must be a TypedArray such as Float32Array (received ${describe((t as TensorEntry).data)})`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'object') return `an object with keys ${Object.keys(v).slice(0, 5).join(', ') || '(none)'}`;
  return typeof v;
}

/** A read's packed table as name -> entry, each tensor a view over the one mapping (no copy). */
export function unpackRead(table: NativeReadTable): Record<string, TensorEntry> {
  const tensors: Record<string, TensorEntry> = {};
  let nameAt = 0;
  let dimAt = 0;
  for (let i = 0; i < table.dtypes.length; i++) {
    const name = table.names.slice(nameAt, nameAt + table.nameLengths[i]!);
    nameAt += table.nameLengths[i]!;
    const rank = table.ranks[i]!;
    const shape = new Array<number>(rank);
    for (let d = 0; d < rank; d++) shape[d] = table.dims[dimAt + d]!;
    dimAt += rank;
    const dtype = readDtypeOfCode(table.dtypes[i]!);
    const entry: TensorEntry = { dtype, shape, data: viewAs(dtype, table.buffer, table.offsets[i]!, table.lengths[i]!) };
    // Assigning "__proto__" would set the prototype: that name is defined as the own key it is.
    if (name === '__proto__') Object.defineProperty(tensors, name, { value: entry, enumerable: true, writable: true, configurable: true });
    else tensors[name] = entry;
  }
  return tensors;
}
