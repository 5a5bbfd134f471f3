/** Stable names for the weights of a tf.LayersModel, the same in every process that builds the same model code.
 *
 * tfjs names layers `<snake_class>_<Class><n>` with a process-wide counter n (the second model a process builds
 * gets `dense_Dense4/kernel`, not `dense_Dense1/kernel`), so those names cannot key a checkpoint. ckptio keys
 * each weight `model/<layer>/<weight>`:
 * - `<layer>` is the layer's own name when the user gave one, else `<index>-<snake_class>` by its position in
 *   `model.layers` (e.g. `0-conv2d`, `3-dense`); a nested model's layers continue the path
 *   (`model/2-sequential/0-dense/kernel`);
 * - `<weight>` is the weight's name inside its layer (`kernel`, `bias`, `gamma`, `moving_mean`, ...).
 * Plain variables a caller passes by name are keyed `variables/<name>`. */
import type * as tfType from '@tensorflow/tfjs';
import { argumentError } from '../binding/errors';

export const MODEL_PREFIX = 'model/';
export const VARIABLES_PREFIX = 'variables/';

export interface NamedWeight {
  key: string;
  weight: tfType.LayerVariable;
  layer: tfType.layers.Layer;
}

function snakeCase(name: string): string {
  // The same rule as tfjs-layers' toSnakeCase, so keys read like tfjs's own names (Conv2D -> conv2d).
  return name
    .replace(/(.)([A-Z][a-z0-9]+)/g, '$1_$2')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

/** Per layer class: the pattern of the names tfjs generates for it, and its snake_case name. Built once per
 * class, not at every save (a save of a deep model walks every layer). */
const CLASS_NAMING = new Map<string, { generated: RegExp; snake: string }>();

function classNaming(cls: string): { generated: RegExp; snake: string } {
  let naming = CLASS_NAMING.get(cls);
  if (!naming) {
    naming = { generated: new RegExp(`^[a-z0-9_]+_${cls.replace(/[^A-Za-z0-9]/g, '')}\\d+$`), snake: snakeCase(cls) };
    CLASS_NAMING.set(cls, naming);
  }
  return naming;
}

function layerKey(layer: tfType.layers.Layer, index: number): string {
  const naming = classNaming(layer.getClassName());
  return naming.generated.test(layer.name) ? `${index}-${naming.snake}` : layer.name;
}

function weightRole(layer: tfType.layers.Layer, w: tfType.LayerVariable, i: number): string {
  const marker = `${layer.name}/`;
  const at = w.originalName.lastIndexOf(marker);
  return at >= 0 ? w.originalName.slice(at + marker.length) : `w${i}`;
}

function isContainer(layer: tfType.layers.Layer): layer is tfType.layers.Layer & { layers: tfType.layers.Layer[] } {
  return Array.isArray((layer as unknown as { layers?: unknown }).layers);
}

/** Every weight of the model (trainable and not), each once, with its stable key, in layer order. */
export function modelWeights(model: tfType.LayersModel): NamedWeight[] {
  const out: NamedWeight[] = [];
  const seen = new Set<number>();
  const keys = new Set<string>();
  const walk = (layers: tfType.layers.Layer[], prefix: string): void => {
    layers.forEach((layer, index) => {
      const path = `${prefix}${layerKey(layer, index)}/`;
      if (isContainer(layer)) {
        walk(layer.layers, path);
        return;
      }
      layer.weights.forEach((w, i) => {
        if (seen.has(w.id)) return; // a weight shared by two layers is saved under its first owner
        seen.add(w.id);
        const key = path + weightRole(layer, w, i);
        if (keys.has(key)) throw argumentError(`two weights of the model would both be named "${key}"; give the layers distinct names`);
        keys.add(key);
        out.push({ key, weight: w, layer });
      });
    });
  };
  walk(model.layers, MODEL_PREFIX);
  return out;
}

/** Every layer, nested models flattened, with its stable path (the weight keys' middle part). */
export function modelLayers(model: tfType.LayersModel): { path: string; layer: tfType.layers.Layer }[] {
  const out: { path: string; layer: tfType.layers.Layer }[] = [];
  const walk = (layers: tfType.layers.Layer[], prefix: string): void => {
    layers.forEach((layer, index) => {
      const path = `${prefix}${layerKey(layer, index)}`;
      if (isContainer(layer)) walk(layer.layers, `${path}/`);
      else out.push({ path, layer });
    });
  };
  walk(model.layers, '');
  return out;
}

/** Layers that draw random numbers while training, and whether each has a seed (tfjs 4.x layer classes). A
 * seeded Dropout draws the same mask at every call, so a resumed run matches; an unseeded one uses
 * Math.random and cannot be resumed exactly. */
const RANDOM_LAYERS: Readonly<Record<string, { seeded: (layer: tfType.layers.Layer) => boolean }>> = {
  Dropout: { seeded: (l) => (l.getConfig() as { seed?: unknown }).seed != null },
  SpatialDropout1D: { seeded: (l) => (l.getConfig() as { seed?: unknown }).seed != null },
  GaussianNoise: { seeded: () => false },
  GaussianDropout: { seeded: () => false },
  AlphaDropout: { seeded: () => false },
};

export function unseededRandomLayers(model: tfType.LayersModel): string[] {
  return modelLayers(model)
    .filter(({ layer }) => {
      const r = RANDOM_LAYERS[layer.getClassName()];
      return r !== undefined && !r.seeded(layer);
    })
    .map(({ path }) => path);
}

export function variableKey(name: string): string {
  return VARIABLES_PREFIX + name;
}
