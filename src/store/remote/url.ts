/** Remote locations (`s3://bucket/prefix`) and the keys under them. Keys listed from a bucket are untrusted: a
 * key maps back to a name only when it lies directly under the prefix and its rest is a plain name, so nothing
 * read from a bucket can name an object outside the prefix or a path outside the local directory. */
import { argumentError } from '../../binding/errors';

export interface RemoteLocation {
  bucket: string;
  /** '' or segments joined by '/', without a leading or trailing '/'. */
  prefix: string;
  /** The URL as given, normalized: s3://bucket/prefix. */
  url: string;
}

/** S3's bucket naming rules (lowercase DNS-style, 3 to 63 characters). */
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** A prefix segment: what a local name may be, plus the separators object stores allow without escaping. */
const SEGMENT_RE = /^[A-Za-z0-9._=+-]{1,200}$/;
/** An object name under the prefix: the characters checkpoint, pointer, tag and record names use. */
const NAME_RE = /^[A-Za-z0-9._~=+-]{1,255}$/;

export function parseRemoteUrl(url: string): RemoteLocation {
  if (typeof url !== 'string') throw argumentError('remote must be a string like s3://bucket/prefix');
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m) throw argumentError(`remote "${url}" must look like s3://bucket/prefix`);
  const bucket = m[1]!;
  if (!BUCKET_RE.test(bucket) || bucket.includes('..'))
    throw argumentError(`"${bucket}" is not a valid S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)`);
  const rest = (m[2] ?? '').replace(/\/+$/, '');
  const segments = rest === '' ? [] : rest.split('/');
  for (const s of segments) {
    if (!SEGMENT_RE.test(s) || s === '.' || s === '..')
      throw argumentError(`remote prefix "${rest}" has a segment "${s}" that is not a plain name (letters, digits, . _ = + -; not . or ..)`);
  }
  const prefix = segments.join('/');
  return { bucket, prefix, url: `s3://${bucket}${prefix ? `/${prefix}` : ''}` };
}

export function isRemoteUrl(s: string): boolean {
  return typeof s === 'string' && s.startsWith('s3://');
}

export function plainRemoteName(name: string): boolean {
  return NAME_RE.test(name) && name !== '.' && name !== '..';
}

export function keyOf(loc: RemoteLocation, name: string): string {
  if (!plainRemoteName(name)) throw argumentError(`"${name}" is not a plain object name`);
  return loc.prefix ? `${loc.prefix}/${name}` : name;
}

/** The name a listed key has under the prefix, or null when it is not directly under it or not a plain name. */
export function nameOfKey(loc: RemoteLocation, key: string): string | null {
  const start = loc.prefix ? `${loc.prefix}/` : '';
  if (typeof key !== 'string' || !key.startsWith(start)) return null;
  const name = key.slice(start.length);
  return plainRemoteName(name) ? name : null;
}

export function listPrefix(loc: RemoteLocation): string {
  return loc.prefix ? `${loc.prefix}/` : '';
}
