import './platform/node';
export { CheckpointError, PeerError, RemoteError } from './binding/errors';
export type { CheckpointErrorCode, CheckpointErrorInfo } from './binding/errors';
export { readCheckpoint, writeCheckpoint } from './format/file';
export { decodeCheckpoint, encodeCheckpoint } from './format/codec';
export type { Encoded } from './format/codec';
export type { Compression, CompressionReport, DType, ReadOptions, ReadResult, TensorEntry, TypedArray, WriteOptions, WriteResult } from './format/file';
export { Checkpointer } from './checkpoint/checkpointer';
export type { RemoteOptions, ReplicatedInfo } from './checkpoint/remote-options';
export type {
  CheckpointerOptions,
  CheckpointerStats,
  DurableInfo,
  LoadedCheckpoint,
  LoadedStep,
  SaveHandle,
  SavePayload,
  TensorSource,
} from './checkpoint/checkpointer';
// tfjs is loaded only when these are called, so importing ckptio never pulls tfjs in.
export { snapshot, StagingArena } from './tfjs/snapshot';
export type { SnapshotOptions } from './tfjs/snapshot';
export { loadTf } from './tfjs/backend';
export type { BackendName, LoadedTf } from './tfjs/backend';
export { currentWebGpuAdapter } from './tfjs/webgpu';
export type { DawnBackend, WebGpuAdapterReport, WebGpuOptions } from './tfjs/webgpu';
export { modelState } from './tfjs/model-state';
export type { ModelStateOptions } from './tfjs/model-state';
export { restoreModelState } from './tfjs/restore';
export type { RestoreOptions, RestoreReport } from './tfjs/restore';
export { fitCheckpoint } from './tfjs/callback';
export type { FitCheckpoint, FitCheckpointOptions, FitState } from './tfjs/callback';
export { seededDataset, SeededDataset } from './tfjs/dataset';
export type { DatasetPosition, SeededDatasetOptions } from './tfjs/dataset';
export { applySchedule, learningRateAt, LrScheduler, schedules, SCHEDULE_LIMITS, validateSchedule } from './tfjs/schedules';
export type {
  ChainPart,
  ChainSchedule,
  ConstantSchedule,
  CosineSchedule,
  ExponentialSchedule,
  LrSchedulerState,
  PolynomialSchedule,
  Schedule,
  StepSchedule,
  WarmupSchedule,
} from './tfjs/schedules';
export { ioHandler } from './tfjs/io-handler';
export type { IoHandler, IoHandlerOptions, IoSaveResult } from './tfjs/io-handler';
export { exportTfjsModel, importTfjsModel, importTfjsModelToFile, modelJsonHandler } from './tfjs/model-json';
export type { ExportOptions, ExportResult, ImportOptions } from './tfjs/model-json';
export { METADATA_KEYS } from './format/metadata-keys';
export { readHeader } from './format/file';
export type { HeaderInfo } from './format/file';
export { decideRetention, deleteOlderThan, keepBest, keepEvery, keepLast, keepTagged, keepWithin } from './checkpoint/retention';
export type { KeepBestOptions, RetentionDecision, RetentionEntry, RetentionPolicy } from './checkpoint/retention';
export type { Manifest, ManifestEntry, Parent } from './checkpoint/manifest';
export { LocalStore } from './store/local';
export { MemoryStore } from './store/memory';
export { S3Store } from './store/remote/s3-store';
export type { S3StoreOptions } from './store/remote/s3-store';
export type { CheckpointStore, CommitRequest, LockHolder, StoredObject, StoreLock } from './store/store';
