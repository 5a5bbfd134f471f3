/** One peak-RSS measurement in a fresh process (so earlier work does not set the high-water mark):
 * node memory-child.js <mode> <MiB> <inflight> <dir>, prints {baselineRss, peakRss, bytes} as JSON.
 * The kernel's VmHWM is reset through /proc/self/clear_refs just before the saves start. */
import '../src/platform/node';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeCheckpoint } from '../src/format/file';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { loadTf } from '../src/tfjs/backend';
import { snapshot, StagingArena } from '../src/tfjs/snapshot';
import { MiB, state } from './common';

const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;

async function main(): Promise<void> {
  const [mode, mibArg, inflightArg, dir] = process.argv.slice(2) as [string, string, string, string];
  const bytes = Number(mibArg) * MiB;
  const inflight = Number(inflightArg);
  let run: () => Promise<unknown>;
  if (mode === 'raw' || mode === 'raw-copy') {
    const tensors = state(bytes);
    const copy = mode === 'raw-copy';
    await writeCheckpoint(path.join(dir, 'warm'), state(4 * MiB), { copy }); // the writer's staging exists before the baseline
    run = () => Promise.all(Array.from({ length: inflight }, (_, i) => writeCheckpoint(path.join(dir, `m${i}`), tensors, { copy })));
  } else {
    // tfjs wasm: the variables are snapshotted and their bytes copied out of the wasm heap into the staging
    // arena (one arena per save in flight). Training that replaces buffers meanwhile would add what the
    // snapshot keeps alive; that is the loop's memory, not measured here.
    const { tf } = await loadTf('wasm');
    const vars = Object.values(state(bytes)).map((t, i) => tf.variable(tf.tensor1d(t.data as Float32Array), true, `v${i}`));
    const named = () => Object.fromEntries(vars.map((v, i) => [`v${i}`, v as unknown as import('@tensorflow/tfjs').Tensor]));
    const ckpt = new Checkpointer({ dir, keepLast: 4, maxInflight: inflight, onWarning: () => {} });
    const arenas = Array.from({ length: inflight }, () => new StagingArena());
    await (
      await ckpt.save(0, { tensors: snapshot(tf, named(), { arena: arenas[0] }) })
    ).durable;
    let step = 1;
    run = async () => {
      const handles = [];
      for (let i = 0; i < inflight; i++) {
        handles.push(await ckpt.save(step++, { tensors: snapshot(tf, named(), { arena: arenas[i] }) }));
      }
      await Promise.all(handles.map((h) => h.durable));
    };
  }
  const baselineRss = kib('VmRSS');
  fs.writeFileSync('/proc/self/clear_refs', '5');
  await run();
  const peakRss = kib('VmHWM');
  process.stdout.write(JSON.stringify({ baselineRss, peakRss, bytes }) + '\n');
}

void main();
