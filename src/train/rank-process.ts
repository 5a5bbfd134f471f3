/** The entry of one rank process of `ckptio train --workers N` (data-parallel.ts): it takes its config from the
 * parent's first message, exchanges gradients with the parent over IPC, and sends its events up. */
import '../platform/node';
import { FromRank, ToRank, trainRank } from './data-parallel';
import type { TrainEvent } from './trainer';

const send = (m: FromRank) => process.send!(m);
const waiting = new Map<number, (mean: Float32Array) => void>();

process.once('message', (first: ToRank) => {
  if (first.type !== 'config') throw new Error('the first message to a rank must be its config');
  const { config, rank, worldSize } = first;
  process.on('message', (m: ToRank) => {
    if (m.type !== 'mean') return;
    waiting.get(m.step)?.(m.data);
    waiting.delete(m.step);
  });
  // The parent answers a step once every rank has sent its gradient for it.
  const exchange = (step: number, grads: Float32Array) =>
    new Promise<Float32Array>((resolve) => {
      waiting.set(step, resolve);
      send({ type: 'grads', step, data: grads });
    });
  const emit = (event: TrainEvent) => send({ type: 'event', event: { ...event, rank } });
  trainRank(config, rank, worldSize, exchange, emit).then(
    () => process.disconnect(),
    (err: { code?: string; message?: string }) => {
      emit({ event: 'warning', message: `rank ${rank} failed: ${err.code ?? ''} ${err.message ?? String(err)}` });
      process.exitCode = 1;
      process.disconnect();
    },
  );
});
