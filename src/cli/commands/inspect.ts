/** `ckptio inspect FILE`: validates one checkpoint (digests included unless --no-verify) and prints its
 * tensors and metadata: a readable summary by default, the full record with --json. */
import { readCheckpoint, readHeader } from '../../format/file';
import { METADATA_KEYS } from '../../format/metadata-keys';
import { formatBytes, out, printJson, safe, table } from './output';

const SHOWN_VALUE_CHARS = 120;

function short(v: string): string {
  return v.length > SHOWN_VALUE_CHARS ? `${v.slice(0, SHOWN_VALUE_CHARS)}... (${v.length} chars)` : v;
}

export async function inspect(file: string, o: { verify: boolean; json?: boolean }): Promise<void> {
  const r = await readCheckpoint(file, { verify: o.verify });
  const header = await readHeader(file);
  const tensors = Object.fromEntries(Object.entries(r.tensors).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]));
  if (o.json) {
    printJson({ file, bytes: r.bytes, verified: r.verified, compression: r.compression, contentId: header.contentId ?? null, metadata: r.metadata, tensors });
    return;
  }
  const m = r.metadata;
  out(`file         ${safe(file)}`);
  out(`size         ${formatBytes(r.bytes)} (${r.bytes} bytes)`);
  out(`verified     ${r.verified ? 'yes (every digest checked)' : o.verify ? 'no (a file without checksums)' : 'no (--no-verify)'}`);
  out(`compression  ${r.compression}`);
  if (header.contentId) out(`content id   ${safe(header.contentId)}`);
  if (m[METADATA_KEYS.step] !== undefined) out(`step         ${safe(m[METADATA_KEYS.step])}`);
  if (m[METADATA_KEYS.time] !== undefined) out(`time         ${safe(m[METADATA_KEYS.time])}`);
  if (m[METADATA_KEYS.metrics] !== undefined) out(`metrics      ${safe(m[METADATA_KEYS.metrics])}`);
  if (m[METADATA_KEYS.parent] !== undefined) out(`parent       ${safe(m[METADATA_KEYS.parent])}`);
  const shownKeys = new Set<string>([METADATA_KEYS.step, METADATA_KEYS.time, METADATA_KEYS.metrics, METADATA_KEYS.parent]);
  const rest = Object.entries(m).filter(([k]) => !shownKeys.has(k) && !k.startsWith('ckptio.digest') && k !== 'ckptio.checksum');
  if (rest.length) {
    out('metadata');
    for (const [k, v] of rest) out(`  ${safe(k)} = ${safe(short(v))}`);
  }
  const names = Object.keys(r.tensors);
  out(`tensors      ${names.length}`);
  const rows = names.map((n) => {
    const t = r.tensors[n]!;
    return [safe(n), t.dtype, `[${t.shape.join(', ')}]`, formatBytes(t.data.byteLength)];
  });
  for (const l of table(
    ['  NAME', 'DTYPE', 'SHAPE', 'BYTES'],
    rows.map((row) => [`  ${row[0]}`, ...row.slice(1)]),
  ))
    out(l);
}
