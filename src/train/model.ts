/** An MLP with its own Adam, every piece of state a named tensor or an exact JS number, so a checkpoint holds
 * everything needed to continue bit for bit (tfjs's Adam recomputes accBeta with pow() on restore and matches
 * slots by position; see docs/training-state.md). */
import type * as tfType from '@tensorflow/tfjs';
import { Rng, STREAM } from '../tfjs/rng';

type Tf = typeof tfType;

export interface AdamState {
  iterations: number;
  accBeta1: number;
  accBeta2: number;
}

export const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 } as const;

export class Mlp {
  readonly params = new Map<string, tfType.Variable>();
  readonly m = new Map<string, tfType.Variable>();
  readonly v = new Map<string, tfType.Variable>();
  adam: AdamState = { iterations: 0, accBeta1: 1, accBeta2: 1 };

  constructor(private readonly tf: Tf, readonly sizes: number[], seed: number) {
    const rng = new Rng(seed, STREAM.init);
    for (let l = 0; l + 1 < sizes.length; l++) {
      const fanIn = sizes[l]!, fanOut = sizes[l + 1]!;
      const w = new Float32Array(fanIn * fanOut);
      const scale = Math.sqrt(2 / fanIn); // He init for ReLU
      for (let i = 0; i < w.length; i++) w[i] = rng.normal() * scale;
      this.add(`dense_${l}/kernel`, tf.tensor2d(w, [fanIn, fanOut]));
      this.add(`dense_${l}/bias`, tf.zeros([fanOut]));
    }
  }

  private add(name: string, init: tfType.Tensor): void {
    const tf = this.tf;
    this.params.set(name, tf.variable(init, true, name));
    this.m.set(name, tf.variable(tf.zerosLike(init), false, `adam/m/${name}`));
    this.v.set(name, tf.variable(tf.zerosLike(init), false, `adam/v/${name}`));
    init.dispose();
  }

  /** Frees every variable (so a second model, or a second train() in the same process, can reuse the names). */
  dispose(): void {
    for (const group of [this.params, this.m, this.v]) {
      for (const v of group.values()) v.dispose();
      group.clear();
    }
  }

  logits(x: tfType.Tensor2D): tfType.Tensor2D {
    const tf = this.tf;
    const layers = this.sizes.length - 1;
    let h: tfType.Tensor2D = x;
    for (let l = 0; l < layers; l++) {
      h = tf.add(tf.matMul(h, this.params.get(`dense_${l}/kernel`)!), this.params.get(`dense_${l}/bias`)!);
      if (l + 1 < layers) h = tf.relu(h);
    }
    return h;
  }

  /** One Adam step at learning rate lr; returns the loss. */
  trainStep(x: tfType.Tensor2D, y: tfType.Tensor2D, lr: number): number {
    const tf = this.tf;
    const a = this.adam;
    const accBeta1 = a.accBeta1 * ADAM.beta1;
    const accBeta2 = a.accBeta2 * ADAM.beta2;
    const loss = tf.tidy(() => {
      const vars = [...this.params.values()];
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, this.logits(x)) as tfType.Scalar, vars);
      for (const [name, w] of this.params) {
        const g = grads[w.name]!;
        const m = this.m.get(name)!, v = this.v.get(name)!;
        const m1 = tf.add(tf.mul(m, ADAM.beta1), tf.mul(g, 1 - ADAM.beta1));
        const v1 = tf.add(tf.mul(v, ADAM.beta2), tf.mul(tf.square(g), 1 - ADAM.beta2));
        const mHat = tf.div(m1, 1 - accBeta1);
        const vHat = tf.div(v1, 1 - accBeta2);
        w.assign(tf.sub(w, tf.mul(lr, tf.div(mHat, tf.add(tf.sqrt(vHat), ADAM.epsilon)))));
        m.assign(m1);
        v.assign(v1);
      }
      return value.dataSync()[0]!;
    });
    this.adam = { iterations: a.iterations + 1, accBeta1, accBeta2 };
    return loss;
  }

  accuracy(x: tfType.Tensor2D, labels: Uint8Array): number {
    const tf = this.tf;
    const pred = tf.tidy(() => tf.argMax(this.logits(x), 1).dataSync());
    let hit = 0;
    for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) hit++;
    return hit / labels.length;
  }

  /** Every tensor of the training state, by name. */
  stateTensors(): Record<string, tfType.Tensor> {
    const out: Record<string, tfType.Tensor> = {};
    for (const [name, t] of this.params) out[name] = t;
    for (const [name, t] of this.m) out[`adam/m/${name}`] = t;
    for (const [name, t] of this.v) out[`adam/v/${name}`] = t;
    return out;
  }

  restore(tensors: Record<string, { shape: number[]; data: ArrayBufferView }>, adam: AdamState): void {
    const tf = this.tf;
    const all = this.stateTensors();
    for (const [name, variable] of Object.entries(all)) {
      const t = tensors[name];
      if (!t) throw new Error(`checkpoint has no tensor "${name}" (different model?)`);
      if (t.shape.join('x') !== variable.shape.join('x')) {
        throw new Error(`tensor "${name}" has shape [${t.shape}] in the checkpoint but [${variable.shape}] in the model`);
      }
      const d = t.data as Float32Array;
      const value = tf.tensor(new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4).slice(), t.shape, 'float32');
      (variable as tfType.Variable).assign(value);
      value.dispose();
    }
    this.adam = { ...adam };
  }
}
