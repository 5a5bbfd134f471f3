/** What every benchmark module shares: the run's context, statistics and realistic fp32 state. */
import type { TensorEntry } from '../src';

export const MiB = 1 << 20;

export interface BenchContext {
  quick: boolean;
  reps: number;
  /** Scratch space on a real disk (never tmpfs). */
  workDir: string;
  /** Markdown lines of RESULTS.md, in order. */
  rows: string[];
  /** The same figures, machine-readable (results.json). */
  results: Record<string, unknown>;
}

export interface Stat { median: number; min: number; max: number; n: number }

export const stat = (xs: number[]): Stat => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]!, n: s.length };
};

/** Realistic fp32 state: transformer-like layers (square and 4x MLP matrices) until `bytes` is reached. */
export function state(bytes: number): Record<string, TensorEntry> {
  const out: Record<string, TensorEntry> = {};
  const d = bytes >= 512 * MiB ? 2048 : bytes >= 128 * MiB ? 1024 : 512;
  let left = bytes / 4;
  for (let l = 0; left > 0; l++) {
    for (const [name, rows, cols] of [[`l${l}.attn`, d, d], [`l${l}.mlp_in`, d, 4 * d], [`l${l}.mlp_out`, 4 * d, d]] as const) {
      const n = Math.min(rows * cols, left);
      if (n <= 0) break;
      const data = new Float32Array(n);
      for (let i = 0; i < n; i += 1021) data[i] = i * 1e-3;
      out[name] = { dtype: 'float32', shape: [n], data };
      left -= n;
    }
  }
  return out;
}

export function concat(tensors: Record<string, TensorEntry>): Buffer {
  return Buffer.concat(Object.values(tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
}
