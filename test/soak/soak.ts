/** npm run soak -- [--kills 1000] [--shutdowns 100] [--steps 60000] [--backend wasm]
 * The kill -9 loop and the power-loss loop (per file system) at length; prints one JSON summary line and
 * exits 1 if anything acknowledged was lost or anything torn was accepted. */
import { Command } from 'commander';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { killLoop } from './killloop';
import { powerLossLoop, powerLossUnavailable, FsKind } from '../reliability/powerloss';

async function main(): Promise<void> {
  const o = new Command('soak')
    .option('--kills <n>', 'SIGKILLs of the trainer (0 to skip)', '1000')
    .option('--shutdowns <n>', 'file-system shutdowns per file system, XFS and ext4 (0 to skip)', '0')
    .option('--steps <n>', 'training steps of the kill loop (must outlast the kills)', '60000')
    .option('--backend <b>', 'wasm or cpu', 'wasm')
    .parse()
    .opts<{ kills: string; shutdowns: string; steps: string; backend: string }>();
  const summary: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, kernel: os.release() };
  let bad = 0;
  if (Number(o.kills) > 0) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckptio-soak-'));
    const t0 = Date.now();
    const r = await killLoop({ dir, kills: Number(o.kills), steps: Number(o.steps), backend: o.backend, log: (m) => console.log(m) });
    summary.killLoop = { ...r, seconds: Math.round((Date.now() - t0) / 1000), backend: o.backend, steps: Number(o.steps) };
    if (r.kills < Number(o.kills)) console.log(`training finished after ${r.kills} kills: raise --steps`);
    bad += r.lostAcknowledged + r.invalidLoaded + (r.finalEqual ? 0 : 1);
  }
  if (Number(o.shutdowns) > 0) {
    const why = powerLossUnavailable();
    if (why) throw new Error(`power-loss loop unavailable: ${why}`);
    for (const kind of ['xfs', 'ext4'] as FsKind[]) {
      const t0 = Date.now();
      const r = await powerLossLoop({ fs: kind, rounds: Number(o.shutdowns), seed: 99, log: (m) => console.log(m) });
      summary[`powerLoss_${kind}`] = { ...r, seconds: Math.round((Date.now() - t0) / 1000) };
      bad += r.lostAcknowledged + r.invalidFiles + r.badPointer + r.badResume;
      console.log(`${kind}: ${r.shutdowns} shutdowns, ${r.acknowledged} saves acknowledged, ${r.details.length} problems`);
    }
  }
  console.log(JSON.stringify(summary));
  if (bad) process.exit(1);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
