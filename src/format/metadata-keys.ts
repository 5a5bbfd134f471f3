/** The one table of `ckptio.*` keys that ckptio itself writes into a checkpoint's `__metadata__` (the native
 * writer adds `ckptio.format`, `ckptio.checksum` and the digests; see native/format/header.h). A caller's own
 * metadata may not use them. */
export const METADATA_KEYS = {
  /** The training step a Checkpointer save was made at (decimal integer). */
  step: 'ckptio.step',
  /** The caller's JSON training state. */
  state: 'ckptio.state',
  /** The single metric of earlier versions (decimal number); read when rebuilding a manifest, no longer written. */
  metric: 'ckptio.metric',
  /** JSON {name: number}: the metrics a save was made with (retention by metric survives a lost manifest). */
  metrics: 'ckptio.metrics',
  /** ISO time of the save. */
  time: 'ckptio.time',
  /** JSON {step?, contentId?, run?}: the checkpoint this one continues (lineage). */
  parent: 'ckptio.parent',
  /** JSON {name: {file, dtype, shape}}: tensors stored by reference to an earlier checkpoint (dedup). */
  refs: 'ckptio.refs',
  /** JSON {step?, contentId?, run?}: the other run's checkpoint this run started from (every checkpoint of a
   * fine-tune carries it, so the link survives retention). */
  origin: 'ckptio.origin',
  /** JSON {rank, worldSize}: the rank that wrote this shard of a sharded step (checkpoint/shards.ts). */
  shard: 'ckptio.shard',
  /** lz4 chunk map (checkpoint/compression.ts). */
  compression: 'ckptio.compression',
  /** JSON: how a tfjs model's weights were named, and its random layers (tfjs/model-state.ts). */
  tfjsModel: 'ckptio.tfjs.model',
  /** JSON {modelTopology, format, generatedBy, weights: [[key, tfjs weight name], ...]}: what a training
   * checkpoint of a LayersModel needs to become a model.json (tfjs/model-state.ts; read by tfjs/io-handler.ts). */
  tfjsModelJson: 'ckptio.tfjs.model_json',
  /** JSON: a tfjs optimizer's class, config, counters and slot order (tfjs/optimizers.ts). */
  tfjsOptimizer: 'ckptio.tfjs.optimizer',
  /** A tfjs model saved through ioHandler (tfjs/io-handler.ts); each value a JSON string. */
  tfjsHandler: {
    /** Layout version of this mapping ("1"); its presence marks a file written by ioHandler. */
    version: 'ckptio.tfjs.handler',
    /** ModelArtifacts.modelTopology (the Keras-style JSON of the model). */
    modelTopology: 'ckptio.tfjs.topology',
    /** ModelArtifacts.trainingConfig (present when saved with includeOptimizer). */
    trainingConfig: 'ckptio.tfjs.training_config',
    /** ModelArtifacts.weightSpecs: [{name, shape, dtype, group?}] in tfjs's order. */
    weightSpecs: 'ckptio.tfjs.weight_specs',
    /** {format, generatedBy, convertedBy} of the ModelArtifacts. */
    formatInfo: 'ckptio.tfjs.format',
    /** ModelArtifacts.userDefinedMetadata. */
    userDefinedMetadata: 'ckptio.tfjs.user_defined_metadata',
    /** ModelArtifacts.signature. */
    signature: 'ckptio.tfjs.signature',
    /** ModelArtifacts.modelInitializer. */
    modelInitializer: 'ckptio.tfjs.model_initializer',
    /** ModelArtifacts.initializerSignature. */
    initializerSignature: 'ckptio.tfjs.initializer_signature',
  },
} as const;

export function isReservedMetadataKey(key: string): boolean {
  return key.startsWith('ckptio.');
}
