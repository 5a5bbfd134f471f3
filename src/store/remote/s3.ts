/** S3Objects: the object operations the remote tier needs, over `@aws-sdk/client-s3` (an optional peer, loaded
 * when a remote is first used). Credentials, region and endpoint come from the standard AWS environment and
 * config files; a custom endpoint (AWS_ENDPOINT_URL, MinIO, Ceph) gets path-style addressing. Every failure is a
 * RemoteError carrying the S3 code and HTTP status, never a credential. Integrity: every uploaded part carries its
 * Content-MD5, which the server checks (engines without the newer x-amz-checksum headers check it too), and the
 * stored size is read back; downloads are verified by the caller against the checkpoint's own XXH3 digests. */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type * as S3 from '@aws-sdk/client-s3';
import { argumentError, RemoteError, toCheckpointError } from '../../binding/errors';
import { requirePeer } from '../../binding/peer';
import { keyOf, listPrefix, nameOfKey, RemoteLocation } from './url';

export interface S3ObjectsOptions {
  /** Bytes per multipart part (default 16 MiB, at least 5 MiB); a file up to this size is one PutObject. */
  partBytes?: number;
  /** Parts or ranges in flight at once (default 4): memory held is at most partBytes x concurrency. */
  concurrency?: number;
}

export interface ListedObject {
  name: string;
  size: number;
  lastModified: number;
}

export interface ListedUpload {
  name: string;
  uploadId: string;
  initiated: number;
}

const MiB = 1 << 20;
/** S3's limit on the parts of one multipart upload. */
const MAX_PARTS = 10_000;
/** Error codes that say the request was fine but the store could not serve it now. */
const RETRYABLE_CODES = new Set(['RequestTimeout', 'SlowDown', 'ServiceUnavailable', 'InternalError', 'Throttling', 'TimeoutError']);
/** Failures to reach the store, which may pass. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'TimeoutError',
  'RequestTimeout',
  'NetworkingError',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ECONNREFUSED',
]);

function describe(status: number | undefined, code: string): string {
  if (code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch' || code === 'AccessDenied')
    return `${code}: check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the AWS config files)`;
  if (code === 'NoSuchBucket') return 'NoSuchBucket: the bucket does not exist; create it first';
  if (code === 'BadDigest') return 'BadDigest: the bytes the store received do not match their Content-MD5';
  return status !== undefined ? `${code} (HTTP ${status})` : code;
}

/** The SDK's error as a RemoteError: the S3 code or the network error's code, the status, the operation and the
 * key. The SDK's own message is not kept: it is free text from the wire. */
export function remoteError(err: unknown, op: string, where: string): RemoteError {
  if (err instanceof RemoteError) return err;
  const e = err as { name?: unknown; Code?: unknown; code?: unknown; $metadata?: { httpStatusCode?: unknown } } | null;
  const status = typeof e?.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  const rawCode = typeof e?.Code === 'string' ? e.Code : typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'UnknownError';
  const s3Code = /^[A-Za-z0-9_.-]{1,64}$/.test(rawCode) ? rawCode : 'UnknownError';
  const retryable = status === undefined ? NETWORK_CODES.has(s3Code) : status >= 500 || status === 408 || status === 429 || RETRYABLE_CODES.has(s3Code);
  return new RemoteError(`${op} ${where} failed: ${describe(status, s3Code)}`, { s3Code, ...(status !== undefined ? { status } : {}), retryable, path: where });
}

function md5(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('base64');
}

async function readRange(fd: fs.promises.FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fd.read(buf, done, length - done, offset + done);
    if (bytesRead === 0)
      throw new RemoteError(`the file shrank while it was uploaded (read ${offset + done} of ${offset + length} bytes)`, {
        s3Code: 'ShortRead',
        retryable: false,
      });
    done += bytesRead;
  }
  return buf;
}

/** Runs `count` tasks with at most `limit` at once; the first failure stops new tasks and is thrown. */
async function pool(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, count) }, worker));
  const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
}

export class S3Objects {
  readonly location: RemoteLocation;
  readonly partBytes: number;
  readonly concurrency: number;
  private client: S3.S3Client | null = null;
  private sdk: typeof S3 | null = null;

  constructor(location: RemoteLocation, options: S3ObjectsOptions = {}) {
    this.location = location;
    const partBytes = options.partBytes ?? 16 * MiB;
    const concurrency = options.concurrency ?? 4;
    if (!Number.isSafeInteger(partBytes) || partBytes < 5 * MiB || partBytes > 5 * 1024 * MiB)
      throw argumentError('partBytes must be an integer from 5 MiB to 5 GiB (the S3 part limits)');
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 64) throw argumentError('concurrency must be an integer from 1 to 64');
    this.partBytes = partBytes;
    this.concurrency = concurrency;
  }

  private connect(): { sdk: typeof S3; client: S3.S3Client } {
    if (this.client && this.sdk) return { sdk: this.sdk, client: this.client };
    const sdk = requirePeer<typeof S3>('@aws-sdk/client-s3', `the remote tier (${this.location.url})`);
    const endpoint = process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (endpoint ? 'us-east-1' : undefined);
    this.client = new sdk.S3Client({
      ...(region ? { region } : {}),
      // A custom endpoint (Ceph, MinIO) serves buckets by path, not by virtual host.
      ...(endpoint ? { forcePathStyle: true } : {}),
      // Checksums only where an operation requires them: engines predating the x-amz-checksum headers refuse
      // streamed uploads that carry them. Integrity comes from Content-MD5 and the checkpoint's own digests.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 2,
    });
    this.sdk = sdk;
    return { sdk, client: this.client };
  }

  /** The object's URL for messages; '' is the bucket prefix itself (listings, bucket-wide requests). */
  private where(name: string): string {
    return name === '' ? this.location.url : `s3://${this.location.bucket}/${keyOf(this.location, name)}`;
  }

  private async send<T>(op: string, name: string, make: (sdk: typeof S3) => object): Promise<T> {
    let conn: { sdk: typeof S3; client: S3.S3Client };
    try {
      conn = this.connect();
    } catch (err) {
      throw remoteError(err, op, this.where(name));
    }
    try {
      return (await conn.client.send(make(conn.sdk) as never)) as T;
    } catch (err) {
      throw remoteError(err, op, this.where(name));
    }
  }

  /** One small object, whole. `ifNoneMatch`: only if no object has the key (412 PreconditionFailed otherwise). */
  async putSmall(name: string, data: Uint8Array, options: { ifNoneMatch?: boolean } = {}): Promise<void> {
    const Key = keyOf(this.location, name);
    await this.send(
      'PutObject',
      name,
      (sdk) =>
        new sdk.PutObjectCommand({
          Bucket: this.location.bucket,
          Key,
          Body: data,
          ContentMD5: md5(data),
          ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        }),
    );
  }

  /** A small object's bytes (at most `limit`), or null when there is none. */
  async getSmall(name: string, limit: number): Promise<Uint8Array | null> {
    const Key = keyOf(this.location, name);
    let out: S3.GetObjectCommandOutput;
    try {
      out = await this.send<S3.GetObjectCommandOutput>('GetObject', name, (sdk) => new sdk.GetObjectCommand({ Bucket: this.location.bucket, Key }));
    } catch (err) {
      if (err instanceof RemoteError && (err.s3Code === 'NoSuchKey' || err.status === 404)) return null;
      throw err;
    }
    if ((out.ContentLength ?? 0) > limit)
      throw new RemoteError(`${this.where(name)} is ${out.ContentLength} bytes, more than the ${limit} a record may be`, {
        s3Code: 'TooLarge',
        retryable: false,
        path: this.where(name),
      });
    const bytes = await out.Body!.transformToByteArray();
    if (bytes.length > limit)
      throw new RemoteError(`${this.where(name)} is larger than the ${limit} bytes a record may be`, {
        s3Code: 'TooLarge',
        retryable: false,
        path: this.where(name),
      });
    return bytes;
  }

  /** Every object directly under the prefix whose name is plain (others are not ours and are ignored). */
  async list(): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.send<S3.ListObjectsV2CommandOutput>(
        'ListObjectsV2',
        '',
        (sdk) =>
          new sdk.ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: listPrefix(this.location), ...(token ? { ContinuationToken: token } : {}) }),
      );
      for (const o of page.Contents ?? []) {
        const name = nameOfKey(this.location, o.Key ?? '');
        if (name !== null) out.push({ name, size: Number(o.Size ?? 0), lastModified: o.LastModified ? o.LastModified.getTime() : 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async listUploads(): Promise<ListedUpload[]> {
    const out: ListedUpload[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const page = await this.send<S3.ListMultipartUploadsCommandOutput>(
        'ListMultipartUploads',
        '',
        (sdk) =>
          new sdk.ListMultipartUploadsCommand({
            Bucket: this.location.bucket,
            Prefix: listPrefix(this.location),
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(idMarker ? { UploadIdMarker: idMarker } : {}),
          }),
      );
      for (const u of page.Uploads ?? []) {
        const name = nameOfKey(this.location, u.Key ?? '');
        if (name !== null && u.UploadId) out.push({ name, uploadId: u.UploadId, initiated: u.Initiated ? u.Initiated.getTime() : 0 });
      }
      if (!page.IsTruncated) return out;
      keyMarker = page.NextKeyMarker;
      idMarker = page.NextUploadIdMarker;
    }
  }

  async abortUpload(name: string, uploadId: string): Promise<void> {
    const Key = keyOf(this.location, name);
    await this.send('AbortMultipartUpload', name, (sdk) => new sdk.AbortMultipartUploadCommand({ Bucket: this.location.bucket, Key, UploadId: uploadId }));
  }

  async remove(name: string): Promise<void> {
    const Key = keyOf(this.location, name);
    await this.send('DeleteObject', name, (sdk) => new sdk.DeleteObjectCommand({ Bucket: this.location.bucket, Key }));
  }

  async size(name: string): Promise<number | null> {
    const Key = keyOf(this.location, name);
    try {
      const h = await this.send<S3.HeadObjectCommandOutput>('HeadObject', name, (sdk) => new sdk.HeadObjectCommand({ Bucket: this.location.bucket, Key }));
      return Number(h.ContentLength ?? 0);
    } catch (err) {
      if (err instanceof RemoteError && (err.s3Code === 'NotFound' || err.s3Code === 'NoSuchKey' || err.status === 404)) return null;
      throw err;
    }
  }

  /** Uploads a local file under `name`: one PutObject up to partBytes, else a multipart upload with at most
   * `concurrency` parts in memory, each with its Content-MD5. The stored size is read back. A failed multipart
   * upload is aborted (best effort; the next start cleans what an abort missed). */
  async uploadFile(file: string, name: string, onProgress?: (sent: number, total: number) => void): Promise<number> {
    const fd = await fs.promises.open(file, 'r').catch((err: unknown) => {
      throw toCheckpointError(err);
    });
    try {
      return await this.upload(name, (await fd.stat()).size, (offset, length) => readRange(fd, offset, length), onProgress);
    } finally {
      await fd.close();
    }
  }

  /** uploadFile for bytes in memory. */
  uploadBytes(name: string, data: Uint8Array, onProgress?: (sent: number, total: number) => void): Promise<number> {
    const whole = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return this.upload(name, whole.length, async (offset, length) => whole.subarray(offset, offset + length), onProgress);
  }

  private async upload(
    name: string,
    total: number,
    part: (offset: number, length: number) => Promise<Buffer>,
    onProgress?: (sent: number, total: number) => void,
  ): Promise<number> {
    const Key = keyOf(this.location, name);
    const Bucket = this.location.bucket;
    // One PUT up to partBytes; above, a multipart upload with at most `concurrency` parts in memory, the parts
    // made larger where partBytes would need more than S3's 10,000.
    const partBytes = Math.max(this.partBytes, Math.ceil(total / MAX_PARTS));
    if (total <= partBytes) {
      const body = await part(0, total);
      await this.send('PutObject', name, (sdk) => new sdk.PutObjectCommand({ Bucket, Key, Body: body, ContentMD5: md5(body) }));
      onProgress?.(total, total);
    } else {
      const created = await this.send<S3.CreateMultipartUploadCommandOutput>(
        'CreateMultipartUpload',
        name,
        (sdk) => new sdk.CreateMultipartUploadCommand({ Bucket, Key }),
      );
      const UploadId = created.UploadId!;
      const count = Math.ceil(total / partBytes);
      const etags: string[] = new Array<string>(count);
      let sent = 0;
      try {
        await pool(count, this.concurrency, async (i) => {
          const offset = i * partBytes;
          const body = await part(offset, Math.min(partBytes, total - offset));
          const uploaded = await this.send<S3.UploadPartCommandOutput>(
            'UploadPart',
            name,
            (sdk) => new sdk.UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body: body, ContentMD5: md5(body) }),
          );
          etags[i] = uploaded.ETag ?? '';
          sent += body.length;
          onProgress?.(sent, total);
        });
        await this.send(
          'CompleteMultipartUpload',
          name,
          (sdk) =>
            new sdk.CompleteMultipartUploadCommand({
              Bucket,
              Key,
              UploadId,
              MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
            }),
        );
      } catch (err) {
        await this.abortUpload(name, UploadId).catch(() => {});
        throw err;
      }
    }
    // Some engines answer a completed multipart upload with an empty ETag: the size is what is read back.
    const stored = await this.size(name);
    if (stored !== total)
      throw new RemoteError(`${this.where(name)} holds ${stored ?? 'no'} bytes after the upload of ${total}`, {
        s3Code: 'SizeMismatch',
        retryable: true,
        path: this.where(name),
      });
    return total;
  }

  /** An object's bytes in memory (ranged GETs, at most `concurrency` at once), or null when there is none. */
  async downloadBytes(name: string): Promise<Uint8Array | null> {
    const size = await this.size(name);
    if (size === null) return null;
    const Key = keyOf(this.location, name);
    const out = new Uint8Array(size);
    await pool(Math.max(1, Math.ceil(size / this.partBytes)), this.concurrency, async (i) => {
      const start = i * this.partBytes;
      const end = Math.min(size, start + this.partBytes) - 1;
      if (end < start) return;
      const got = await this.send<S3.GetObjectCommandOutput>(
        'GetObject',
        name,
        (sdk) => new sdk.GetObjectCommand({ Bucket: this.location.bucket, Key, Range: `bytes=${start}-${end}` }),
      );
      const bytes = await got.Body!.transformToByteArray();
      if (bytes.length !== end - start + 1)
        throw new RemoteError(`${this.where(name)}: range ${start}-${end} returned ${bytes.length} bytes (the object changed while it was read)`, {
          s3Code: 'ShortRead',
          retryable: true,
          path: this.where(name),
        });
      out.set(bytes, start);
    });
    return out;
  }

  /** Downloads `name` (of `size` bytes) into `file` (created, or truncated) with ranged GETs, at most
   * `concurrency` at once; the file is fsynced. The caller verifies the bytes. */
  async downloadFile(name: string, size: number, file: string, onProgress?: (received: number, total: number) => void): Promise<void> {
    const Key = keyOf(this.location, name);
    const Bucket = this.location.bucket;
    const fd = await fs.promises
      .open(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o644)
      .catch((err: unknown) => {
        throw toCheckpointError(err);
      });
    try {
      const count = Math.max(1, Math.ceil(size / this.partBytes));
      let received = 0;
      await pool(count, this.concurrency, async (i) => {
        const start = i * this.partBytes;
        const end = Math.min(size, start + this.partBytes) - 1;
        if (end < start) return;
        const out = await this.send<S3.GetObjectCommandOutput>(
          'GetObject',
          name,
          (sdk) => new sdk.GetObjectCommand({ Bucket, Key, Range: `bytes=${start}-${end}` }),
        );
        const bytes = await out.Body!.transformToByteArray();
        if (bytes.length !== end - start + 1)
          throw new RemoteError(`${this.where(name)}: range ${start}-${end} returned ${bytes.length} bytes`, {
            s3Code: 'ShortRead',
            retryable: true,
            path: this.where(name),
          });
        await fd.write(bytes, 0, bytes.length, start);
        received += bytes.length;
        onProgress?.(received, size);
      });
      await fd.sync();
    } finally {
      await fd.close();
    }
  }

  /** Creates the bucket (the local demo and the tests; a bucket that exists and is ours is fine). */
  async createBucket(): Promise<void> {
    try {
      await this.send('CreateBucket', '', (sdk) => new sdk.CreateBucketCommand({ Bucket: this.location.bucket }));
    } catch (err) {
      if (err instanceof RemoteError && (err.s3Code === 'BucketAlreadyOwnedByYou' || err.s3Code === 'BucketAlreadyExists')) return;
      throw err;
    }
  }

  destroy(): void {
    this.client?.destroy();
    this.client = null;
  }
}
