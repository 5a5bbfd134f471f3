/** What every CLI command shares: text vs `--json` output, escaping of untrusted text, the exit codes and the
 * one way an error is printed (`ckptio: CODE: message`). */
import { InvalidArgumentError } from 'commander';
import { CheckpointError, toCheckpointError } from '../../binding/errors';

/** The CLI's exit codes (docs/cli.md, `ckptio --help`). */
export const EXIT = {
  ok: 0,
  /** A checkpoint, pointer or manifest is bad (checksum, format, missing file); verification failed. */
  bad: 1,
  /** Wrong arguments or options. */
  usage: 2,
  /** The run directory is locked by a writer (a trainer is running). */
  locked: 3,
  /** The operating system refused (ENOENT, EACCES, EIO, ENOSPC, ...). */
  io: 4,
  /** Anything else (an internal error, a missing optional package). */
  other: 5,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0  ok
  1  a checkpoint, pointer or manifest is bad (ECKPT_CHECKSUM, ECKPT_FORMAT, a missing file); verify found a problem
  2  usage error (ECKPT_ARGS: unknown option, bad value, missing argument)
  3  the run directory is locked by another writer (ECKPT_LOCKED; the holder is named)
  4  I/O error from the operating system (ENOENT, EACCES, EIO, ENOSPC, ...)
  5  anything else (ECKPT_INTERNAL, ECKPT_MISSING_PACKAGE, ...)
Errors are printed to stderr as "ckptio: CODE: message". See docs/cli.md.`;

export function exitCodeOf(code: string): number {
  if (code === 'ECKPT_ARGS') return EXIT.usage;
  if (code === 'ECKPT_LOCKED') return EXIT.locked;
  if (code === 'ECKPT_CHECKSUM' || code === 'ECKPT_FORMAT' || code === 'ECKPT_MISMATCH') return EXIT.bad;
  if (/^E[A-Z0-9]+$/.test(code) && !code.startsWith('ECKPT')) return EXIT.io;
  return EXIT.other;
}

// C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide text on a terminal
// (bidi overrides and isolates, line/paragraph separators, zero-width ones).
// eslint-disable-next-line no-control-regex
const UNSAFE_RE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** Untrusted text (a tensor or file name, metadata, a message that quotes one) made safe for a terminal:
 * every control or reordering character becomes a visible escape (\x1b, \u202e). */
export function safe(text: unknown): string {
  return String(text).replace(UNSAFE_RE, (c) => {
    const n = c.charCodeAt(0);
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}

/** What JSON.stringify leaves raw inside strings (it escapes C0 itself; the layout's own newlines stay). */
const JSON_UNSAFE_RE = /[\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** JSON.stringify escapes C0 controls; this also escapes DEL, C1 and the reordering characters (still JSON). */
export function json(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(JSON_UNSAFE_RE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function out(line = ''): void {
  process.stdout.write(line + '\n');
}

export function printJson(value: unknown): void {
  out(json(value));
}

export function usageError(message: string): CheckpointError {
  return new CheckpointError(message, { code: 'ECKPT_ARGS' });
}

/** Prints `ckptio: CODE: message` on stderr and sets the exit code. */
export function reportError(err: unknown): void {
  const e = toCheckpointError(err);
  const code = String(e.code);
  // Node's own messages start with the code ("ENOENT: no such file ..."): printed once.
  const message = e.message.startsWith(`${code}: `) ? e.message.slice(code.length + 2) : e.message;
  process.stderr.write(`ckptio: ${safe(code)}: ${safe(message)}\n`);
  process.exitCode = exitCodeOf(code);
}

/** A command's action: its errors are reported here (code and exit status), never thrown to commander. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      reportError(err);
    }
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

export function formatMetrics(m: Record<string, number>): string {
  const parts = Object.entries(m).map(([k, v]) => `${safe(k)}=${Number.isInteger(v) ? v : Number(v.toPrecision(6))}`);
  return parts.length ? parts.join(' ') : '-';
}

/** Columns padded to the widest cell; every cell is already safe text. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** A commander option parser for an integer >= min (a bad value is a usage error, exit 2). */
export function intArg(name: string, min = 0): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}
