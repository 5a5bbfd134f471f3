/** XXH3-64 (seed 0) in WebAssembly, from hash-wasm: the checksum where the native addon is not loaded (the portable
 * writer's thread, the browser). Creating the hasher is asynchronous (it compiles the module); hashing is not. */
import { createXXHash3 } from 'hash-wasm';
import type { Xxh3 } from './portable-codec';

export async function createXxh3(): Promise<Xxh3> {
  const hasher = await createXXHash3(0, 0);
  return (data: Uint8Array) => {
    hasher.init();
    hasher.update(data);
    return hasher.digest('hex');
  };
}
