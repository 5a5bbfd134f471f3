/** The Node platform: run directories on disk through the writer (the native addon, or the portable writer),
 * replication to object storage, sharded runs, and the in-place read of wasm tensors where the addon does it.
 * Imported for its effect by every Node entry point (src/index.ts, the CLI, the training processes). */
import * as path from 'node:path';
import { native } from '../binding/native';
import { installEnvironment, RunEnvironment } from '../checkpoint/environment';
import { restoreEmptyRun } from '../checkpoint/node/remote-run';
import { Replicator } from '../checkpoint/node/replicator';
import { awaitCoordinator, becomeCoordinator, ShardCoordination } from '../checkpoint/node/shard-coordination';
import { readCheckpoint } from '../format/file';
import { LocalStore } from '../store/local';
import { S3Objects } from '../store/remote/s3';
import { parseRemoteUrl } from '../store/remote/url';

function trapHandlerDisabled(): boolean {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return args.some((a) => /^--(disable-wasm-trap-handler|no-wasm[-_]trap[-_]handler)\b/.test(a));
}

export const nodeEnvironment: RunEnvironment = {
  name: 'Node',
  directoryStore: (dir) => new LocalStore(dir),
  isDirectoryStore: (store) => store instanceof LocalStore,
  readFile: (file) => readCheckpoint(file),
  siblingPath: (file, name) => path.join(path.dirname(file), name),
  remote: {
    validate(remote) {
      // partBytes and concurrency are checked by the object client (S3's part limits), not at the first upload.
      new S3Objects(parseRemoteUrl(remote.url), {
        ...(remote.partBytes !== undefined ? { partBytes: remote.partBytes } : {}),
        ...(remote.concurrency !== undefined ? { concurrency: remote.concurrency } : {}),
      });
    },
    restore: restoreEmptyRun,
    replicator: (remote, dir, keepLast, newest, warn) => new Replicator(remote, dir, keepLast, newest, warn),
  },
  sharding: {
    async coordinate(store, config, warn) {
      const local = store as LocalStore;
      // Processes start at their own pace: the wait for rank 0 is at least 30 s, whatever peerTimeoutMs.
      const epoch = config.rank === 0 ? await becomeCoordinator(local, warn) : await awaitCoordinator(local, Math.max(config.timeoutMs, 30_000));
      const coordination = new ShardCoordination({ dir: local.location, ...config, pollMs: 5, epoch }, warn);
      return { epoch, coordination };
    },
  },
  lz4: true,
  heapReader: {
    refusal(heap) {
      // Linux on x64 only: V8's reservation of the whole heap range was established there.
      if (process.platform !== 'linux' || process.arch !== 'x64') return `not established on ${process.platform}-${process.arch}`;
      if (heap === null) return null; // the platform alone
      if (typeof SharedArrayBuffer !== 'undefined' && heap instanceof SharedArrayBuffer) return 'the wasm heap is shared';
      if (trapHandlerDisabled()) return 'the wasm trap handler is disabled, so the heap may move when it grows';
      return null;
    },
    growFence: { unread: () => native.writerState().unread, waitReads: (ms) => native.waitReads(ms) },
  },
};

installEnvironment(nodeEnvironment);
