/** seededDataset(): a tf.data.Dataset of batches for model.fitDataset whose order is a pure function of
 * (seed, epoch), and whose position can be saved and sought, so fitCheckpoint resumes at the exact batch. */
import type * as tfType from '@tensorflow/tfjs';
import { argumentError } from '../binding/errors';
import { tfModule } from './model-state';
import { permutation, Rng, STREAM } from './rng';

type Tf = typeof tfType;

export interface SeededDatasetOptions {
  /** Inputs and targets, first dimension = examples. Kept by reference: do not dispose them while training. */
  xs: tfType.Tensor;
  ys: tfType.Tensor;
  batchSize: number;
  seed: number;
  /** Shuffle each epoch with a seeded permutation (default true); false keeps the order. */
  shuffle?: boolean;
  /** Drop the last partial batch (default false). */
  dropRemainder?: boolean;
  tf?: Tf;
}

export interface DatasetPosition {
  /** The epoch the next batch belongs to. */
  epoch: number;
  /** Batches of that epoch already consumed. */
  batch: number;
}

export class SeededDataset {
  /** Pass this to model.fitDataset (without batchesPerEpoch: each epoch is one pass). */
  readonly dataset: tfType.data.Dataset<tfType.TensorContainer>;
  readonly batchesPerEpoch: number;
  private nextEpoch = 0;
  private nextBatch = 0;
  private readonly n: number;

  constructor(private readonly opts: SeededDatasetOptions) {
    const tf = tfModule(opts.tf, 'seededDataset');
    if (!opts || !opts.xs || !opts.ys) throw argumentError('seededDataset needs { xs, ys, batchSize, seed }');
    this.n = opts.xs.shape[0] ?? 0;
    if (this.n < 1 || opts.ys.shape[0] !== this.n) throw argumentError('seededDataset: xs and ys must have the same, non-zero number of examples');
    if (!Number.isSafeInteger(opts.batchSize) || opts.batchSize < 1) throw argumentError('seededDataset: batchSize must be an integer >= 1');
    if (!Number.isSafeInteger(opts.seed)) throw argumentError('seededDataset: seed must be an integer');
    this.batchesPerEpoch = opts.dropRemainder ? Math.floor(this.n / opts.batchSize) : Math.ceil(this.n / opts.batchSize);
    if (this.batchesPerEpoch < 1) throw argumentError('seededDataset: batchSize is larger than the data with dropRemainder');
    // tf.data calls the generator with its own `this`: the dataset is reached through a name.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    // tf.data calls this once per iterator; fitDataset asks for one iterator per epoch (and one more up front,
    // never read). The body runs at the first next(), so only iterators that are read take an epoch.
    this.dataset = tf.data.generator(function* () {
      const epoch = self.nextEpoch;
      let batch = self.nextBatch;
      self.nextEpoch = epoch + 1;
      self.nextBatch = 0;
      const order = self.order(epoch);
      for (; batch < self.batchesPerEpoch; batch++) {
        const idx = order.subarray(batch * self.opts.batchSize, Math.min((batch + 1) * self.opts.batchSize, self.n));
        yield tf.tidy(() => {
          const i = tf.tensor1d(Int32Array.from(idx), 'int32');
          return { xs: tf.gather(self.opts.xs, i), ys: tf.gather(self.opts.ys, i) };
        });
      }
    } as unknown as () => Iterator<tfType.TensorContainer>);
  }

  /** The example order of one epoch. */
  order(epoch: number): Uint32Array {
    if (this.opts.shuffle === false) return Uint32Array.from({ length: this.n }, (_, i) => i);
    return permutation(this.n, new Rng(this.opts.seed, STREAM.shuffle, epoch));
  }

  /** Where the next epoch's iterator starts. */
  seek(position: DatasetPosition): void {
    const { epoch, batch } = position ?? ({} as DatasetPosition);
    if (!Number.isSafeInteger(epoch) || epoch < 0 || !Number.isSafeInteger(batch) || batch < 0 || batch > this.batchesPerEpoch) {
      throw argumentError(`seededDataset.seek: position must be { epoch >= 0, 0 <= batch <= ${this.batchesPerEpoch} }`);
    }
    this.nextEpoch = epoch;
    this.nextBatch = batch;
  }

  /** The description stored in a checkpoint, to check a resumed run uses the same data order. */
  describe(): { seed: number; examples: number; batchSize: number; shuffle: boolean; dropRemainder: boolean } {
    return {
      seed: this.opts.seed,
      examples: this.n,
      batchSize: this.opts.batchSize,
      shuffle: this.opts.shuffle !== false,
      dropRemainder: !!this.opts.dropRemainder,
    };
  }
}

export function seededDataset(opts: SeededDatasetOptions): SeededDataset {
  return new SeededDataset(opts);
}
