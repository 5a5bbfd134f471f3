/** Optional peer packages (tfjs and its backends, the AWS SDK) are loaded only when a function needs them; a missing one is
 * a CheckpointError that names the package to install, never a bare "Cannot find module". Where there is no
 * `require` (a browser), the entry point provides the peers it imported (providePeer). */
import { CheckpointError } from '../binding/errors';

const provided = new Map<string, unknown>();

/** Node's require, or null in a browser (where a bundler's stand-in for it would only throw). */
function nodeRequire(): NodeJS.Require | null {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string' ? require : null;
}

/** Makes `module` what requirePeer(name) returns (the browser entry's tfjs). */
export function providePeer(name: string, module: unknown): void {
  provided.set(name, module);
}

function missing(name: string, neededFor: string): CheckpointError {
  return new CheckpointError(`${neededFor} needs the package ${name}, which is not installed: npm install ${name}`, {
    code: 'ECKPT_MISSING_PACKAGE',
  });
}

export function requirePeer<T>(name: string, neededFor: string): T {
  if (provided.has(name)) return provided.get(name) as T;
  const load = nodeRequire();
  if (load === null) throw missing(name, neededFor);
  try {
    return load(name) as T;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'MODULE_NOT_FOUND' && String(e.message).includes(name)) throw missing(name, neededFor);
    throw err;
  }
}

/** Whether an optional package can be loaded, without loading it. */
export function hasPeer(name: string): boolean {
  if (provided.has(name)) return true;
  const load = nodeRequire();
  if (load === null) return false;
  try {
    load.resolve(name);
    return true;
  } catch {
    return false;
  }
}
