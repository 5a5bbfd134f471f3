/** The name of a checkpoint file in a run: `ckpt-<step, 10 digits>.safetensors`. */
const CHECKPOINT_RE = /^ckpt-(\d{10})\.safetensors$/;

export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(10, '0')}.safetensors`;
}

export function stepOf(name: string): number | null {
  const m = CHECKPOINT_RE.exec(name);
  return m ? Number(m[1]) : null;
}
