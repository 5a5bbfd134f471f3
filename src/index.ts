export { CheckpointError } from './binding/errors';
export type { CheckpointErrorCode, CheckpointErrorInfo } from './binding/errors';
export { readCheckpoint, writeCheckpoint } from './checkpoint/file';
export type { Compression, CompressionReport, DType, ReadOptions, ReadResult, TensorEntry, TypedArray, WriteOptions, WriteResult } from './checkpoint/file';
export { Checkpointer } from './checkpoint/checkpointer';
export type {
  CheckpointerOptions, CheckpointerStats, DurableInfo, LoadedCheckpoint, SaveHandle, SavePayload, TensorSource,
} from './checkpoint/checkpointer';
// tfjs is loaded only when these are called, so importing ckptio never pulls tfjs in.
export { snapshot, StagingArena } from './tfjs/snapshot';
export type { SnapshotOptions } from './tfjs/snapshot';
export { loadTf } from './tfjs/backend';
export type { BackendName } from './tfjs/backend';
