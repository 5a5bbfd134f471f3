/** The browser platform: run directories in the origin private file system (OpfsStore), written by a dedicated
 * Worker, which reads wasm tensors in place when the heap is shared. No object-storage replication and no sharded
 * runs: those options are ECKPT_ARGS naming the browser. Imported by src/browser.ts. */
import { argumentError } from '../binding/errors';
import { installEnvironment, RunEnvironment } from '../checkpoint/environment';
import { OpfsStore } from '../store/opfs/store';

/** "runs/a/ckpt-….safetensors" as its directory and name. */
function split(path: string): [string, string] {
  const at = typeof path === 'string' ? path.lastIndexOf('/') : -1;
  if (at <= 0 || at === path.length - 1)
    throw argumentError(`"${String(path)}" must be a file path in the origin private file system, such as "runs/a/ckpt-0000000010.safetensors"`);
  return [path.slice(0, at), path.slice(at + 1)];
}

export const browserEnvironment: RunEnvironment = {
  name: 'the browser',
  directoryStore: (dir) => new OpfsStore(dir),
  isDirectoryStore: (store) => store instanceof OpfsStore,
  readFile: async (path) => {
    const [dir, name] = split(path);
    return new OpfsStore(dir).read(name);
  },
  siblingPath: (path, name) => `${split(path)[0]}/${name}`,
  remote: null,
  sharding: null,
  lz4: false,
  heapReader: {
    refusal: (heap) =>
      heap === null || (typeof SharedArrayBuffer !== 'undefined' && heap instanceof SharedArrayBuffer)
        ? null
        : 'the wasm heap is not shared (the page is not cross-origin isolated, or the wasm backend is not its threaded build), so the writer worker cannot read it',
    growFence: null,
  },
};

installEnvironment(browserEnvironment);
