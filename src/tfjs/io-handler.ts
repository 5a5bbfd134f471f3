/** A `tf.io.IOHandler` that stores a tfjs model as one ckptio safetensors file (docs/io-handler.md).
 *
 * `model.save(ioHandler(p), { includeOptimizer })` writes every weight (and optimizer weight) as a tensor named
 * by its weight-spec name, with the topology, training config, format info and the weight specs as JSON strings
 * in `__metadata__` under the keys of IO_HANDLER_METADATA_KEYS. The write goes through writeCheckpoint: tmp file
 * (O_EXCL), writes, fdatasync, close, rename, fsync of the directory, XXH3 digests. `tf.loadLayersModel(
 * ioHandler(p))` reads it back; the file is untrusted there: every JSON field is parsed and checked, and every
 * weight spec must have a tensor of the same dtype and shape (ECKPT_FORMAT naming the field and the file).
 *
 * Optimizer weights come back through tfjs's own path (`optimizer.setWeights`), which is what tfjs gives and not
 * byte-exact for Adam (accBeta is recomputed with pow); exact optimizer resume is modelState/restoreModelState.
 *
 * tfjs itself is never loaded here: ModelArtifacts are plain objects. */
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError, argumentError } from '../binding/errors';
import type { TypedArray } from '../binding/native';
import { Compression, TensorEntry, WriteResult, readCheckpoint, writeCheckpoint } from '../format/file';
import { METADATA_KEYS } from '../format/metadata-keys';
import { ensureDirectory } from '../store/local';
import * as nodePath from 'node:path';
import { TFJS_DTYPES, TfjsDType } from './dtypes';

export { TFJS_DTYPES } from './dtypes';
export type { TfjsDType } from './dtypes';

type ModelArtifacts = tfType.io.ModelArtifacts;
type WeightsManifestEntry = tfType.io.WeightsManifestEntry;
type ModelArtifactsInfo = tfType.io.ModelArtifactsInfo;
type SaveResult = tfType.io.SaveResult;
type IOHandler = tfType.io.IOHandler;

/** The `__metadata__` keys an ioHandler file uses (each value a JSON string), from the one table of keys. */
export const IO_HANDLER_METADATA_KEYS = METADATA_KEYS.tfjsHandler;

export const IO_HANDLER_VERSION = '1';

export interface IoHandlerOptions {
  /** Extra string metadata stored with the model (keys must not start with `ckptio.`). */
  metadata?: Record<string, string>;
  /** Passed to writeCheckpoint (default 'none'). */
  compression?: Compression;
  /** Passed to writeCheckpoint (default 'auto'). */
  direct?: 'auto' | 'on' | 'off';
  /** Verify the XXH3 digests on load (default true). */
  verify?: boolean;
}

/** tfjs's SaveResult plus what the ckptio write reported (bytes, O_DIRECT, a leftover file). */
export interface IoSaveResult extends SaveResult {
  write: WriteResult;
}

export interface IoHandler extends IOHandler {
  save(artifacts: ModelArtifacts): Promise<IoSaveResult>;
  load(): Promise<ModelArtifacts>;
}

// ---- shared validation (also used by model-json.ts) ------------------------------------------------------

type Fail = (message: string) => CheckpointError;

export function formatError(path: string): Fail {
  return (message) => new CheckpointError(`${path}: ${message}`, { code: 'ECKPT_FORMAT', path });
}

export function argsError(path: string): Fail {
  return (message) => argumentError(`${path}: ${message}`, path);
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v);
}

/** Bytes of one weight from its (already checked) spec. */
export function specBytes(spec: WeightsManifestEntry): number {
  return spec.shape.reduce((n, d) => n * d, 1) * TFJS_DTYPES[spec.dtype as TfjsDType].bytes;
}

/** Checks a list of weight specs (from tfjs, or from an untrusted file) and returns a clean copy with only the
 * fields tfjs reads, plus the total byte count. `where` names the field in messages. */
export function checkWeightSpecs(specs: unknown, where: string, fail: Fail): { specs: WeightsManifestEntry[]; bytes: number } {
  if (!Array.isArray(specs)) throw fail(`${where} must be an array of weight specs`);
  const out: WeightsManifestEntry[] = [];
  const names = new Set<string>();
  let bytes = 0;
  specs.forEach((s: unknown, i) => {
    const at = `${where}[${i}]`;
    if (!isPlainObject(s)) throw fail(`${at} must be an object {name, shape, dtype}`);
    const { name, shape, dtype, group, quantization } = s;
    if (typeof name !== 'string' || name.length === 0) throw fail(`${at}.name must be a non-empty string`);
    if (name === '__metadata__') throw fail(`${at}.name "__metadata__" is reserved by safetensors`);
    if (names.has(name)) throw fail(`${at}.name ${JSON.stringify(name)} appears twice`);
    names.add(name);
    const label = `${at} (${JSON.stringify(name)})`;
    if (typeof dtype !== 'string' || !Object.hasOwn(TFJS_DTYPES, dtype)) {
      throw fail(`${label}.dtype ${JSON.stringify(dtype)} is not supported (ckptio stores float32, int32 and bool weights)`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail(`${label}.shape must be an array of non-negative integers`);
    }
    if (quantization !== undefined && quantization !== null) {
      throw fail(`${label}.quantization: quantized weights are not supported`);
    }
    if (group !== undefined && group !== 'model' && group !== 'optimizer') {
      throw fail(`${label}.group must be "model" or "optimizer", not ${JSON.stringify(group)}`);
    }
    const entry: WeightsManifestEntry = { name, shape: [...(shape as number[])], dtype: dtype as TfjsDType };
    if (group !== undefined) entry.group = group;
    const n = specBytes(entry);
    if (!Number.isSafeInteger(n) || !Number.isSafeInteger(bytes + n)) throw fail(`${label}.shape is too large`);
    bytes += n;
    out.push(entry);
  });
  return { specs: out, bytes };
}

/** The JSON-valued optional fields of ModelArtifacts, checked and copied. */
export function checkArtifactFields(a: Record<string, unknown>, fail: Fail, prefix = ''): Partial<ModelArtifacts> {
  const out: Partial<ModelArtifacts> = {};
  for (const field of ['trainingConfig', 'userDefinedMetadata', 'signature', 'modelInitializer', 'initializerSignature'] as const) {
    const v = a[field];
    if (v === undefined || v === null) continue;
    if (!isPlainObject(v)) throw fail(`${prefix}${field} must be a JSON object`);
    (out as Record<string, unknown>)[field] = v;
  }
  if (a.trainingConfig != null) checkTrainingConfig(a.trainingConfig as Record<string, unknown>, fail, `${prefix}trainingConfig`);
  for (const field of ['format', 'generatedBy'] as const) {
    const v = a[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw fail(`${prefix}${field} must be a string`);
    out[field] = v;
  }
  if (a.convertedBy !== undefined) {
    if (a.convertedBy !== null && typeof a.convertedBy !== 'string') throw fail(`${prefix}convertedBy must be a string or null`);
    out.convertedBy = a.convertedBy as string | null;
  }
  return out;
}

function checkTrainingConfig(tc: Record<string, unknown>, fail: Fail, where: string): void {
  if (!isPlainObject(tc.optimizer_config)) throw fail(`${where}.optimizer_config must be a JSON object`);
  const loss = tc.loss;
  const lossOk =
    typeof loss === 'string' ||
    (Array.isArray(loss) && loss.every((l) => typeof l === 'string')) ||
    (isPlainObject(loss) && Object.values(loss).every((l) => typeof l === 'string'));
  // tfjs saves a loss given as a function as {} (it then cannot train); that is tfjs's shape, so it passes.
  if (!lossOk) throw fail(`${where}.loss must be a string, an array of strings or an object of strings`);
}

/** weightData as one contiguous byte view (no copy for a single ArrayBuffer). */
export function weightBytes(data: unknown, fail: Fail): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data) && data.every((b) => b instanceof ArrayBuffer)) {
    const total = data.reduce((n: number, b: ArrayBuffer) => n + b.byteLength, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const b of data as ArrayBuffer[]) {
      out.set(new Uint8Array(b), at);
      at += b.byteLength;
    }
    return out;
  }
  throw fail('weightData must be an ArrayBuffer or an array of ArrayBuffers');
}

/** Bool weights must be 0 or 1 (tfjs writes them as one byte each). */
export function checkBoolBytes(spec: WeightsManifestEntry, bytes: Uint8Array, fail: Fail, where: string): void {
  if (spec.dtype !== 'bool') return;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! > 1) throw fail(`${where}: bool weight ${JSON.stringify(spec.name)} holds the byte ${bytes[i]} at element ${i}`);
  }
}

/** What tfjs's own handlers report (io_utils getModelArtifactsInfoForJSON), computed without loading tfjs. */
export function artifactsInfo(a: ModelArtifacts, weightDataBytes: number): ModelArtifactsInfo {
  return {
    dateSaved: new Date(),
    modelTopologyType: 'JSON',
    modelTopologyBytes: a.modelTopology == null ? 0 : Buffer.byteLength(JSON.stringify(a.modelTopology), 'utf8'),
    weightSpecsBytes: a.weightSpecs == null ? 0 : Buffer.byteLength(JSON.stringify(a.weightSpecs), 'utf8'),
    weightDataBytes,
  };
}

export interface CheckedArtifacts {
  /** The artifacts with only known, checked fields (weightSpecs cleaned; weightData not included). */
  artifacts: ModelArtifacts;
  specs: WeightsManifestEntry[];
  data: Uint8Array;
}

/** Checks ModelArtifacts handed in by the caller (model.save, or exportTfjsModel) — ECKPT_ARGS on bad input. */
export function checkSaveArtifacts(a: unknown, path: string): CheckedArtifacts {
  const fail = argsError(path);
  if (!isPlainObject(a)) throw fail('model artifacts must be an object');
  if (a.modelTopology instanceof ArrayBuffer) throw fail('a binary (GraphDef) modelTopology is not supported; only JSON topologies (LayersModel)');
  if (a.modelTopology != null && !isPlainObject(a.modelTopology)) throw fail('modelTopology must be a JSON object');
  if (a.weightData == null && a.getWeightStream != null) throw fail('streamed weights (getWeightStream) are not supported; load without streamWeights');
  if ((a.weightData == null) !== (a.weightSpecs == null)) throw fail('weightData and weightSpecs must be given together');
  const { specs, bytes } = a.weightSpecs == null ? { specs: [], bytes: 0 } : checkWeightSpecs(a.weightSpecs, 'weightSpecs', fail);
  const data = a.weightData == null ? new Uint8Array(0) : weightBytes(a.weightData, fail);
  if (data.byteLength !== bytes) throw fail(`weightData holds ${data.byteLength} bytes but the weight specs need ${bytes}`);
  const artifacts: ModelArtifacts = { ...checkArtifactFields(a, fail) };
  if (a.modelTopology != null) artifacts.modelTopology = a.modelTopology;
  if (a.weightSpecs != null) artifacts.weightSpecs = specs;
  return { artifacts, specs, data };
}

// ---- the handler ------------------------------------------------------------------------------------------

const K = IO_HANDLER_METADATA_KEYS;

function checkOptions(options: unknown): IoHandlerOptions {
  if (options === undefined) return {};
  if (!isPlainObject(options)) throw argumentError('ioHandler options must be an object');
  const o = options as IoHandlerOptions;
  if (o.metadata !== undefined) {
    if (!isPlainObject(o.metadata)) throw argumentError('ioHandler options.metadata must be an object of strings');
    for (const [k, v] of Object.entries(o.metadata)) {
      if (k.startsWith('ckptio.')) throw argumentError(`ioHandler options.metadata: the key ${JSON.stringify(k)} is reserved (ckptio.*)`);
      if (typeof v !== 'string') throw argumentError(`ioHandler options.metadata.${k} must be a string`);
    }
  }
  if (o.verify !== undefined && typeof o.verify !== 'boolean') throw argumentError('ioHandler options.verify must be a boolean');
  return o;
}

/** The metadata map for a checked set of artifacts. */
function toMetadata(c: CheckedArtifacts, extra: Record<string, string> | undefined): Record<string, string> {
  const a = c.artifacts;
  const md: Record<string, string> = { ...extra };
  md[K.version] = IO_HANDLER_VERSION;
  md[K.modelTopology] = JSON.stringify(a.modelTopology ?? null);
  md[K.weightSpecs] = JSON.stringify(c.specs);
  md[K.formatInfo] = JSON.stringify({ format: a.format ?? null, generatedBy: a.generatedBy ?? null, convertedBy: a.convertedBy ?? null });
  if (a.trainingConfig != null) md[K.trainingConfig] = JSON.stringify(a.trainingConfig);
  if (a.userDefinedMetadata != null) md[K.userDefinedMetadata] = JSON.stringify(a.userDefinedMetadata);
  if (a.signature != null) md[K.signature] = JSON.stringify(a.signature);
  if (a.modelInitializer != null) md[K.modelInitializer] = JSON.stringify(a.modelInitializer);
  if (a.initializerSignature != null) md[K.initializerSignature] = JSON.stringify(a.initializerSignature);
  return md;
}

/** Tensors for writeCheckpoint: byte views over the weight data, in spec order, no copy. */
function toTensors(c: CheckedArtifacts, path: string): Record<string, TensorEntry> {
  const tensors: Record<string, TensorEntry> = {};
  let at = 0;
  for (const spec of c.specs) {
    const n = specBytes(spec);
    const data = c.data.subarray(at, at + n);
    checkBoolBytes(spec, data, argsError(path), 'weightData');
    tensors[spec.name] = { dtype: TFJS_DTYPES[spec.dtype as TfjsDType].dtype, shape: spec.shape, data };
    at += n;
  }
  return tensors;
}

/** Writes checked artifacts as one ckptio file (used by the handler and by importTfjsModelToFile). */
export async function saveArtifacts(path: string, artifacts: ModelArtifacts, options: IoHandlerOptions = {}): Promise<IoSaveResult> {
  try {
    return await saveChecked(path, artifacts, options);
  } catch (err) {
    throw err instanceof CheckpointError ? err : argumentError(`${path}: ${String((err as Error)?.message ?? err)}`, path);
  }
}

async function saveChecked(path: string, artifacts: ModelArtifacts, options: IoHandlerOptions): Promise<IoSaveResult> {
  const o = checkOptions(options);
  const c = checkSaveArtifacts(artifacts, path);
  const writeOptions: { metadata: Record<string, string>; compression?: Compression; direct?: 'auto' | 'on' | 'off' } = {
    metadata: toMetadata(c, o.metadata),
  };
  if (o.compression !== undefined) writeOptions.compression = o.compression;
  if (o.direct !== undefined) writeOptions.direct = o.direct;
  await ensureDirectory(nodePath.dirname(nodePath.resolve(path))); // as tfjs's file:// handler and Checkpointer do
  const write = await writeCheckpoint(path, toTensors(c, path), writeOptions);
  return { modelArtifactsInfo: artifactsInfo(c.artifacts, c.data.byteLength), write };
}

function parseField(metadata: Record<string, string>, key: string, fail: Fail, required: boolean): unknown {
  const text = metadata[key];
  if (text === undefined) {
    if (required) throw fail(`metadata ${key} is missing`);
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw fail(`metadata ${key} is not valid JSON (${(err as Error).message})`);
  }
}

/** Reads and checks an ioHandler file into ModelArtifacts (weightData one ArrayBuffer in weight-spec order). */
export async function loadArtifacts(path: string, options: IoHandlerOptions = {}): Promise<ModelArtifacts> {
  try {
    return await loadChecked(path, options);
  } catch (err) {
    throw err instanceof CheckpointError ? err : formatError(path)(String((err as Error)?.message ?? err));
  }
}

async function loadChecked(path: string, options: IoHandlerOptions): Promise<ModelArtifacts> {
  const o = checkOptions(options);
  const file = await readCheckpoint(path, { verify: o.verify ?? true });
  const fail = formatError(path);
  const md = file.metadata;
  const version = md[K.version];
  if (version === undefined) {
    const training = md[METADATA_KEYS.tfjsModelJson];
    if (training !== undefined) return artifactsOfTrainingCheckpoint(file.tensors, training, fail);
    throw fail(
      `not a ckptio tfjs model file: metadata ${K.version} is missing, and it is no training checkpoint of a LayersModel (no ${METADATA_KEYS.tfjsModelJson}); ` +
        'restore it into your model with restoreModelState, then model.save(ioHandler(path))',
    );
  }
  if (version !== IO_HANDLER_VERSION) throw fail(`metadata ${K.version} is ${JSON.stringify(version)}; this ckptio reads version ${IO_HANDLER_VERSION}`);

  const topology = parseField(md, K.modelTopology, fail, true);
  if (!isPlainObject(topology)) throw fail(`metadata ${K.modelTopology} must be a JSON object`);
  const { specs, bytes } = checkWeightSpecs(parseField(md, K.weightSpecs, fail, true), `metadata ${K.weightSpecs}`, fail);
  const formatInfo = parseField(md, K.formatInfo, fail, true);
  if (!isPlainObject(formatInfo)) throw fail(`metadata ${K.formatInfo} must be a JSON object {format, generatedBy, convertedBy}`);
  const fields: Record<string, unknown> = {
    format: formatInfo.format,
    generatedBy: formatInfo.generatedBy,
    convertedBy: formatInfo.convertedBy,
    trainingConfig: parseField(md, K.trainingConfig, fail, false),
    userDefinedMetadata: parseField(md, K.userDefinedMetadata, fail, false),
    signature: parseField(md, K.signature, fail, false),
    modelInitializer: parseField(md, K.modelInitializer, fail, false),
    initializerSignature: parseField(md, K.initializerSignature, fail, false),
  };
  const keyOf: Record<string, string> = {
    format: `${K.formatInfo}.format`,
    generatedBy: `${K.formatInfo}.generatedBy`,
    convertedBy: `${K.formatInfo}.convertedBy`,
    trainingConfig: K.trainingConfig,
    userDefinedMetadata: K.userDefinedMetadata,
    signature: K.signature,
    modelInitializer: K.modelInitializer,
    initializerSignature: K.initializerSignature,
  };
  const rest = checkArtifactFields(fields, (m) => {
    const field = Object.keys(keyOf).find((f) => m.startsWith(f));
    return fail(field ? `metadata ${keyOf[field]}${m.slice(field.length)}` : m);
  });

  // Every spec has its tensor with the same dtype and shape; no tensor is left over.
  const names = new Set(specs.map((s) => s.name));
  const extra = Object.keys(file.tensors).filter((n) => !names.has(n));
  if (extra.length > 0) throw fail(`tensors without a weight spec in ${K.weightSpecs}: ${extra.map((n) => JSON.stringify(n)).join(', ')}`);
  const weightData = new ArrayBuffer(bytes);
  const out = new Uint8Array(weightData);
  let at = 0;
  for (const spec of specs) {
    const t = file.tensors[spec.name];
    const label = `weight ${JSON.stringify(spec.name)}`;
    if (!t) throw fail(`${label} of ${K.weightSpecs} has no tensor in the file`);
    const want = TFJS_DTYPES[spec.dtype as TfjsDType].dtype;
    if (t.dtype !== want) throw fail(`${label}: the tensor is ${t.dtype} but ${K.weightSpecs} says ${spec.dtype} (${want})`);
    if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      throw fail(`${label}: the tensor has shape [${t.shape.join(', ')}] but ${K.weightSpecs} says [${spec.shape.join(', ')}]`);
    }
    const n = specBytes(spec);
    const src = bytesOf(t.data);
    if (src.byteLength !== n) throw fail(`${label}: the tensor holds ${src.byteLength} bytes, the spec needs ${n}`);
    checkBoolBytes(spec, src, fail, K.weightSpecs);
    out.set(src, at);
    at += n;
  }
  if (at !== bytes) throw fail(`the weights add up to ${at} bytes, the specs to ${bytes}`);
  return { modelTopology: topology, ...rest, weightSpecs: specs, weightData };
}

/** A training checkpoint of a LayersModel (modelState) as ModelArtifacts: the recorded topology and, in tfjs's
 * weight order, each weight's tensor under its tfjs name. Optimizer state and variables are left out. */
function artifactsOfTrainingCheckpoint(tensors: Record<string, TensorEntry>, text: string, fail: (m: string) => CheckpointError): ModelArtifacts {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw fail(`metadata ${METADATA_KEYS.tfjsModelJson} is not JSON`);
  }
  const m = parsed as { modelTopology?: unknown; format?: unknown; generatedBy?: unknown; weights?: unknown };
  if (
    !isPlainObject(parsed) ||
    !isPlainObject(m.modelTopology) ||
    !Array.isArray(m.weights) ||
    !m.weights.every((w) => Array.isArray(w) && w.length === 2 && typeof w[0] === 'string' && typeof w[1] === 'string')
  ) {
    throw fail(`metadata ${METADATA_KEYS.tfjsModelJson} must be {modelTopology, weights: [[key, name], ...]}`);
  }
  const pairs = m.weights as [string, string][];
  const specs: WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  let bytes = 0;
  for (const [key, name] of pairs) {
    const t = Object.hasOwn(tensors, key) ? tensors[key] : undefined;
    if (!t) throw fail(`weight ${JSON.stringify(name)}: its tensor ${JSON.stringify(key)} is not in the checkpoint`);
    const dtype = (Object.keys(TFJS_DTYPES) as TfjsDType[]).find((d) => TFJS_DTYPES[d].dtype === t.dtype);
    if (!dtype) throw fail(`weight ${JSON.stringify(name)}: dtype ${t.dtype} is not a tfjs dtype`);
    specs.push({ name, shape: [...t.shape], dtype });
    const b = bytesOf(t.data);
    parts.push(b);
    bytes += b.byteLength;
  }
  const weightData = new ArrayBuffer(bytes);
  const out = new Uint8Array(weightData);
  let at = 0;
  for (const b of parts) {
    out.set(b, at);
    at += b.byteLength;
  }
  return {
    modelTopology: m.modelTopology,
    format: typeof m.format === 'string' ? m.format : 'layers-model',
    generatedBy: typeof m.generatedBy === 'string' ? m.generatedBy : 'ckptio',
    convertedBy: null,
    weightSpecs: specs,
    weightData,
  } as ModelArtifacts;
}

function bytesOf(view: TypedArray): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** A tf.io.IOHandler on one ckptio file: `model.save(ioHandler(p), { includeOptimizer })` and
 * `tf.loadLayersModel(ioHandler(p))`. */
export function ioHandler(path: string, options?: IoHandlerOptions): IoHandler {
  if (typeof path !== 'string' || path.length === 0) throw argumentError('ioHandler: path must be a non-empty string');
  const o = checkOptions(options);
  return {
    save: (artifacts: ModelArtifacts) => saveArtifacts(path, artifacts, o),
    load: () => loadArtifacts(path, o),
  };
}
