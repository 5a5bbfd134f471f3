/** One process of the `portable` bench section (portable.ts), on the writer CKPTIO_WRITER chose for it: told over
 * IPC to save a step, it times `await ckpt.save()` (what the training thread is held) and the time until the
 * save is durable, with default options.
 *
 *   fork(writer-child.js, [DIR, BYTES])   (env CKPTIO_WRITER=native | portable) */
import '../src/platform/node';
import { writerKind } from '../src/binding/native';
import { Checkpointer } from '../src/checkpoint/checkpointer';
import { state } from './common';

const [dir, bytesArg] = process.argv.slice(2);
const tensors = state(Number(bytesArg));
const ckpt = new Checkpointer({ dir: dir!, keepLast: 2, onWarning: () => {} });

process.on('message', (m: { step: number } | { close: true }) => {
  if ('close' in m) {
    void ckpt.close().then(() => process.disconnect());
    return;
  }
  void (async () => {
    // `await ckpt.save()` is what a training loop waits for (microtasks only, no event-loop turn): the copy, when
    // there is one, happens inside it.
    const t0 = performance.now();
    const h = await ckpt.save(m.step, { tensors });
    const holdMs = performance.now() - t0;
    await h.durable;
    process.send!({ holdMs, durableMs: performance.now() - t0 });
  })();
});
process.send!({ ready: true, writerKind });
