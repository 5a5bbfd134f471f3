/** npm run soak -- --kills 1000 [--steps 400] [--backend wasm]: the kill -9 loop at length. */
import { Command } from 'commander';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { killLoop } from './killloop';

async function main(): Promise<void> {
  const o = new Command('soak').option('--kills <n>', 'SIGKILLs', '1000').option('--steps <n>', 'training steps', '400').option('--backend <b>', 'wasm or cpu', 'wasm').parse().opts<{ kills: string; steps: string; backend: string }>();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-soak-'));
  const t0 = Date.now();
  const r = await killLoop({ dir, kills: Number(o.kills), steps: Number(o.steps), backend: o.backend, log: (m) => console.log(m) });
  console.log(JSON.stringify({ ...r, seconds: Math.round((Date.now() - t0) / 1000), backend: o.backend, steps: Number(o.steps) }));
  if (r.lostAcknowledged || r.invalidLoaded || !r.finalEqual) process.exit(1);
}

void main();
