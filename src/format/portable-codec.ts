/** The checkpoint file codec in TypeScript, for where the native addon is not loaded (the portable writer, the
 * browser): the bytes docs/format.md "Byte-exact encoding" specifies (the golden files in test/golden/ check them),
 * and the same read rules and messages as native/format/header.cc. No Node built-ins: XXH3-64 comes in as a
 * function (src/format/xxh3.ts). */
import { CheckpointError, CheckpointErrorCode } from '../binding/errors';
import type { NativeHeader, NativeReadTable, NativeTensorTable } from '../binding/contract';
import { READ_DTYPES, WRITE_DTYPES, type DTypeRow } from './dtype-table';

/** XXH3-64 (seed 0) of bytes as 16 lowercase hex digits. */
export type Xxh3 = (data: Uint8Array) => string;

const FORMAT_KEY = 'ckptio.format';
const CHECKSUM_KEY = 'ckptio.checksum';
const TENSOR_HASHES_KEY = 'ckptio.tensor_xxh3';
const HEADER_HASH_KEY = 'ckptio.header_xxh3';
/** The writer's own keys (native/format/header.h kReservedKeys): a caller may not set them, a read hides them. */
export const RESERVED_KEYS: readonly string[] = [FORMAT_KEY, CHECKSUM_KEY, TENSOR_HASHES_KEY, HEADER_HASH_KEY];
export const MAX_HEADER_LEN = 100_000_000;
const MAX_DIM = 2 ** 53 - 1;
const MAX_JSON_DEPTH = 16;

const utf8Encoder = new TextEncoder();
const utf8 = (s: string): Uint8Array => utf8Encoder.encode(s);

function fail(code: CheckpointErrorCode, message: string, path?: string): CheckpointError {
  return new CheckpointError(path ? `${message} ('${path}')` : message, path ? { code, path } : { code });
}

/** Byte-wise comparison of UTF-8 (what std::string's < does). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function quote(s: string): string {
  return escapeJson(s);
}

/** JSON string as the spec escapes it: `"` `\` newline, return, tab by name, other controls as \u00xx. */
function escapeJson(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20) out += `\\u00${c.toString(16).padStart(2, '0')}`;
    else out += s[i];
  }
  return out + '"';
}

interface Placed {
  name: string;
  nameBytes: Uint8Array;
  row: DTypeRow;
  shape: number[];
  begin: number;
  end: number;
  data: Uint8Array;
}

const U64_MAX = 0xffffffffffffffffn;

/** Elements times bits per element, or null where the product overflows 64 bits at any step (native TensorBytes:
 * a zero dim after an overflowing prefix does not make it valid). */
function tensorBits(shape: bigint[], row: DTypeRow): bigint | null {
  let elements = 1n;
  for (const d of shape) {
    if (d !== 0n && elements > U64_MAX / d) return null;
    elements *= d;
  }
  if (elements > U64_MAX / BigInt(row.bits)) return null;
  return elements * BigInt(row.bits);
}

/** A file to write: the 8-byte length and header, then the tensors' bytes in layout order (views of the caller's
 * memory, not copies). */
export interface FilePlan {
  header: Uint8Array;
  parts: Uint8Array[];
  bytes: number;
  contentId?: string;
}

/** Lays out, digests and renders a file for a packed tensor table (docs/format.md "Byte-exact encoding"). Bad
 * input is ECKPT_ARGS, as from the native writer. */
export function planFile(table: NativeTensorTable, metadata: Record<string, string>, checksum: boolean, xxh3: Xxh3): FilePlan {
  const tensors: Placed[] = [];
  let nameAt = 0;
  let dimAt = 0;
  for (let i = 0; i < table.dtypes.length; i++) {
    const name = table.names.slice(nameAt, nameAt + table.nameLengths[i]!);
    nameAt += table.nameLengths[i]!;
    const row = WRITE_DTYPES[table.dtypes[i]!];
    if (!row) throw fail('ECKPT_ARGS', `tensor ${quote(name)}: unknown dtype code ${table.dtypes[i]}`);
    const shape = Array.from(table.dims.subarray(dimAt, dimAt + table.ranks[i]!));
    dimAt += table.ranks[i]!;
    const view = table.data[i]!;
    const data = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    if (name === '__metadata__') throw fail('ECKPT_ARGS', 'tensor name "__metadata__" is reserved');
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0 || d > MAX_DIM) throw fail('ECKPT_ARGS', `tensor ${quote(name)}: dimension ${d} is not an integer from 0 to 2^53-1`);
    }
    const big = tensorBits(shape.map(BigInt), row);
    if (big === null) throw fail('ECKPT_ARGS', `tensor ${quote(name)}: shape [${shape.join(',')}] overflows 64 bits`);
    const bits = Number(big);
    if (bits / 8 !== data.byteLength) {
      throw fail('ECKPT_ARGS', `tensor ${quote(name)}: data is ${data.byteLength} bytes but shape [${shape.join(',')}] x ${row.safetensors} needs ${bits / 8}`);
    }
    tensors.push({ name, nameBytes: utf8(name), row, shape, begin: 0, end: 0, data });
  }
  tensors.sort((a, b) => (a.row.bits !== b.row.bits ? b.row.bits - a.row.bits : compareBytes(a.nameBytes, b.nameBytes)));
  let offset = 0;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i]!;
    if (i > 0 && compareBytes(tensors[i - 1]!.nameBytes, t.nameBytes) === 0) throw fail('ECKPT_ARGS', `duplicate tensor name ${quote(t.name)}`);
    t.begin = offset;
    t.end = offset + t.data.byteLength;
    offset = t.end;
  }
  const names = tensors.map((t) => t.nameBytes).sort(compareBytes);
  for (let i = 1; i < names.length; i++) {
    if (compareBytes(names[i]!, names[i - 1]!) === 0) throw fail('ECKPT_ARGS', `duplicate tensor name ${quote(new TextDecoder().decode(names[i]))}`);
  }
  const entries: [string, string][] = [];
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw fail('ECKPT_ARGS', `metadata ${quote(key)} is not a string`);
    if (RESERVED_KEYS.includes(key)) throw fail('ECKPT_ARGS', `metadata key ${quote(key)} is reserved for ckptio`);
    entries.push([key, value]);
  }
  let contentId: string | undefined;
  if (checksum) {
    const digests = tensors.map((t) => xxh3(t.data));
    entries.push([FORMAT_KEY, '1'], [CHECKSUM_KEY, 'xxh3-64'], [TENSOR_HASHES_KEY, digests.join(',')]);
    entries.push([HEADER_HASH_KEY, xxh3(headerDigestStream(tensors, entries))]);
    contentId = xxh3(utf8(tensors.map((t, i) => `${t.name}:${digests[i]}\n`).join('')));
  }
  const sorted = entries.map(([k, v]) => ({ k, v, kb: utf8(k), vb: utf8(v) })).sort((a, b) => compareBytes(a.kb, b.kb) || compareBytes(a.vb, b.vb));
  let json = '{"__metadata__":{' + sorted.map((e) => `${escapeJson(e.k)}:${escapeJson(e.v)}`).join(',') + '}';
  for (const t of tensors)
    json += `,${escapeJson(t.name)}:{"dtype":"${t.row.safetensors}","shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`;
  json += '}';
  const jsonBytes = utf8(json);
  const padded = jsonBytes.length + ((8 - (jsonBytes.length % 8)) % 8);
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + jsonBytes.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(jsonBytes, 8);
  const plan: FilePlan = { header, parts: tensors.map((t) => t.data), bytes: header.length + offset };
  if (contentId !== undefined) plan.contentId = contentId;
  return plan;
}

/** The plan's bytes in one buffer. */
export function joinPlan(plan: FilePlan): Uint8Array {
  const out = new Uint8Array(plan.bytes);
  out.set(plan.header, 0);
  let at = plan.header.length;
  for (const p of plan.parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** docs/format.md step 3: the byte stream the header digest covers. */
function headerDigestStream(tensors: { name: string; row: DTypeRow; shape: number[]; begin: number; end: number }[], metadata: [string, string][]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const u64 = (x: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(x), true);
    chunks.push(b);
  };
  const str = (s: string) => {
    const b = utf8(s);
    u64(b.length);
    chunks.push(b);
  };
  u64(tensors.length);
  for (const t of tensors) {
    str(t.name);
    str(t.row.safetensors);
    u64(t.shape.length);
    for (const d of t.shape) u64(d);
    u64(t.begin);
    u64(t.end);
  }
  const entries = metadata
    .filter(([k]) => k !== HEADER_HASH_KEY)
    .map(([k, v]) => ({ k, v, kb: utf8(k) }))
    .sort((a, b) => compareBytes(a.kb, b.kb));
  u64(entries.length);
  for (const e of entries) {
    str(e.k);
    str(e.v);
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

// ---- reading ----

type Json = { t: 'object'; entries: [string, Json][] } | { t: 'array'; items: Json[] } | { t: 'string'; s: string } | { t: 'integer'; n: bigint };

/** The header's JSON, strictly as the native parser reads it: objects keep duplicate keys (rejected later), only
 * non-negative integers, no true/false/null, depth at most 16. */
function parseJson(text: string): Json {
  let pos = 0;
  const err = (m: string) => new Error(`${m} at byte ${utf8(text.slice(0, pos)).length} of the header`);
  const ws = () => {
    while (pos < text.length && (text[pos] === ' ' || text[pos] === '\t' || text[pos] === '\n' || text[pos] === '\r')) pos++;
  };
  const hex4 = (): number => {
    if (text.length - pos < 4) throw err('truncated \\u escape');
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = text[pos++]!;
      if (!/[0-9a-fA-F]/.test(c)) throw err('invalid \\u escape');
      v = v * 16 + parseInt(c, 16);
    }
    return v;
  };
  const string = (): string => {
    pos++;
    let out = '';
    for (;;) {
      if (pos >= text.length) throw err('unterminated string');
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        pos++;
        return out;
      }
      if (c < 0x20) throw err('control character in string');
      if (c !== 0x5c) {
        out += text[pos++];
        continue;
      }
      pos++;
      if (pos >= text.length) throw err('unterminated escape');
      const e = text[pos++];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && Object.hasOwn(simple, e)) out += simple[e];
      else if (e === 'u') {
        const cp = hex4();
        if (cp >= 0xdc00 && cp <= 0xdfff) throw err('lone low surrogate in \\u escape');
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (text[pos] !== '\\' || text[pos + 1] !== 'u') throw err('lone high surrogate');
          pos += 2;
          const low = hex4();
          if (low < 0xdc00 || low > 0xdfff) throw err('invalid surrogate pair');
          out += String.fromCharCode(cp, low);
        } else out += String.fromCharCode(cp);
      } else {
        pos--;
        throw err('invalid escape');
      }
    }
  };
  const value = (depth: number): Json => {
    if (depth > MAX_JSON_DEPTH) throw err('JSON nested too deeply');
    ws();
    if (pos >= text.length) throw err('unexpected end of JSON');
    const c = text[pos]!;
    if (c === '{') {
      pos++;
      const entries: [string, Json][] = [];
      ws();
      if (text[pos] === '}') {
        pos++;
        return { t: 'object', entries };
      }
      for (;;) {
        ws();
        if (text[pos] !== '"') throw err('expected a string key in object');
        const key = string();
        ws();
        if (text[pos] !== ':') throw err("expected ':' after object key");
        pos++;
        entries.push([key, value(depth + 1)]);
        ws();
        if (pos >= text.length) throw err('unterminated object');
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === '}') {
          pos++;
          return { t: 'object', entries };
        }
        throw err("expected ',' or '}' in object");
      }
    }
    if (c === '[') {
      pos++;
      const items: Json[] = [];
      ws();
      if (text[pos] === ']') {
        pos++;
        return { t: 'array', items };
      }
      for (;;) {
        ws();
        items.push(value(depth + 1));
        ws();
        if (pos >= text.length) throw err('unterminated array');
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === ']') {
          pos++;
          return { t: 'array', items };
        }
        throw err("expected ',' or ']' in array");
      }
    }
    if (c === '"') return { t: 'string', s: string() };
    if (c >= '0' && c <= '9') {
      if (c === '0' && text[pos + 1] !== undefined && text[pos + 1]! >= '0' && text[pos + 1]! <= '9') throw err('number with a leading zero');
      let n = 0n;
      while (pos < text.length && text[pos]! >= '0' && text[pos]! <= '9') {
        const d = BigInt(text.charCodeAt(pos) - 48);
        if (n > (U64_MAX - d) / 10n) throw err('integer overflows 64 bits');
        n = n * 10n + d;
        pos++;
      }
      if (text[pos] === '.' || text[pos] === 'e' || text[pos] === 'E') throw err('fractional number (only integers are allowed)');
      return { t: 'integer', n };
    }
    if (c === '-') throw err('negative number (only non-negative integers are allowed)');
    if (c === 't' || c === 'f' || c === 'n') throw err('true/false/null are not allowed in a safetensors header');
    throw err('invalid JSON value');
  };
  const root = value(0);
  ws();
  if (pos !== text.length) throw err('unexpected bytes after the JSON value');
  return root;
}

interface ParsedTensor {
  name: string;
  code: number;
  row: DTypeRow;
  shape: bigint[];
  begin: bigint;
  end: bigint;
}

/** A parsed header (data order), as native ParseHeader gives it. */
export interface ParsedHeader {
  headerLen: number;
  dataStart: number;
  dataLen: number;
  tensors: { name: string; code: number; row: DTypeRow; shape: number[]; begin: number; end: number }[];
  metadata: [string, string][];
  checksums: { header: string; tensors: string[] } | null;
}

const typeName = (j: Json) => j.t;

/** Parses the header at the start of `file` (the whole file, or at least its first 8 + header-length bytes, with
 * `fileSize` the whole file's size). Problems are ECKPT_FORMAT with the native reader's wording. */
export function parseHeader(file: Uint8Array, fileSize: number, path?: string): ParsedHeader {
  const bad = (m: string) => fail('ECKPT_FORMAT', m, path);
  if (fileSize < 8) throw bad(`file is ${fileSize} bytes, too short for the 8-byte header length`);
  const n64 = new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_LEN)) throw bad(`header length ${n64} exceeds the ${MAX_HEADER_LEN}-byte cap`);
  const n = Number(n64);
  if (n > fileSize - 8) throw bad(`header length ${n} runs past the end of the file (${fileSize} bytes): truncated or corrupt`);
  if (n < 2) throw bad(`header length ${n} is too small for a JSON object`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(file.subarray(8, 8 + n));
  } catch {
    throw bad('header is not valid UTF-8');
  }
  let root: Json;
  try {
    root = parseJson(text);
  } catch (e) {
    throw bad(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (root.t !== 'object') throw bad('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = fileSize - dataStart;
  const tensors: ParsedTensor[] = [];
  const metadata: [string, string][] = [];
  let seenMetadata = false;
  for (const [key, value] of root.entries) {
    if (key === '__metadata__') {
      if (seenMetadata) throw bad('duplicate "__metadata__" entry');
      seenMetadata = true;
      if (value.t !== 'object') throw bad('"__metadata__" is not an object');
      for (const [mk, mv] of value.entries) {
        if (mv.t !== 'string') throw bad(`metadata ${quote(mk)} is a ${typeName(mv)}, not a string`);
        metadata.push([mk, mv.s]);
      }
      continue;
    }
    if (value.t !== 'object') throw bad(`tensor ${quote(key)} is not an object`);
    let code = -1;
    let shape: bigint[] | undefined;
    let offsets: [bigint, bigint] | undefined;
    for (const [field, fv] of value.entries) {
      if (field === 'dtype') {
        if (code >= 0) throw bad(`tensor ${quote(key)}: duplicate "dtype"`);
        code = fv.t === 'string' ? READ_DTYPES.findIndex((r) => r.safetensors === fv.s) : -1;
        if (code < 0) throw bad(`tensor ${quote(key)}: unknown dtype ${fv.t === 'string' ? quote(fv.s) : '(not a string)'}`);
      } else if (field === 'shape') {
        if (shape) throw bad(`tensor ${quote(key)}: duplicate "shape"`);
        if (fv.t !== 'array') throw bad(`tensor ${quote(key)}: shape is not an array`);
        shape = fv.items.map((d) => {
          if (d.t !== 'integer') throw bad(`tensor ${quote(key)}: shape holds a non-integer`);
          return d.n;
        });
      } else if (field === 'data_offsets') {
        if (offsets) throw bad(`tensor ${quote(key)}: duplicate "data_offsets"`);
        if (fv.t !== 'array' || fv.items.length !== 2 || fv.items[0]!.t !== 'integer' || fv.items[1]!.t !== 'integer') {
          throw bad(`tensor ${quote(key)}: data_offsets is not [begin, end]`);
        }
        offsets = [fv.items[0].n, fv.items[1].n];
      } else {
        throw bad(`tensor ${quote(key)}: unknown field ${quote(field)}`);
      }
    }
    if (code < 0 || !shape || !offsets) throw bad(`tensor ${quote(key)}: missing dtype, shape or data_offsets`);
    const [begin, end] = offsets;
    if (begin > end) throw bad(`tensor ${quote(key)}: data_offsets begin > end`);
    if (end > BigInt(dataLen))
      throw bad(`tensor ${quote(key)}: data_offsets [${begin},${end}] out of range of the ${dataLen}-byte data region (truncated file?)`);
    const row = READ_DTYPES[code]!;
    const bits = tensorBits(shape, row);
    if (bits === null) throw bad(`tensor ${quote(key)}: shape [${shape.join(',')}] overflows 64 bits`);
    if (bits % 8n !== 0n) throw bad(`tensor ${quote(key)}: shape [${shape.join(',')}] x ${row.safetensors} is ${bits} bits, not a whole number of bytes`);
    if (bits / 8n !== end - begin) {
      throw bad(`tensor ${quote(key)}: shape [${shape.join(',')}] x ${row.safetensors} is ${bits / 8n} bytes but data_offsets span ${end - begin}`);
    }
    tensors.push({ name: key, code, row, shape, begin, end });
  }
  const byBytes = (a: string, b: string) => compareBytes(utf8(a), utf8(b));
  const names = tensors.map((t) => t.name).sort(byBytes);
  for (let i = 1; i < names.length; i++) if (names[i] === names[i - 1]) throw bad(`duplicate tensor name ${quote(names[i]!)}`);
  const keys = metadata.map(([k]) => k).sort(byBytes);
  for (let i = 1; i < keys.length; i++) if (keys[i] === keys[i - 1]) throw bad(`duplicate metadata key ${quote(keys[i]!)}`);
  tensors.sort((a, b) => {
    if (a.begin !== b.begin) return a.begin < b.begin ? -1 : 1;
    if (a.end !== b.end) return a.end < b.end ? -1 : 1;
    return a.row.bits !== b.row.bits ? b.row.bits - a.row.bits : byBytes(a.name, b.name);
  });
  let expected = 0n;
  for (const t of tensors) {
    if (t.begin < expected) throw bad(`tensor ${quote(t.name)}: data_offsets overlap the previous tensor`);
    if (t.begin > expected) throw bad(`tensor ${quote(t.name)}: hole of ${t.begin - expected} bytes before its data`);
    expected = t.end;
  }
  if (expected !== BigInt(dataLen)) throw bad(`data region is ${dataLen} bytes but tensors cover ${expected} (trailing bytes or truncated file)`);
  for (const t of tensors) {
    for (const d of t.shape) {
      if (d > BigInt(MAX_DIM)) {
        throw bad(
          `tensor ${quote(t.name)}: dimension ${d} is above 2^53-1, the largest a JavaScript number holds exactly (shape [${t.shape.join(',')}]); ckptio rejects it rather than return it rounded`,
        );
      }
    }
  }
  const out: ParsedHeader = {
    headerLen: n,
    dataStart,
    dataLen,
    tensors: tensors.map((t) => ({ name: t.name, code: t.code, row: t.row, shape: t.shape.map(Number), begin: Number(t.begin), end: Number(t.end) })),
    metadata,
    checksums: null,
  };
  const get = (k: string) => metadata.find(([mk]) => mk === k)?.[1];
  const format = get(FORMAT_KEY);
  if (format === undefined) return out;
  if (format !== '1') throw bad(`unsupported ckptio format version ${quote(format)}`);
  if (get(CHECKSUM_KEY) !== 'xxh3-64') throw bad(`missing or unknown ${CHECKSUM_KEY}`);
  const list = get(TENSOR_HASHES_KEY);
  const header = get(HEADER_HASH_KEY);
  if (list === undefined || header === undefined) throw bad('missing ckptio checksum keys');
  const hex = /^[0-9a-f]{16}$/;
  if (!hex.test(header)) throw bad(`malformed ${HEADER_HASH_KEY}`);
  const digests = tensors.length === 0 ? [] : list.split(',');
  if (tensors.length === 0 && list !== '') throw bad(`malformed ${TENSOR_HASHES_KEY}`);
  if (!digests.every((d) => hex.test(d))) throw bad(`malformed ${TENSOR_HASHES_KEY}`);
  if (digests.length !== tensors.length) throw bad(`${TENSOR_HASHES_KEY} lists ${digests.length} digests for ${tensors.length} tensors`);
  out.checksums = { header, tensors: digests };
  return out;
}

const CHECKSUM_ALTERED = 'header checksum mismatch: a tensor name, dtype, shape, offset or metadata entry was altered';

/** The header digest check (ECKPT_CHECKSUM), where the file has checksums. */
export function verifyHeaderDigest(h: ParsedHeader, xxh3: Xxh3, path?: string): void {
  if (h.checksums && xxh3(headerDigestStream(h.tensors, h.metadata)) !== h.checksums.header) throw fail('ECKPT_CHECKSUM', CHECKSUM_ALTERED, path);
}

/** Every digest (ECKPT_CHECKSUM): the header's, then each tensor's over `file`'s data region. */
export function verifyChecksums(h: ParsedHeader, file: Uint8Array, xxh3: Xxh3, path?: string): void {
  if (!h.checksums) throw fail('ECKPT_CHECKSUM', 'file has no ckptio checksums (plain safetensors); read it with verify: false', path);
  verifyHeaderDigest(h, xxh3, path);
  h.tensors.forEach((t, i) => {
    if (xxh3(file.subarray(h.dataStart + t.begin, h.dataStart + t.end)) !== h.checksums!.tensors[i]) {
      throw fail('ECKPT_CHECKSUM', `checksum mismatch in tensor ${quote(t.name)} (data bytes ${t.begin}..${t.end})`, path);
    }
  });
}

/** The content id (docs/format.md) of a checksummed file. */
export function contentIdOf(h: ParsedHeader, xxh3: Xxh3): string | undefined {
  if (!h.checksums) return undefined;
  return xxh3(utf8(h.tensors.map((t, i) => `${t.name}:${h.checksums!.tensors[i]}\n`).join('')));
}

/** What readHeader returns. */
export function headerResult(h: ParsedHeader, xxh3: Xxh3): NativeHeader {
  const metadata: Record<string, string> = {};
  for (const [k, v] of h.metadata) Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
  const out: NativeHeader = {
    tensors: h.tensors.map((t) => ({ name: t.name, dtype: t.row.name, shape: t.shape, bytes: t.end - t.begin })),
    metadata,
    bytes: h.dataStart + h.dataLen,
    checksummed: h.checksums !== null,
  };
  const id = contentIdOf(h, xxh3);
  if (id !== undefined) out.contentId = id;
  return out;
}

/** A whole file's bytes as a read's packed table (views over `file`), and its metadata without the writer's keys. */
export function readResult(h: ParsedHeader, file: Uint8Array): { tensors: NativeReadTable; metadata: Record<string, string> } {
  let names = '';
  const nameLengths = new Uint32Array(h.tensors.length);
  const dtypes = new Uint8Array(h.tensors.length);
  const ranks = new Uint32Array(h.tensors.length);
  const dims: number[] = [];
  const offsets = new Float64Array(h.tensors.length);
  const lengths = new Float64Array(h.tensors.length);
  h.tensors.forEach((t, i) => {
    names += t.name;
    nameLengths[i] = t.name.length;
    dtypes[i] = t.code;
    ranks[i] = t.shape.length;
    dims.push(...t.shape);
    offsets[i] = file.byteOffset + h.dataStart + t.begin;
    lengths[i] = t.end - t.begin;
  });
  const metadata: Record<string, string> = {};
  for (const [k, v] of h.metadata) {
    if (!RESERVED_KEYS.includes(k)) Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return {
    tensors: { names, nameLengths, dtypes, ranks, dims: Float64Array.from(dims), offsets, lengths, buffer: file.buffer as ArrayBuffer },
    metadata,
  };
}

/** What decode (bytes in memory) does: parse, then with `verify` every digest; a file without checksums cannot be
 * verified (ECKPT_FORMAT, as the native decode says). */
export function decodeBytes(bytes: Uint8Array, verify: boolean, xxh3: Xxh3): ParsedHeader {
  const h = parseHeader(bytes, bytes.length);
  if (verify) {
    if (!h.checksums) throw fail('ECKPT_FORMAT', 'the file has no ckptio checksums; decode it with verify: false');
    verifyChecksums(h, bytes, xxh3);
  }
  return h;
}

/** What a file read does with the file's bytes: parse, then with `verify` every digest (a plain safetensors file is
 * ECKPT_CHECKSUM then); errors name `path`. */
export function readBytes(bytes: Uint8Array, verify: boolean, xxh3: Xxh3, path: string): ParsedHeader {
  const h = parseHeader(bytes, bytes.length, path);
  if (verify) verifyChecksums(h, bytes, xxh3, path);
  return h;
}
