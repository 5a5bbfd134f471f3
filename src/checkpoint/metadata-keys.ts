/** The one table of `ckptio.*` keys that ckptio itself writes into a checkpoint's `__metadata__` (the native
 * writer adds `ckptio.format`, `ckptio.checksum` and the digests; see native/format/header.h). A caller's own
 * metadata may not use them. */
export const METADATA_KEYS = {
  /** The training step a Checkpointer save was made at (decimal integer). */
  step: 'ckptio.step',
  /** The caller's JSON training state. */
  state: 'ckptio.state',
  /** The metric passed to Checkpointer.save (decimal number). */
  metric: 'ckptio.metric',
  /** lz4 chunk map (checkpoint/compression.ts). */
  compression: 'ckptio.compression',
  /** JSON: how a tfjs model's weights were named, and its random layers (tfjs/model-state.ts). */
  tfjsModel: 'ckptio.tfjs.model',
  /** JSON: a tfjs optimizer's class, config, counters and slot order (tfjs/optimizers.ts). */
  tfjsOptimizer: 'ckptio.tfjs.optimizer',
} as const;

export function isReservedMetadataKey(key: string): boolean {
  return key.startsWith('ckptio.');
}
