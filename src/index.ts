export { CheckpointError } from './binding/errors';
export type { CheckpointErrorCode, CheckpointErrorInfo } from './binding/errors';
export { readCheckpoint, writeCheckpoint } from './checkpoint/file';
export type { DType, ReadOptions, ReadResult, TensorEntry, TypedArray, WriteOptions, WriteResult } from './checkpoint/file';
