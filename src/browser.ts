/** ckptio in the browser (`import { Checkpointer, fitCheckpoint } from 'ckptio/browser'`): the same Checkpointer,
 * modelState, restoreModelState and fitCheckpoint as in Node, over the origin private file system, with a dedicated
 * Worker as the writer thread (docs/browser.md). Bundled as ESM by scripts/build-browser.js, with the worker beside
 * it; tfjs is the page's own @tensorflow/tfjs. */
import * as tf from '@tensorflow/tfjs';
import './platform/browser';
import { providePeer } from './binding/peer';
import { setWriterUrl } from './store/opfs/store';

providePeer('@tensorflow/tfjs', tf);
setWriterUrl(new URL('./opfs-worker.mjs', import.meta.url));

export { CheckpointError } from './binding/errors';
export type { CheckpointErrorCode, CheckpointErrorInfo } from './binding/errors';
export { Checkpointer } from './checkpoint/checkpointer';
export type { CheckpointerOptions, CheckpointerStats, DurableInfo, LoadedCheckpoint, SaveHandle, SavePayload, TensorSource } from './checkpoint/checkpointer';
export type { DType, ReadOptions, ReadResult, TensorEntry, TypedArray } from './format/file';
export { METADATA_KEYS } from './format/metadata-keys';
export { decideRetention, deleteOlderThan, keepBest, keepEvery, keepLast, keepTagged, keepWithin } from './checkpoint/retention';
export type { KeepBestOptions, RetentionDecision, RetentionEntry, RetentionPolicy } from './checkpoint/retention';
export type { Manifest, ManifestEntry, Parent } from './checkpoint/manifest';
export { OpfsStore } from './store/opfs/store';
export type { OpfsStoreStats } from './store/opfs/store';
export type { CheckpointStore, CommitRequest, LockHolder, StoredObject, StoreLock } from './store/store';
export { modelState } from './tfjs/model-state';
export type { ModelStateOptions } from './tfjs/model-state';
export { restoreModelState } from './tfjs/restore';
export type { RestoreOptions, RestoreReport } from './tfjs/restore';
export { fitCheckpoint } from './tfjs/callback';
export type { FitCheckpoint, FitCheckpointOptions, FitState } from './tfjs/callback';
export { seededDataset, SeededDataset } from './tfjs/dataset';
export type { DatasetPosition, SeededDatasetOptions } from './tfjs/dataset';
export { applySchedule, learningRateAt, LrScheduler, schedules, validateSchedule } from './tfjs/schedules';
export type { Schedule } from './tfjs/schedules';
