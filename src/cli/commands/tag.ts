/** `ckptio tag DIR STEP NAME`: a durable `tag.<name>` pointer to a committed checkpoint; tagged checkpoints are
 * never removed by retention. Takes the run lock (refused while a trainer runs). */
import { Checkpointer } from '../../checkpoint/checkpointer';
import { out, safe, usageError } from './output';
import { isRunDir } from '../../checkpoint/run-reader';

export async function tag(dir: string, stepText: string, name: string): Promise<void> {
  const step = Number(stepText);
  if (stepText.trim() === '' || !Number.isSafeInteger(step) || step < 0) throw usageError(`STEP must be a non-negative integer, not "${stepText}"`);
  if (!(await isRunDir(dir))) throw usageError(`${dir} is not a directory`);
  const ckpt = new Checkpointer({ dir, onWarning: (m) => process.stderr.write(`ckptio: warning: ${safe(m)}\n`) });
  try {
    await ckpt.tag(step, name);
  } finally {
    await ckpt.close();
  }
  out(`tagged step ${step} as ${safe(name)}`);
}
