/** S3Store: a CheckpointStore in an S3 bucket prefix, as the only store (no local disk). Each object is put whole
 * (a PUT or a completed multipart upload is visible complete or not at all), in the commit protocol's order
 * (checkpoint, then pointers and manifest, then removals), so `durable` means committed in the bucket. The run
 * lock is the prefix's lease. The checkpoint is encoded and decoded in memory (format/codec.ts), and the AWS SDK
 * runs on the calling thread: for a training loop that must not stall, replicate a local run instead
 * (`Checkpointer({ dir, remote })`, docs/remote.md). */
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { CheckpointError, RemoteError } from '../../binding/errors';
import { decodeCheckpoint } from '../../format/codec';
import { HeaderInfo, ReadOptions, ReadResult, SaveResult } from '../../format/file';
import { commitThroughCodec } from '../codec-commit';
import { SMALL_OBJECT_MAX } from '../local';
import { headerOf } from '../memory';
import { CheckpointStore, CommitRequest, StoredObject, StoreLock } from '../store';
import { Lease, LEASE_NAME, takeLease } from './lease';
import { S3Objects, S3ObjectsOptions } from './s3';
import { parseRemoteUrl } from './url';

export interface S3StoreOptions extends S3ObjectsOptions {
  /** How long the lease lasts without renewal (default 30000 ms). */
  leaseMs?: number;
}

export class S3Store implements CheckpointStore {
  readonly location: string;
  private readonly objects: S3Objects;
  private readonly leaseMs: number;
  private readonly startedAt = Date.now();
  private readonly writer = randomBytes(8).toString('hex');

  constructor(url: string, options: S3StoreOptions = {}) {
    const loc = parseRemoteUrl(url);
    this.location = loc.url;
    this.objects = new S3Objects(loc, options);
    this.leaseMs = options.leaseMs ?? 30_000;
  }

  /** Fails now when the bucket cannot be listed (a missing bucket, wrong credentials: ECKPT_REMOTE). */
  async open(): Promise<void> {
    await this.objects.list();
  }

  async lock(): Promise<StoreLock> {
    const lease = (): Lease => ({ writer: this.writer, host: os.hostname(), pid: process.pid, expires: Date.now() + this.leaseMs });
    try {
      await takeLease(this.objects, lease());
    } catch (err) {
      if (err instanceof RemoteError && err.s3Code === 'LeaseHeld') throw new CheckpointError(err.message, { code: 'ECKPT_LOCKED', path: this.location });
      throw err;
    }
    const timer = setInterval(
      () => {
        this.objects.putSmall(LEASE_NAME, Buffer.from(JSON.stringify(lease()))).catch(() => {});
      },
      Math.max(1000, this.leaseMs / 3),
    );
    timer.unref();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        // Expired now, so the next writer need not wait (best effort: an unreachable store lets it expire).
        this.objects.putSmall(LEASE_NAME, Buffer.from(JSON.stringify({ ...lease(), expires: 0 }))).catch(() => {});
      },
    };
  }

  async list(): Promise<StoredObject[]> {
    return (await this.objects.list()).filter((o) => o.name !== LEASE_NAME).map((o) => ({ name: o.name }));
  }

  commit(request: CommitRequest): Promise<SaveResult> {
    return commitThroughCodec(
      request,
      {
        put: async (name, data) => {
          await this.objects.uploadBytes(name, data);
        },
        remove: async (names) => {
          for (const n of names) await this.objects.remove(n);
        },
      },
      this.location,
    );
  }

  async writeSmall(name: string, data: Uint8Array): Promise<void> {
    await this.objects.putSmall(name, data);
  }

  readSmall(name: string): Promise<Uint8Array | null> {
    return this.objects.getSmall(name, SMALL_OBJECT_MAX);
  }

  private async bytes(name: string): Promise<Uint8Array> {
    const data = await this.objects.downloadBytes(name);
    if (!data) throw new CheckpointError(`${this.location}/${name} does not exist`, { code: 'ENOENT', path: `${this.location}/${name}` });
    return data;
  }

  async read(name: string, options: ReadOptions = {}): Promise<ReadResult> {
    const { contentId: _contentId, ...result } = await decodeCheckpoint(await this.bytes(name), { verify: options.verify ?? true });
    void _contentId;
    return result;
  }

  /** The whole object is downloaded: object stores have no cheap way to read a header of unknown length. */
  async readHeader(name: string): Promise<HeaderInfo> {
    return headerOf(await decodeCheckpoint(await this.bytes(name), { verify: false }));
  }

  async remove(names: string[]): Promise<void> {
    for (const n of names) await this.objects.remove(n);
  }

  /** Multipart uploads started before this store opened: their writers are gone, since this one holds the lease. */
  async cleanStaleTemps(): Promise<string[]> {
    const removed: string[] = [];
    for (const u of await this.objects.listUploads()) {
      if (u.initiated >= this.startedAt) continue;
      await this.objects.abortUpload(u.name, u.uploadId);
      removed.push(`${u.name} (multipart upload ${u.uploadId.slice(0, 12)})`);
    }
    return removed;
  }

  destroy(): void {
    this.objects.destroy();
  }
}
