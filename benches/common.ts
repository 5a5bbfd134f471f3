/** What every benchmark module shares: the run's context, statistics and realistic fp32 state. */
import type { TensorEntry } from '../src';
import * as fs from 'node:fs';

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

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

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
    for (const [name, rows, cols] of [
      [`l${l}.attn`, d, d],
      [`l${l}.mlp_in`, d, 4 * d],
      [`l${l}.mlp_out`, 4 * d, d],
    ] as const) {
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

/** The main thread's scheduler figures so far, ms, from /proc/self/task/<pid>/schedstat: time on a CPU (first
 * field) and time spent runnable but waiting for a CPU (second field). The kernel adds a running thread's CPU
 * time to the first field only when it is switched out or at a tick, so a read while the thread has been
 * running for a while can miss up to a tick (measured here: a 1 ms spin read as 0.00 in 8 of 10 tries). Use
 * settledMainThreadSched() at both ends of a window. */
export function mainThreadSched(): { cpuMs: number; waitMs: number } {
  const [run, wait] = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ');
  return { cpuMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6 };
}

/** CPU time of the main thread so far, ms (see mainThreadSched). */
export function mainThreadCpuMs(): number {
  return mainThreadSched().cpuMs;
}

/** mainThreadSched() after a 1 ms sleep, so the kernel has just accounted the thread's time (the sleep switches
 * it out). An empty window read this way costs about 0.2 ms of CPU here (the timer and the read themselves). */
export async function settledMainThreadSched(): Promise<{ cpuMs: number; waitMs: number }> {
  await new Promise<void>((resolve) => setTimeout(resolve, 1));
  return mainThreadSched();
}
