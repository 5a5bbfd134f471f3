/** Answers synchronous XXH3 requests from the training thread (the binding's xxh3(), which must return a value,
 * while hash-wasm only creates its hasher asynchronously): the caller writes the bytes into shared memory and
 * blocks in Atomics.wait until the digest is written back. */
import { parentPort } from 'node:worker_threads';
import { createXxh3 } from '../format/xxh3';

const ready = createXxh3();

parentPort!.on('message', (req: { data: SharedArrayBuffer; length: number; reply: Int32Array }) => {
  void ready.then(
    (xxh3) => {
      const hex = xxh3(new Uint8Array(req.data, 0, req.length));
      for (let i = 0; i < 16; i++) req.reply[1 + i] = hex.charCodeAt(i);
      Atomics.store(req.reply, 0, 1);
      Atomics.notify(req.reply, 0);
    },
    () => {
      Atomics.store(req.reply, 0, 2);
      Atomics.notify(req.reply, 0);
    },
  );
});
