/** The run's history: one line per save and per resume, appended beside the manifest
 * (`ckptio-history.jsonl`), so the whole run stays on record after retention removed its checkpoints, at a cost per
 * save that does not grow with the run (an append, not a rewrite). It is a record for people (log, report): the
 * manifest and the checkpoints remain the truth a resume uses, so it is appended without fsync, and a crash may
 * lose its last lines. Lines are untrusted: an invalid one is skipped. */
import { NAME_RE, stepOf } from './names';
import { utf8Bytes, utf8Text } from '../format/text';

export const HISTORY_NAME = 'ckptio-history.jsonl';

export interface SaveEvent {
  event: 'save';
  step: number;
  file: string;
  time: string;
  metrics: Record<string, number>;
}

export interface ResumeEvent {
  event: 'resume';
  step: number;
  file: string;
  time: string;
}

export type HistoryEvent = SaveEvent | ResumeEvent;

export function renderHistoryLine(e: HistoryEvent): Uint8Array {
  return utf8Bytes(JSON.stringify(e) + '\n');
}

function parseLine(line: string): HistoryEvent | null {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object' || (v.event !== 'save' && v.event !== 'resume')) return null;
  if (!Number.isSafeInteger(v.step) || typeof v.file !== 'string' || stepOf(v.file) !== v.step) return null;
  if (typeof v.time !== 'string' || Number.isNaN(Date.parse(v.time))) return null;
  if (v.event === 'resume') return { event: 'resume', step: v.step as number, file: v.file, time: v.time };
  const metrics: Record<string, number> = {};
  if (v.metrics && typeof v.metrics === 'object') {
    for (const [k, m] of Object.entries(v.metrics as Record<string, unknown>))
      if (NAME_RE.test(k) && typeof m === 'number' && Number.isFinite(m)) metrics[k] = m;
  }
  return { event: 'save', step: v.step as number, file: v.file, time: v.time, metrics };
}

/** The events, in the order they were appended; `skipped` counts the lines that were not valid events. */
export function parseHistory(bytes: Uint8Array): { events: HistoryEvent[]; skipped: number } {
  const events: HistoryEvent[] = [];
  let skipped = 0;
  for (const line of utf8Text(bytes).split('\n')) {
    if (line.trim() === '') continue;
    const e = parseLine(line);
    if (e) events.push(e);
    else skipped++;
  }
  return { events, skipped };
}
