/** The name of a checkpoint file in a run: `ckpt-<step, 10 digits>.safetensors`. */
const CHECKPOINT_RE = /^ckpt-(\d{10})\.safetensors$/;

export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(10, '0')}.safetensors`;
}

export function stepOf(name: string): number | null {
  const m = CHECKPOINT_RE.exec(name);
  return m ? Number(m[1]) : null;
}

/** The one rule for the names a user gives: tags, metric names, `best-<metric>` pointers. */
export const NAME_PATTERN = '[A-Za-z0-9][A-Za-z0-9._-]{0,63}';
export const NAME_RE = new RegExp(`^${NAME_PATTERN}$`);
/** The rule in words, for error messages. */
export const NAME_RULE = 'letters, digits, ".", "_" or "-", starting with a letter or digit, at most 64';
