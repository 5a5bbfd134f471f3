/** The tensors of one write, packed the way they cross into the addon: one array of data views and flat columns
 * (dtype codes, ranks, dims, one string of names) instead of one object per tensor, so a save of 10,000 tensors
 * costs the main thread a few operations per tensor, not an object walk on each side of the boundary. */
import { argumentError } from '../binding/errors';
import type { DType, NativeTensorTable, RawDType, TypedArray } from '../binding/native';
import { dtypeCode, dtypeOfCode, isDType } from './dtypes';

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
    if (typeof tensors !== 'object' || tensors === null || Array.isArray(tensors)) {
      throw argumentError('tensors must be an object mapping names to {dtype, shape, data}');
    }
    const out = new TensorList();
    for (const [name, t] of Object.entries(tensors)) {
      if (typeof t !== 'object' || t === null) throw argumentError(`tensor "${name}" must be {dtype, shape, data}`);
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
