/** Saves one large checkpoint with a remote tier and SIGKILLs itself once its upload is under way (the first
 * progress report): the remote-tier kill test's trainer. argv: dir, remote URL. */
import { Checkpointer } from '../../src';

const [dir, url] = process.argv.slice(2) as [string, string];
const ckpt = new Checkpointer({ dir, remote: { url, partBytes: 5 << 20, concurrency: 1, onProgress: () => process.kill(process.pid, 'SIGKILL') } });
const data = new Float32Array(12 << 20).map((_, i) => i % 251);
void ckpt.save(7, { tensors: { w: { dtype: 'float32', shape: [data.length], data } } }).then((h) => h.durable);
setInterval(() => {}, 1000);
