/** The complete state of a tf.train optimizer as named tensors plus a small JSON description, and back.
 *
 * Slots are keyed by the stable name of the weight they belong to (`optimizer/<family>/<weight key>`, e.g.
 * `optimizer/m/model/0-dense/kernel`), never by position. tfjs itself matches slots to variables by their
 * position in each applyGradients call, so the description also records, per family, which weight sat at
 * each position; a restore puts each slot back at the same position, which is where the same training code
 * will look for it. Counters that are JS numbers (iterations, learning rate) go into the JSON: a JSON number
 * round-trips a float64 exactly. */
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError } from '../binding/errors';
import { isTfjsDType } from './dtypes';
import {
  optimizerIterations,
  optimizerLayout,
  optimizerLearningRate,
  readSlots,
  scalarVariable,
  SlotEntry,
  SlotFamily,
  setOptimizerIterations,
  setOptimizerLearningRate,
  writeSlots,
} from './internals';

export const OPTIMIZER_PREFIX = 'optimizer/';

export interface OptimizerDescription {
  version: 1;
  className: string;
  config: Record<string, unknown>;
  iterations: number;
  learningRate: number;
  /** Per slot family (`m`, `v`, `momentum`, ...): the weight key at each position, null for a hole. */
  slots: Record<string, (string | null)[]>;
  /** Scalar variable fields saved as tensors (`optimizer/<field>`). */
  scalars: string[];
}

function familyName(f: SlotFamily): string {
  return f.suffix.slice(1);
}

export function slotKey(family: string, weightKey: string): string {
  return `${OPTIMIZER_PREFIX}${family}/${weightKey}`;
}

export function scalarKey(field: string): string {
  return `${OPTIMIZER_PREFIX}${field}`;
}

/** The optimizer's tensors (live variables: snapshot them) and its description. `keyOf` maps an engine variable
 * name to its stable key; a slot for a variable it does not know is an error (name the variable). */
export function captureOptimizer(
  optimizer: tfType.Optimizer,
  keyOf: (engineName: string) => string | undefined,
  keyAtPosition: (position: number) => string | undefined = () => undefined,
): { tensors: Record<string, tfType.Tensor>; description: OptimizerDescription } {
  const { className, layout } = optimizerLayout(optimizer);
  const tensors: Record<string, tfType.Tensor> = {};
  const slots: Record<string, (string | null)[]> = {};
  for (const family of layout.slots) {
    const name = familyName(family);
    slots[name] = readSlots(optimizer, family).map((entry, position) => {
      if (!entry) return null;
      if (!entry.originalName.endsWith(family.suffix)) {
        throw new CheckpointError(`optimizer slot "${entry.originalName}" does not end with "${family.suffix}" (tfjs internals changed?)`, {
          code: 'ECKPT_TFJS_INTERNALS',
        });
      }
      const engineName = entry.originalName.slice(0, -family.suffix.length);
      // tfjs labels a slot with its variable's name when applyGradients creates it, but its own setWeights
      // keeps the labels of the model that was saved; what decides which variable a slot updates is its
      // position, so a label that names no live variable falls back to the weight at that position.
      const key = keyOf(engineName) ?? keyAtPosition(position);
      if (key === undefined) {
        throw new CheckpointError(
          `the optimizer holds state for variable "${engineName}", which is neither a weight of the model nor one of options.variables: name it in options.variables`,
          { code: 'ECKPT_ARGS' },
        );
      }
      tensors[slotKey(name, key)] = entry.variable;
      return key;
    });
  }
  for (const field of layout.scalarVariables) tensors[scalarKey(field)] = scalarVariable(optimizer, field);
  const description: OptimizerDescription = {
    version: 1,
    className,
    config: { ...optimizer.getConfig() } as Record<string, unknown>,
    iterations: optimizerIterations(optimizer),
    learningRate: optimizerLearningRate(optimizer),
    slots,
    scalars: [...layout.scalarVariables],
  };
  return { tensors, description };
}

function formatError(message: string): CheckpointError {
  return new CheckpointError(`checkpoint optimizer description: ${message}`, { code: 'ECKPT_FORMAT' });
}

/** Parses the description from an untrusted checkpoint. */
export function parseOptimizerDescription(text: string): OptimizerDescription {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw formatError('not JSON');
  }
  const d = v as Partial<OptimizerDescription>;
  if (typeof v !== 'object' || v === null || d.version !== 1) throw formatError('unknown version');
  if (typeof d.className !== 'string') throw formatError('className is not a string');
  if (typeof d.config !== 'object' || d.config === null || Array.isArray(d.config)) throw formatError('config is not an object');
  if (!Number.isSafeInteger(d.iterations) || (d.iterations as number) < 0) throw formatError('iterations is not a non-negative integer');
  if (typeof d.learningRate !== 'number' || !Number.isFinite(d.learningRate)) throw formatError('learningRate is not a finite number');
  if (typeof d.slots !== 'object' || d.slots === null || Array.isArray(d.slots)) throw formatError('slots is not an object');
  for (const [fam, keys] of Object.entries(d.slots)) {
    if (!Array.isArray(keys) || !keys.every((k) => k === null || typeof k === 'string')) throw formatError(`slots.${fam} is not a list of names`);
  }
  if (!Array.isArray(d.scalars) || !d.scalars.every((s) => typeof s === 'string')) throw formatError('scalars is not a list of names');
  return d as OptimizerDescription;
}

export interface LoadedTensor {
  dtype: string;
  shape: number[];
  data: ArrayBufferView;
}

export interface OptimizerRestorePlan {
  /** Apply the plan (assigns and creates variables); nothing is changed before this is called. */
  apply(): void;
  restoredSlots: string[];
  problems: { missing: string[]; unexpected: string[]; mismatched: string[] };
}

/** Plans putting a saved optimizer state into `optimizer`. `variableOf` maps a weight key to the live variable
 * it belongs to now. Every tensor name the plan consumes is added to `consumed`. */
export function planOptimizerRestore(
  tf: typeof tfType,
  optimizer: tfType.Optimizer,
  description: OptimizerDescription,
  tensors: Record<string, LoadedTensor>,
  variableOf: (key: string) => tfType.Variable | undefined,
  consumed: Set<string>,
  opts: { learningRate: 'checkpoint' | 'keep'; variableOrder?: readonly tfType.Variable[] },
): OptimizerRestorePlan {
  const { className, layout } = optimizerLayout(optimizer);
  const problems = { missing: [] as string[], unexpected: [] as string[], mismatched: [] as string[] };
  if (description.className !== className) {
    problems.mismatched.push(`optimizer: the checkpoint has ${description.className}, the optimizer is ${className}`);
    return { apply() {}, restoredSlots: [], problems };
  }
  const restoredSlots: string[] = [];
  const families: { family: SlotFamily; plan: ({ name: string; key: string; target: tfType.Variable; data: LoadedTensor } | undefined)[] }[] = [];
  for (const family of layout.slots) {
    const fam = familyName(family);
    const saved = description.slots[fam] ?? [];
    // With a variable order, each slot goes to the position of its variable in that order (the order the loop
    // will pass them in: e.g. fewer variables once layers are frozen); without one, where it was saved.
    const position = opts.variableOrder
      ? (key: string) => {
          const v = variableOf(key);
          return v ? opts.variableOrder!.indexOf(v) : -1;
        }
      : null;
    const placed: (string | null)[] = [];
    for (const [i, key] of saved.entries()) {
      if (!position) {
        placed[i] = key;
        continue;
      }
      if (key === null) continue;
      const at = position(key);
      if (at >= 0) placed[at] = key;
      else if (tensors[slotKey(fam, key)]) {
        consumed.add(slotKey(fam, key));
        problems.unexpected.push(`${slotKey(fam, key)} (its variable is not in variableOrder)`);
      }
    }
    const plan = Array.from(placed, (key) => key ?? null).map((key) => {
      if (key === null) return undefined;
      const name = slotKey(fam, key);
      const t = tensors[name];
      const target = variableOf(key);
      if (!t) {
        problems.missing.push(name);
        return undefined;
      }
      consumed.add(name);
      if (!target) {
        problems.unexpected.push(name);
        return undefined;
      }
      if (t.dtype !== target.dtype || t.shape.join(',') !== target.shape.join(',')) {
        problems.mismatched.push(`${name}: [${t.shape}] ${t.dtype} in the checkpoint, [${target.shape}] ${target.dtype} in the model`);
        return undefined;
      }
      restoredSlots.push(name);
      return { name, key, target, data: t };
    });
    families.push({ family, plan });
  }
  const scalars: { field: string; data: LoadedTensor }[] = [];
  for (const field of layout.scalarVariables) {
    const name = scalarKey(field);
    const t = tensors[name];
    if (!t || !description.scalars.includes(field)) {
      problems.missing.push(name);
      continue;
    }
    consumed.add(name);
    if (t.shape.length !== 0 || t.dtype !== 'float32') {
      problems.mismatched.push(`${name}: expected a float32 scalar`);
      continue;
    }
    scalars.push({ field, data: t });
  }
  const apply = (): void => {
    for (const { family, plan } of families) {
      const old = readSlots(optimizer, family);
      const byName = new Map(old.filter((e): e is SlotEntry => !!e).map((e) => [e.originalName, e]));
      const next: (SlotEntry | undefined)[] = plan.map((p) => {
        if (!p) return undefined;
        const originalName = `${p.target.name}${family.suffix}`;
        const value = toTensor(tf, p.data);
        const reuse = byName.get(originalName);
        if (reuse && reuse.variable.shape.join(',') === value.shape.join(',')) {
          byName.delete(originalName);
          reuse.variable.assign(value);
          value.dispose();
          return reuse;
        }
        const variable = tf.variable(value, false);
        value.dispose();
        return { originalName, variable };
      });
      for (const unused of byName.values()) unused.variable.dispose();
      writeSlots(optimizer, family, next);
    }
    for (const { field, data } of scalars) {
      const value = toTensor(tf, data);
      scalarVariable(optimizer, field).assign(value);
      value.dispose();
    }
    setOptimizerIterations(optimizer, description.iterations);
    if (opts.learningRate === 'checkpoint') setOptimizerLearningRate(optimizer, description.learningRate);
  };
  return { apply, restoredSlots, problems };
}

/** A new tensor holding a copy of a loaded tensor's bytes (the loaded views belong to the file's mapping). */
export function toTensor(tf: typeof tfType, t: LoadedTensor): tfType.Tensor {
  if (!isTfjsDType(t.dtype))
    throw new CheckpointError(`a tensor of dtype ${t.dtype} cannot be restored into tfjs (float32, int32, bool)`, { code: 'ECKPT_MISMATCH' });
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice();
  const values = t.dtype === 'float32' ? new Float32Array(bytes.buffer) : t.dtype === 'int32' ? new Int32Array(bytes.buffer) : bytes;
  return tf.tensor(values, t.shape, t.dtype);
}
