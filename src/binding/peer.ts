/** Optional peer packages (tfjs and its backends, the AWS SDK) are loaded only when a function needs them; a missing one is
 * a CheckpointError that names the package to install, never a bare "Cannot find module". */
import { CheckpointError } from '../binding/errors';

export function requirePeer<T>(name: string, neededFor: string): T {
  try {
    return require(name) as T;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'MODULE_NOT_FOUND' && String(e.message).includes(name)) {
      throw new CheckpointError(`${neededFor} needs the package ${name}, which is not installed: npm install ${name}`, {
        code: 'ECKPT_MISSING_PACKAGE',
      });
    }
    throw err;
  }
}

/** Whether an optional package can be loaded, without loading it. */
export function hasPeer(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}
