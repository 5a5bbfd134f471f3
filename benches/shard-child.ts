/** One process of the `sharding` bench section (sharding.ts): told over IPC to save a step, it saves its tensors
 * (a sharded rank, or a plain Checkpointer in a directory of its own) and reports once the save is durable.
 *
 *   fork(shard-child.js, [DIR, MODE ('sharded' | 'plain'), RANK, WORLD, BYTES]) */
import '../src/platform/node';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { state } from './common';

const [dir, mode, rankArg, worldArg, bytesArg] = process.argv.slice(2);
const rank = Number(rankArg);
const worldSize = Number(worldArg);
const tensors = state(Number(bytesArg));
const ckpt =
  mode === 'sharded'
    ? new Checkpointer({ dir: dir!, rank, worldSize, keepLast: 2, onWarning: () => {} })
    : new Checkpointer({ dir: dir!, keepLast: 2, onWarning: () => {} });

process.on('message', (m: { step: number } | { close: true }) => {
  if ('close' in m) {
    void ckpt.close().then(() => process.disconnect());
    return;
  }
  void (async () => {
    const h = await ckpt.save(m.step, { tensors });
    await h.durable;
    process.send!({ step: m.step });
  })();
});
process.send!({ ready: true });
