/** The lease of an object-store prefix: which writer may write it, until when. Object stores have no lock that
 * dies with its process, so a writer holds the lease by renewing it; it is live until it expires, or until its
 * holder is known dead (a process of this host that no longer exists). */
import * as os from 'node:os';
import { RemoteError } from '../../binding/errors';
import { processAlive } from '../local';
import { S3Objects } from './s3';

export const LEASE_NAME = 'ckptio.lease';
const LEASE_MAX = 1 << 16;

export interface Lease {
  writer: string;
  host: string;
  pid: number;
  /** ms since the epoch. */
  expires: number;
}

function parseLease(bytes: Uint8Array | null): Lease | null {
  if (!bytes) return null;
  try {
    const v = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<Lease>;
    // Untrusted: the host is quoted in messages, the expiry formatted as a date.
    if (
      typeof v.writer === 'string' &&
      /^[0-9a-f]{1,64}$/.test(v.writer) &&
      typeof v.host === 'string' &&
      /^[A-Za-z0-9._-]{1,253}$/.test(v.host) &&
      Number.isSafeInteger(v.pid) &&
      Number.isSafeInteger(v.expires) &&
      Math.abs(v.expires as number) < 8.64e15
    )
      return v as Lease;
  } catch {
    /* an unreadable lease is no lease */
  }
  return null;
}

/** Whether the lease's holder may still be uploading: its lease has not expired and it is not a dead process on
 * this host. */
export function leaseLive(lease: Lease | null, now = Date.now()): boolean {
  if (!lease || lease.expires <= now) return false;
  return !(lease.host === os.hostname() && !processAlive(lease.pid));
}

/** Takes (or renews) the prefix's lease for `me`; refuses while another writer's lease is live. Returns the
 * previous holder's lease, or null. */
export async function takeLease(objects: S3Objects, me: Lease): Promise<Lease | null> {
  const previous = parseLease(await objects.getSmall(LEASE_NAME, LEASE_MAX));
  if (previous && previous.writer !== me.writer && leaseLive(previous)) {
    throw new RemoteError(
      `${objects.location.url} is being written by another writer (pid ${previous.pid} on ${previous.host}) until ${new Date(previous.expires).toISOString()}; one writer per prefix`,
      // Retryable: a writer that died without handing the lease back loses it when it expires.
      { s3Code: 'LeaseHeld', retryable: true, path: objects.location.url },
    );
  }
  await objects.putSmall(LEASE_NAME, Buffer.from(JSON.stringify(me)));
  return previous;
}
