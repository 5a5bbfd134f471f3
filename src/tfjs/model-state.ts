/** modelState(): the whole training state of a tf.LayersModel and its optimizer (plus any named variables) as a
 * zero-stall snapshot for Checkpointer.save. Naming: tfjs/layers.ts (weights), tfjs/optimizers.ts (slots). */
import type * as tfType from '@tensorflow/tfjs';
import { argumentError } from '../binding/errors';
import type { TensorSource } from '../checkpoint/checkpointer';
import { METADATA_KEYS } from '../format/metadata-keys';
import { modelWeights, unseededRandomLayers, variableKey } from './layers';
import { fitWeightOrder, weightVariable } from './internals';
import { captureOptimizer } from './optimizers';
import { requirePeer } from '../binding/peer';
import { snapshot, SnapshotOptions } from './snapshot';

type Tf = typeof tfType;

export interface ModelStateOptions extends SnapshotOptions {
  /** Plain tf.Variables to save too (custom loops), keyed `variables/<name>`. */
  variables?: Record<string, tfType.Variable>;
  /** The tfjs module the model was built with (default: require('@tensorflow/tfjs')). */
  tf?: Tf;
}

/** What `ckptio.tfjs.model` records. */
export interface ModelDescription {
  version: 1;
  /** Stable keys of the model's weights, in layer order. */
  weights: string[];
  variables: string[];
  /** Paths of layers that draw unseeded random numbers while training (resume is not exact with them). */
  unseededRandomLayers: string[];
}

export function tfModule(tf: Tf | undefined, neededFor: string): Tf {
  return tf ?? requirePeer<Tf>('@tensorflow/tfjs', neededFor);
}

function compiledOptimizer(model: tfType.LayersModel | null): tfType.Optimizer | null {
  if (!model) return null;
  return (model as unknown as { optimizer_?: tfType.Optimizer }).optimizer_ ?? null;
}

/** Every tensor to save, by stable key, and the descriptions, read at this instant (nothing is copied). */
export function collectModelState(
  model: tfType.LayersModel | null,
  optimizer: tfType.Optimizer | null | undefined,
  variables: Record<string, tfType.Variable> = {},
): { tensors: Record<string, tfType.Tensor>; metadata: Record<string, string> } {
  if (model !== null && (typeof model !== 'object' || !Array.isArray((model as { layers?: unknown }).layers))) {
    throw argumentError('modelState: model must be a tf.LayersModel or null');
  }
  if (typeof variables !== 'object' || variables === null) throw argumentError('modelState: options.variables must be an object of tf.Variables');
  const tensors: Record<string, tfType.Tensor> = {};
  const keyOfEngineName = new Map<string, string>();
  const weights = model ? modelWeights(model) : [];
  for (const { key, weight } of weights) {
    const v = weightVariable(weight);
    tensors[key] = v;
    keyOfEngineName.set(v.name, key);
  }
  for (const [name, v] of Object.entries(variables)) {
    if (!v || typeof (v as tfType.Variable).assign !== 'function') throw argumentError(`modelState: options.variables.${name} is not a tf.Variable`);
    const key = variableKey(name);
    tensors[key] = v;
    keyOfEngineName.set(v.name, key);
  }
  const description: ModelDescription = {
    version: 1,
    weights: weights.map((w) => w.key),
    variables: Object.keys(variables),
    unseededRandomLayers: model ? unseededRandomLayers(model) : [],
  };
  const metadata: Record<string, string> = { [METADATA_KEYS.tfjsModel]: JSON.stringify(description) };
  if (model) metadata[METADATA_KEYS.tfjsModelJson] = modelJsonOf(model, weights);
  const opt = optimizer === undefined ? compiledOptimizer(model) : optimizer;
  if (opt) {
    const fitOrder = model ? fitWeightOrder(model) : [];
    const captured = captureOptimizer(
      opt,
      (name) => keyOfEngineName.get(name),
      (i) => {
        const w = fitOrder[i];
        return w ? keyOfEngineName.get(w.name) : undefined;
      },
    );
    Object.assign(tensors, captured.tensors);
    metadata[METADATA_KEYS.tfjsOptimizer] = JSON.stringify(captured.description);
  }
  return { tensors, metadata };
}

/** Per model: its topology and tfjs weight names as saved with each checkpoint, rebuilt only when its weights
 * change (layers added, removed or replaced), so a save does not serialize the topology again. */
const modelJsonCache = new WeakMap<tfType.LayersModel, { signature: string; json: string }>();

/** What turns a training checkpoint into a model.json (exportTfjsModel, ioHandler loads): the topology tfjs's own
 * model.save writes and, in `model.weights` order (tfjs's weight-spec order), each weight's key in the checkpoint
 * and its tfjs name (`originalName`, what loadWeights matches). */
function modelJsonOf(model: tfType.LayersModel, weights: ReturnType<typeof modelWeights>): string {
  const signature = model.weights.map((w) => `${w.id}${w.trainable ? 't' : 'f'}`).join(',');
  const cached = modelJsonCache.get(model);
  if (cached && cached.signature === signature) return cached.json;
  const keyOf = new Map(weights.map((w) => [w.weight.id, w.key]));
  const json = JSON.stringify({
    modelTopology: model.toJSON(null, false),
    format: 'layers-model',
    generatedBy: 'ckptio modelState',
    weights: model.weights.filter((w) => keyOf.has(w.id)).map((w) => [keyOf.get(w.id), w.originalName]),
  });
  modelJsonCache.set(model, { signature, json });
  return json;
}

/** The `tensors` payload for Checkpointer.save: every weight of `model` (trainable and not), the complete state of
 * `optimizer` (default: the model's compiled optimizer; null for none) and `options.variables`, held by
 * reference at this step boundary in O(1) per tensor; training may continue at once. */
export function modelState(model: tfType.LayersModel | null, optimizer?: tfType.Optimizer | null, options: ModelStateOptions = {}): TensorSource {
  const tf = tfModule(options.tf, 'modelState');
  const { tensors, metadata } = collectModelState(model, optimizer, options.variables);
  const source = snapshot(tf, tensors, options);
  // tfjs never writes into existing data (assign swaps the dataId), so the same dataId at two saves means the
  // same bytes: what a Checkpointer with `dedup` stores by reference (a frozen layer).
  // Built only when a Checkpointer with `dedup` asks: it is one Map entry per tensor.
  let identities: Map<string, object> | undefined;
  return {
    bytes: source.bytes,
    metadata,
    get identities() {
      return (identities ??= new Map(Object.entries(tensors).map(([k, t]) => [k, t.dataId as object])));
    },
    materialize: () => source.materialize(),
    materializeNow: () => source.materializeNow?.() ?? null,
    release: () => source.release(),
  };
}
