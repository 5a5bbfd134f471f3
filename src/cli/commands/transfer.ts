/** `ckptio export FILE OUTDIR` and `ckptio import DIR FILE`: tfjs's model.json format to and from a ckptio
 * ioHandler file (src/tfjs/model-json.ts: crash-safe as a pair, untrusted input checked). */
import { exportTfjsModel, importTfjsModelToFile } from '../../tfjs/model-json';
import { formatBytes, out, printJson, safe } from './output';

export async function exportModel(file: string, outDir: string, o: { json?: boolean; verify: boolean }): Promise<void> {
  const r = await exportTfjsModel(file, outDir, { verify: o.verify });
  if (r.leftover)
    process.stderr.write(
      `ckptio: warning: older weight files stay in ${safe(r.dir)} (${safe(r.leftover.error.code)}): ${r.leftover.names.map(safe).join(', ')}\n`,
    );
  if (o.json) {
    printJson({ dir: r.dir, modelJson: r.modelJson, weightsFile: r.weightsFile, weightBytes: r.weightBytes, removed: r.removed });
    return;
  }
  out(`exported ${safe(file)} -> ${safe(r.modelJson)} (+ ${safe(r.weightsFile)}, ${formatBytes(r.weightBytes)})`);
}

export async function importModel(dir: string, file: string, o: { json?: boolean }): Promise<void> {
  const r = await importTfjsModelToFile(dir, file);
  if (o.json) {
    printJson({ file, bytes: r.write.bytes, weightDataBytes: r.modelArtifactsInfo.weightDataBytes });
    return;
  }
  out(`imported ${safe(dir)} -> ${safe(file)} (${formatBytes(r.write.bytes)})`);
}
