/** restoreModelState(): puts a checkpoint made by modelState() back into a model, its optimizer and named
 * variables, in place and bit for bit. Strict by default: nothing is changed unless every tensor fits. */
import type * as tfType from '@tensorflow/tfjs';
import { argumentError, CheckpointError } from '../binding/errors';
import { METADATA_KEYS } from '../format/metadata-keys';
import { weightVariable } from './internals';
import { MODEL_PREFIX, modelWeights, VARIABLES_PREFIX, variableKey } from './layers';
import type { ModelDescription } from './model-state';
import { tfModule } from './model-state';
import { LoadedTensor, OPTIMIZER_PREFIX, parseOptimizerDescription, planOptimizerRestore, toTensor } from './optimizers';

type Tf = typeof tfType;

export interface RestoreOptions {
  /** Default true: any missing, unexpected or mismatched tensor throws ECKPT_MISMATCH and changes nothing.
   * false: restores what fits and reports the rest (a model whose head changed). */
  strict?: boolean;
  /** Named variables saved with modelState's `variables`. */
  variables?: Record<string, tfType.Variable>;
  /** 'checkpoint' (default) sets the optimizer's learning rate to the saved one; 'keep' leaves it (fine-tuning). */
  learningRate?: 'checkpoint' | 'keep';
  /** The variables in the order the training loop passes them to the optimizer, when that order differs from
   * the run that saved (layers frozen or added): each slot goes to its variable's position in it. */
  variableOrder?: readonly tfType.Variable[];
  tf?: Tf;
}

export interface RestoreReport {
  restored: string[];
  missing: string[];
  unexpected: string[];
  mismatched: string[];
  /** 'restored', 'partial' (strict: false with problems), 'absent' (the checkpoint has none), 'none' (no optimizer given). */
  optimizer: 'restored' | 'partial' | 'absent' | 'none';
  /** Resume is not exact with these: layers drawing unseeded random numbers when the checkpoint was made. */
  unseededRandomLayers: string[];
}

export interface LoadedState {
  tensors: Record<string, LoadedTensor>;
  metadata: Record<string, string>;
}

function parseModelDescription(text: string | undefined): ModelDescription | null {
  if (text === undefined) return null;
  let d: unknown;
  try {
    d = JSON.parse(text);
  } catch {
    throw new CheckpointError(`${METADATA_KEYS.tfjsModel} is not JSON`, { code: 'ECKPT_FORMAT' });
  }
  const m = d as Partial<ModelDescription>;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (typeof d !== 'object' || d === null || m.version !== 1 || !strings(m.weights) || !strings(m.variables) || !strings(m.unseededRandomLayers)) {
    throw new CheckpointError(`${METADATA_KEYS.tfjsModel} is not a ckptio model description`, { code: 'ECKPT_FORMAT' });
  }
  return m as ModelDescription;
}

function sameShape(t: LoadedTensor, v: tfType.Variable): boolean {
  return t.dtype === v.dtype && t.shape.length === v.shape.length && t.shape.every((d, i) => d === v.shape[i]);
}

export function restoreModelState(
  model: tfType.LayersModel | null,
  optimizer: tfType.Optimizer | null | undefined,
  loaded: LoadedState,
  options: RestoreOptions = {},
): RestoreReport {
  if (!loaded || typeof loaded.tensors !== 'object' || loaded.tensors === null || typeof loaded.metadata !== 'object' || loaded.metadata === null) {
    throw argumentError('restoreModelState: loaded must be { tensors, metadata } (a loaded checkpoint)');
  }
  const tf = tfModule(options.tf, 'restoreModelState');
  const strict = options.strict ?? true;
  const opt = optimizer === undefined ? ((model as unknown as { optimizer_?: tfType.Optimizer } | null)?.optimizer_ ?? null) : optimizer;
  const report: RestoreReport = { restored: [], missing: [], unexpected: [], mismatched: [], optimizer: opt ? 'restored' : 'none', unseededRandomLayers: [] };
  const described = parseModelDescription(loaded.metadata[METADATA_KEYS.tfjsModel]);
  report.unseededRandomLayers = described?.unseededRandomLayers ?? [];

  const targets = new Map<string, tfType.Variable>();
  for (const { key, weight } of model ? modelWeights(model) : []) targets.set(key, weightVariable(weight));
  for (const [name, v] of Object.entries(options.variables ?? {})) targets.set(variableKey(name), v);

  const consumed = new Set<string>();
  const assigns: { key: string; target: tfType.Variable; data: LoadedTensor }[] = [];
  for (const [key, target] of targets) {
    const t = loaded.tensors[key];
    if (!t) {
      report.missing.push(key);
      continue;
    }
    consumed.add(key);
    if (!sameShape(t, target)) {
      report.mismatched.push(`${key}: [${t.shape}] ${t.dtype} in the checkpoint, [${target.shape}] ${target.dtype} in the model`);
      continue;
    }
    assigns.push({ key, target, data: t });
  }

  let applyOptimizer = (): void => {};
  if (opt) {
    const text = loaded.metadata[METADATA_KEYS.tfjsOptimizer];
    if (text === undefined) {
      report.optimizer = 'absent';
      report.missing.push('optimizer state (the checkpoint has none)');
    } else {
      const plan = planOptimizerRestore(tf, opt, parseOptimizerDescription(text), loaded.tensors, (key) => targets.get(key), consumed, {
        learningRate: options.learningRate ?? 'checkpoint',
        ...(options.variableOrder ? { variableOrder: options.variableOrder } : {}),
      });
      report.missing.push(...plan.problems.missing);
      report.unexpected.push(...plan.problems.unexpected);
      report.mismatched.push(...plan.problems.mismatched);
      if (plan.problems.missing.length + plan.problems.unexpected.length + plan.problems.mismatched.length > 0) report.optimizer = 'partial';
      report.restored.push(...plan.restoredSlots);
      applyOptimizer = plan.apply;
    }
  }
  for (const name of Object.keys(loaded.tensors)) {
    const ours = name.startsWith(MODEL_PREFIX) || name.startsWith(VARIABLES_PREFIX) || (opt !== null && name.startsWith(OPTIMIZER_PREFIX));
    if (ours && !consumed.has(name)) report.unexpected.push(name);
  }
  const problems = report.missing.length + report.unexpected.length + report.mismatched.length;
  if (strict && problems > 0) {
    // The causes first (a mismatch says what differs, e.g. another optimizer), then bounded lists of names.
    const shown = 8;
    const list = (label: string, items: string[]) =>
      items.length
        ? `\n  ${label}: ${items.slice(0, shown).join('\n    ')}${items.length > shown ? `\n    ... and ${items.length - shown} more (report.${label} with strict: false)` : ''}`
        : '';
    const cause =
      report.mismatched[0] ??
      (report.missing.length
        ? `${report.missing.length} tensor(s) of the model are not in the checkpoint`
        : `${report.unexpected.length} tensor(s) of the checkpoint have no place in the model`);
    throw new CheckpointError(
      `checkpoint does not match the model: ${cause} (${problems} problem(s); strict: false loads what fits)` +
        list('mismatched', report.mismatched) +
        list('missing', report.missing) +
        list('unexpected', report.unexpected),
      { code: 'ECKPT_MISMATCH' },
    );
  }
  for (const { key, target, data } of assigns) {
    const value = toTensor(tf, data);
    target.assign(value);
    value.dispose();
    report.restored.push(key);
  }
  applyOptimizer();
  return report;
}
