/** tfjs's own on-disk format: a `model.json` plus weight files, loadable with `tf.loadLayersModel` anywhere
 * (browsers over http, Node through tf.io.fromMemory or modelJsonHandler). docs/io-handler.md.
 *
 * Export is crash-safe as a pair: the weights go first under a content-addressed name
 * (`weights-<xxh3>.bin`), then model.json, pointing at them, replaces the old one through the commit
 * protocol, and only then are older `weights-*.bin` files removed. A crash at any point leaves either the old
 * pair or the new one loadable.
 *
 * Import treats model.json and its weightsManifest as untrusted: every `paths` entry must be a plain file
 * name inside the directory (an optional leading `./`, as tfjs's browser handlers write it; no `..`, `/`, `\`,
 * NUL, absolute path, or symlink whose real path leaves the directory), every weight spec is checked, and the
 * bytes of each group's files must equal what its specs need. */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError, argumentError, toCheckpointError } from '../binding/errors';
import { native } from '../binding/native';
import { removeFiles, writeFileAtomic } from '../format/file';
import { ensureDirectory } from '../store/local';
import {
  IoHandlerOptions,
  IoSaveResult,
  artifactsInfo,
  checkArtifactFields,
  checkBoolBytes,
  checkSaveArtifacts,
  checkWeightSpecs,
  formatError,
  isPlainObject,
  loadArtifacts,
  saveArtifacts,
  specBytes,
} from './io-handler';

type ModelArtifacts = tfType.io.ModelArtifacts;
type WeightsManifestEntry = tfType.io.WeightsManifestEntry;
type IOHandler = tfType.io.IOHandler;
type SaveResult = tfType.io.SaveResult;

export const MODEL_JSON = 'model.json';
/** The names export gives weight files; only files of this shape are ever removed by an export. */
export const EXPORTED_WEIGHTS_RE = /^weights-[0-9a-f]{16}\.bin$/;
/** A model.json larger than this is refused on import before it is read. */
export const MAX_MODEL_JSON_BYTES = 256 << 20;

export interface ExportOptions {
  /** For a ckptio file source: verify its digests while reading it (default true). */
  verify?: boolean;
}

export interface ExportResult {
  dir: string;
  /** Path of the model.json written. */
  modelJson: string;
  /** File name of the weights (`weights-<xxh3>.bin`), as listed in model.json's weightsManifest. */
  weightsFile: string;
  weightBytes: number;
  /** Older exported weight files removed after model.json was committed. */
  removed: string[];
  /** Set when the export is committed but removing the older weight files failed: they stay, harmless. */
  leftover?: { names: string[]; error: CheckpointError };
}

export interface ImportOptions {
  /** Name of the model JSON file inside the directory (default model.json). */
  modelJson?: string;
}

// ---- export -----------------------------------------------------------------------------------------------

/** The model.json object tfjs writes (io_utils getModelJSONForModelArtifacts), for one weights file. */
function modelJsonFor(a: ModelArtifacts, specs: WeightsManifestEntry[], weightsFile: string): Record<string, unknown> {
  const json: Record<string, unknown> = {
    modelTopology: a.modelTopology,
    format: a.format,
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy,
    weightsManifest: [{ paths: specs.length > 0 ? [weightsFile] : [], weights: specs }],
  };
  for (const k of ['signature', 'userDefinedMetadata', 'modelInitializer', 'initializerSignature', 'trainingConfig'] as const) {
    if (a[k] != null) json[k] = a[k];
  }
  return json;
}

/** Exports a ckptio ioHandler file (path) or ModelArtifacts to `outDir/model.json` + `outDir/weights-<xxh3>.bin`. */
export async function exportTfjsModel(source: string | ModelArtifacts, outDir: string, options: ExportOptions = {}): Promise<ExportResult> {
  try {
    return await exportChecked(source, outDir, options);
  } catch (err) {
    throw err instanceof CheckpointError ? err : toCheckpointError(err);
  }
}

async function exportChecked(source: string | ModelArtifacts, outDir: string, options: ExportOptions): Promise<ExportResult> {
  if (typeof outDir !== 'string' || outDir.length === 0) throw argumentError('exportTfjsModel: outDir must be a non-empty string');
  if (!isPlainObject(options)) throw argumentError('exportTfjsModel: options must be an object');
  if (options.verify !== undefined && typeof options.verify !== 'boolean') throw argumentError('exportTfjsModel: options.verify must be a boolean');
  let artifacts: ModelArtifacts;
  if (typeof source === 'string') {
    artifacts = await loadArtifacts(source, options.verify === undefined ? {} : { verify: options.verify });
  } else if (isPlainObject(source)) {
    artifacts = source;
  } else {
    throw argumentError('exportTfjsModel: source must be a ckptio file path or ModelArtifacts');
  }
  const checked = checkSaveArtifacts(artifacts, outDir);
  const data = checked.data;
  const weightsFile = `weights-${native.xxh3(data)}.bin`;
  const json = Buffer.from(JSON.stringify(modelJsonFor(checked.artifacts, checked.specs, weightsFile)), 'utf8');

  await ensureDirectory(outDir);
  // 1. The weights, durable under their own name (a new name unless the content is the same).
  if (checked.specs.length > 0) await writeFileAtomic(nodePath.join(outDir, weightsFile), data);
  // 2. model.json, pointing at them, replaces the old one atomically: from here the new pair is the model.
  const modelJson = nodePath.join(outDir, MODEL_JSON);
  await writeFileAtomic(modelJson, json);
  // 3. Older exported weights are unreferenced now.
  const stale = (await fs.promises.readdir(outDir)).filter((n) => EXPORTED_WEIGHTS_RE.test(n) && n !== weightsFile);
  const result: ExportResult = { dir: outDir, modelJson, weightsFile, weightBytes: data.byteLength, removed: [] };
  if (stale.length > 0) {
    try {
      await removeFiles(outDir, stale);
      result.removed = stale;
    } catch (err) {
      result.leftover = { names: stale, error: toCheckpointError(err) };
    }
  }
  return result;
}

// ---- import -----------------------------------------------------------------------------------------------

type Fail = (message: string) => CheckpointError;

/** A weightsManifest `paths` entry as a plain file name, or a CheckpointError saying why not. */
export function checkWeightPath(p: unknown, where: string, fail: Fail): string {
  if (typeof p !== 'string') throw fail(`${where} must be a string`);
  const shown = JSON.stringify(p);
  if (p.includes('\0')) throw fail(`${where} ${shown} contains a NUL byte`);
  if (nodePath.isAbsolute(p) || /^[A-Za-z]:/.test(p) || p.startsWith('\\'))
    throw fail(`${where} ${shown} is an absolute path; it must be a file name inside the directory`);
  const name = p.startsWith('./') ? p.slice(2) : p;
  if (name.split(/[\\/]/).includes('..')) throw fail(`${where} ${shown} leaves the directory (..)`);
  if (name.length === 0 || name === '.' || name.includes('/') || name.includes('\\')) {
    throw fail(`${where} ${shown} must be a plain file name inside the directory (no '/', '\\')`);
  }
  if (Buffer.byteLength(name) > 255) throw fail(`${where} ${shown} is longer than a file name may be`);
  return name;
}

function inside(base: string, real: string): boolean {
  return real.startsWith(base.endsWith(nodePath.sep) ? base : base + nodePath.sep);
}

/** The real path and size of `name` in `base` (a real path), after checking that the real path stays inside
 * and is a regular file. */
async function resolveInside(base: string, name: string, fail: Fail, label: string): Promise<{ real: string; size: number }> {
  const candidate = nodePath.join(base, name);
  let real: string;
  try {
    real = await fs.promises.realpath(candidate);
  } catch (err) {
    const e = toCheckpointError(err);
    if (e.code === 'ENOENT') throw fail(`${label} ${JSON.stringify(name)} does not exist (or is a dangling symlink)`);
    throw e;
  }
  if (!inside(base, real)) throw fail(`${label} ${JSON.stringify(name)} is a symlink to ${real}, outside the directory`);
  const st = await fs.promises.stat(real).catch((err: unknown) => {
    throw toCheckpointError(err);
  });
  if (!st.isFile()) throw fail(`${label} ${JSON.stringify(name)} is not a regular file`);
  return { real, size: st.size };
}

/** Reads exactly `size` bytes of a resolved file, refusing a symlink swapped in since it was resolved. */
async function readExactly(real: string, size: number, fail: Fail, label: string): Promise<Buffer> {
  const fh = await fs.promises.open(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW).catch((err: unknown) => {
    throw toCheckpointError(err);
  });
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size !== size) throw fail(`${label} changed while it was read`);
    const bytes = Buffer.alloc(size);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await fh.read(bytes, at, size - at, at);
      if (bytesRead === 0) throw fail(`${label} shrank while it was read`);
      at += bytesRead;
    }
    return bytes;
  } finally {
    await fh.close();
  }
}

/** Where the model JSON is: a directory (model.json inside), a path to the .json file, or a file:// URL. */
async function locate(source: string, options: ImportOptions): Promise<{ dir: string; name: string }> {
  let p = source.startsWith('file://') ? source.slice('file://'.length) : source;
  if (p.length === 0) throw argumentError('importTfjsModel: dir must be a non-empty string');
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(p);
  } catch (err) {
    throw toCheckpointError(err);
  }
  if (st.isFile()) {
    if (options.modelJson !== undefined) throw argumentError('importTfjsModel: options.modelJson is for a directory source, not a file', p);
    return { dir: nodePath.dirname(p), name: nodePath.basename(p) };
  }
  if (!st.isDirectory()) throw argumentError(`importTfjsModel: ${p} is neither a directory nor a file`, p);
  const name = options.modelJson ?? MODEL_JSON;
  checkWeightPath(name, 'options.modelJson', (m) => argumentError(`importTfjsModel: ${m}`, p));
  p = p.replace(/[\\/]+$/, '') || p;
  return { dir: p, name: name.startsWith('./') ? name.slice(2) : name };
}

/** Reads and checks a tfjs model directory (model.json + weight files) into ModelArtifacts, weightData one
 * ArrayBuffer with every group's files concatenated in manifest order (what tfjs's own loaders produce). */
export async function importTfjsModel(dir: string, options: ImportOptions = {}): Promise<ModelArtifacts> {
  try {
    return await importChecked(dir, options);
  } catch (err) {
    throw err instanceof CheckpointError ? err : toCheckpointError(err);
  }
}

async function importChecked(source: string, options: ImportOptions): Promise<ModelArtifacts> {
  if (typeof source !== 'string') throw argumentError('importTfjsModel: dir must be a string');
  if (!isPlainObject(options)) throw argumentError('importTfjsModel: options must be an object');
  const { dir, name } = await locate(source, options);
  const base = await fs.promises.realpath(dir).catch((err: unknown) => {
    throw toCheckpointError(err);
  });
  const jsonPath = nodePath.join(dir, name);
  const fail = formatError(jsonPath);
  const jsonFile = await resolveInside(base, name, fail, 'the model JSON');
  if (jsonFile.size > MAX_MODEL_JSON_BYTES) throw fail(`is ${jsonFile.size} bytes, more than the ${MAX_MODEL_JSON_BYTES} accepted`);
  const jsonBytes = await readExactly(jsonFile.real, jsonFile.size, fail, 'the model JSON');
  let json: unknown;
  try {
    json = JSON.parse(jsonBytes.toString('utf8'));
  } catch (err) {
    throw fail(`not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(json)) throw fail('must hold a JSON object {modelTopology, weightsManifest, ...}');
  if (!isPlainObject(json.modelTopology)) throw fail('modelTopology must be a JSON object');
  const rest = checkArtifactFields(json, fail);
  const artifacts: ModelArtifacts = { modelTopology: json.modelTopology, ...rest };
  const manifest = json.weightsManifest;
  if (manifest === undefined || manifest === null) return artifacts;
  if (!Array.isArray(manifest)) throw fail('weightsManifest must be an array of {paths, weights} groups');

  // Check the whole manifest before reading any weight file.
  const groups: { names: string[]; specs: WeightsManifestEntry[]; bytes: number }[] = [];
  const allSpecs: WeightsManifestEntry[] = [];
  const seenNames = new Set<string>();
  const seenFiles = new Set<string>();
  manifest.forEach((g: unknown, gi) => {
    const at = `weightsManifest[${gi}]`;
    if (!isPlainObject(g)) throw fail(`${at} must be an object {paths, weights}`);
    if (!Array.isArray(g.paths)) throw fail(`${at}.paths must be an array of file names`);
    const names = g.paths.map((p: unknown, pi) => checkWeightPath(p, `${at}.paths[${pi}]`, fail));
    for (const n of names) {
      if (seenFiles.has(n)) throw fail(`${at}.paths lists ${JSON.stringify(n)} more than once`);
      seenFiles.add(n);
    }
    const { specs, bytes } = checkWeightSpecs(g.weights, `${at}.weights`, fail);
    for (const s of specs) {
      if (seenNames.has(s.name)) throw fail(`${at}.weights: the weight ${JSON.stringify(s.name)} appears in more than one group`);
      seenNames.add(s.name);
    }
    groups.push({ names, specs, bytes });
    allSpecs.push(...specs);
  });
  const total = groups.reduce((n, g) => n + g.bytes, 0);
  if (!Number.isSafeInteger(total)) throw fail('weightsManifest needs more bytes than can be counted');

  // Sizes first (stat only), so a mismatch is reported before any large read.
  const files: { real: string; size: number }[][] = [];
  for (const [gi, g] of groups.entries()) {
    const resolved: { real: string; size: number }[] = [];
    for (const [pi, n] of g.names.entries()) resolved.push(await resolveInside(base, n, fail, `weightsManifest[${gi}].paths[${pi}]`));
    const have = resolved.reduce((sum, r) => sum + r.size, 0);
    if (have !== g.bytes) {
      const sizes = g.names.map((n, i) => `${n}: ${resolved[i]!.size}`).join(', ') || 'no files';
      throw fail(`weightsManifest[${gi}]: the weights need ${g.bytes} bytes but the files hold ${have} (${sizes})`);
    }
    files.push(resolved);
  }
  const weightData = new ArrayBuffer(total);
  const out = new Uint8Array(weightData);
  let at = 0;
  for (const [gi, resolved] of files.entries()) {
    for (const [pi, r] of resolved.entries()) {
      out.set(await readExactly(r.real, r.size, fail, `weightsManifest[${gi}].paths[${pi}]`), at);
      at += r.size;
    }
  }
  let off = 0;
  for (const s of allSpecs) {
    const n = specBytes(s);
    checkBoolBytes(s, out.subarray(off, off + n), fail, 'weightsManifest');
    off += n;
  }
  artifacts.weightSpecs = allSpecs;
  artifacts.weightData = weightData;
  return artifacts;
}

/** Converts a tfjs model directory into one ckptio ioHandler file. */
export async function importTfjsModelToFile(dir: string, file: string, options: ImportOptions & IoHandlerOptions = {}): Promise<IoSaveResult> {
  const { modelJson, ...handlerOptions } = options;
  const artifacts = await importTfjsModel(dir, modelJson === undefined ? {} : { modelJson });
  return saveArtifacts(file, artifacts, handlerOptions);
}

/** A tf.io.IOHandler on a tfjs model directory: save exports (crash-safe pair), load imports (checked). */
export function modelJsonHandler(
  dir: string,
  options: ImportOptions = {},
): IOHandler & { save(a: ModelArtifacts): Promise<SaveResult & { export: ExportResult }>; load(): Promise<ModelArtifacts> } {
  if (typeof dir !== 'string' || dir.length === 0) throw argumentError('modelJsonHandler: dir must be a non-empty string');
  return {
    save: async (a: ModelArtifacts) => {
      const exported = await exportTfjsModel(a, dir);
      return { modelArtifactsInfo: artifactsInfo(a, exported.weightBytes), export: exported };
    },
    load: () => importTfjsModel(dir, options),
  };
}
