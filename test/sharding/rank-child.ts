/** One rank of a sharded run for the tests: a deterministic "training" loop (each rank's tensor evolves from its
 * own state) that resumes from the newest complete step, saves every `every` steps and, at the end, prints its
 * final state. Synchronous between saves: the loop never yields, so decisions must not need its event loop.
 *
 *   node rank-child.js DIR RANK WORLD STEPS EVERY [timeoutMs] [mode]
 * mode: "normal", or "stop-at-N" (exits before saving step N). CKPTIO_TEST_STEP_MS: busy milliseconds per step. Without
 * CKPTIO_TEST_YIELD=1 the loop never yields between saves. */
import '../../src/platform/node';
import { createHash } from 'node:crypto';
import { Checkpointer } from '../../src/checkpoint/checkpointer';

const [dir, rankArg, worldArg, stepsArg, everyArg, timeoutArg, mode = 'normal'] = process.argv.slice(2);
const rank = Number(rankArg);
const worldSize = Number(worldArg);
const steps = Number(stepsArg);
const every = Number(everyArg);
const SIZE = 64 * 1024;
const stepMs = Number(process.env.CKPTIO_TEST_STEP_MS ?? 0);
/** CKPTIO_TEST_YIELD=1: a loop that yields every step (acknowledgements are printed as they come). */
const yieldEachStep = process.env.CKPTIO_TEST_YIELD === '1';

function advance(w: Float32Array, step: number): void {
  for (let i = 0; i < w.length; i++) w[i] = Math.fround(w[i]! * 0.999 + Math.sin(step + i + rank) * 0.01);
}

async function main(): Promise<void> {
  const ckpt = new Checkpointer({
    dir: dir!,
    rank,
    worldSize,
    keepLast: 2,
    peerTimeoutMs: Number(timeoutArg ?? 5000),
    onWarning: (m) => console.error(`warning: ${m}`),
  });
  const loaded = await ckpt.loadLatest();
  let w = new Float32Array(SIZE).fill(rank);
  let step = 0;
  if (loaded) {
    w = new Float32Array((loaded.tensors[`w${rank}`]!.data as Float32Array).slice());
    step = (loaded.state as { step: number }).step;
    if (loaded.step !== step) throw new Error('state and step differ');
  }
  console.log(JSON.stringify({ event: 'start', rank, step }));
  const handles: Promise<unknown>[] = [];
  const stopAt = mode.startsWith('stop-at-') ? Number(mode.slice(8)) : -1;
  while (step < steps) {
    step++;
    advance(w, step);
    for (const until = performance.now() + stepMs; performance.now() < until;);
    if (yieldEachStep) await new Promise<void>((resolve) => setImmediate(resolve));
    if (step % every !== 0) continue;
    if (step === stopAt) process.exit(3);
    const h = await ckpt.save(step, {
      tensors: { [`w${rank}`]: { dtype: 'float32', shape: [SIZE], data: w } },
      state: { step },
      copy: true,
    });
    const s = step;
    handles.push(
      h.durable.then(
        (d) => console.log(JSON.stringify({ event: 'durable', rank, step: s, path: d?.path })),
        (err: { code?: string; message?: string; ranks?: number[] }) =>
          console.log(JSON.stringify({ event: 'failed', rank, step: s, code: err.code, ranks: err.ranks, message: err.message })),
      ),
    );
  }
  await Promise.all(handles);
  await ckpt.close().catch((err: { code?: string }) => console.log(JSON.stringify({ event: 'close-error', code: err.code })));
  console.log(JSON.stringify({ event: 'done', rank, step, sha256: createHash('sha256').update(w).digest('hex') }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
