/** fitCheckpoint(): a tf.Callback for model.fit / model.fitDataset that checkpoints through a Checkpointer
 * (snapshot in onBatchEnd/onEpochEnd, written while training continues), tracks the best by a logged metric,
 * and on creation restores the newest valid checkpoint into the model and its optimizer. */
import type * as tfType from '@tensorflow/tfjs';
import { argumentError, CheckpointError } from '../binding/errors';
import { nextTurn } from '../binding/turn';
import { Checkpointer, CheckpointerOptions, DurableInfo } from '../checkpoint/checkpointer';
import { keepBest } from '../checkpoint/retention';
import type { SeededDataset, DatasetPosition } from './dataset';
import { modelState, tfModule } from './model-state';
import { restoreModelState, RestoreReport } from './restore';
import { applySchedule, Schedule, validateSchedule } from './schedules';
import { NAME_RE } from '../checkpoint/names';

type Tf = typeof tfType;

export interface FitCheckpointOptions extends Omit<CheckpointerOptions, 'best'> {
  /** Save every N batches (default: off). */
  everyBatches?: number;
  /** Save at the end of every epoch (default true). */
  everyEpoch?: boolean;
  /** A logged metric to keep the best checkpoint by (e.g. 'val_acc', 'loss'): pointer `best-<monitor>`. */
  monitor?: string;
  /** Whether a larger monitored value is better (default: 'min' for names containing "loss", else 'max'). */
  mode?: 'max' | 'min';
  /** Batch-exact resume with fitDataset: the seededDataset the model is trained on. */
  dataset?: SeededDataset;
  /** Restore the newest valid checkpoint on creation (default true). */
  resume?: boolean;
  /** Passed to restoreModelState (default true). */
  strict?: boolean;
  /** A learning-rate schedule applied before every batch at the global step (tfjs/schedules.ts); stored in
   * each checkpoint, so a resumed run continues it exactly. */
  schedule?: Schedule;
  /** Called after each save is durable. */
  onDurable?: (info: DurableInfo) => void;
  tf?: Tf;
}

/** What fitCheckpoint stores as the checkpoint's training state. */
export interface FitState {
  kind: 'ckptio.fit';
  /** Batches trained in total. */
  step: number;
  /** Epochs completed. */
  epochsDone: number;
  /** Where training continues: the epoch in progress and the batches of it already trained. */
  position: DatasetPosition;
  monitor: { name: string; value: number | null } | null;
  dataset: ReturnType<SeededDataset['describe']> | null;
  schedule: Schedule | null;
}

export interface FitCheckpoint extends tfType.Callback {
  /** Pass to fit/fitDataset as `initialEpoch`. */
  readonly initialEpoch: number;
  /** Batches already trained when training starts. */
  readonly step: number;
  /** What the restore found, or null when nothing was restored. */
  readonly resumed: (RestoreReport & { path: string; step: number }) | null;
  readonly checkpointer: Checkpointer;
  /** Waits for every save in flight and closes the checkpointer; rethrows a failed save. */
  close(): Promise<void>;
}

function parseFitState(v: unknown, file: string): FitState {
  const s = v as Partial<FitState>;
  const int = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (
    typeof v !== 'object' ||
    v === null ||
    s.kind !== 'ckptio.fit' ||
    !int(s.step) ||
    !int(s.epochsDone) ||
    typeof s.position !== 'object' ||
    s.position === null ||
    !int(s.position.epoch) ||
    !int(s.position.batch)
  ) {
    throw new CheckpointError('checkpoint was not made by fitCheckpoint (its state has no valid step/epoch/position)', { code: 'ECKPT_MISMATCH', path: file });
  }
  return s as FitState;
}

async function scalarOf(v: unknown): Promise<number | null> {
  if (typeof v === 'number') return v;
  if (v && typeof (v as tfType.Tensor).data === 'function') return (await (v as tfType.Tensor).data())[0] ?? null;
  return null;
}

/** A tf.CustomCallback for model.fit / fitDataset that checkpoints the model and its optimizer every
 * `everyBatches` batches and/or every epoch. Before it resolves it restores both from the newest valid checkpoint
 * in `dir`, if there is one: pass `cb.initialEpoch` to fit so training continues where it stopped. Put it in
 * `callbacks` next to your own (tfjs wants tf.CustomCallback instances there, not plain objects), and
 * `await cb.close()` after fit. Saves are handed to the writer without holding fit (wasm and cpu); docs/tfjs.md
 * has every option. */
export async function fitCheckpoint(model: tfType.LayersModel, options: FitCheckpointOptions): Promise<FitCheckpoint> {
  if (!options || typeof options !== 'object') throw argumentError('fitCheckpoint(model, { dir, ... })');
  if (options.rank !== undefined || options.worldSize !== undefined)
    throw argumentError(
      "fitCheckpoint saves the whole model from one process: in a sharded run (rank, worldSize) save each rank's own tensors with Checkpointer.save (docs/sharding.md)",
    );
  const tf = tfModule(options.tf, 'fitCheckpoint');
  if (!model || !Array.isArray((model as { layers?: unknown }).layers)) throw argumentError('fitCheckpoint: model must be a tf.LayersModel');
  const {
    everyBatches,
    everyEpoch = true,
    monitor,
    dataset,
    resume = true,
    strict = true,
    onDurable,
    tf: _tf,
    mode,
    schedule: scheduleOption,
    ...ckptOptions
  } = options;
  const schedule = scheduleOption === undefined ? null : validateSchedule(scheduleOption, { code: 'ECKPT_ARGS', name: 'options.schedule' });
  void _tf;
  if (everyBatches !== undefined && (!Number.isSafeInteger(everyBatches) || everyBatches < 1))
    throw argumentError('fitCheckpoint: everyBatches must be an integer >= 1');
  const monitorMode = mode ?? (monitor && /loss/i.test(monitor) ? 'min' : 'max');
  if (monitorMode !== 'max' && monitorMode !== 'min') throw argumentError("fitCheckpoint: mode must be 'max' or 'min'");
  if (monitor !== undefined && !NAME_RE.test(monitor))
    throw argumentError('fitCheckpoint: monitor must be a logged metric name (letters, digits, ".", "_", "-")');
  const retention = [...(ckptOptions.retention ?? []), ...(monitor ? [keepBest({ metric: monitor, mode: monitorMode })] : [])];
  const checkpointer = new Checkpointer({ ...ckptOptions, retention });

  let step = 0;
  let epochsDone = 0;
  let position: DatasetPosition = { epoch: 0, batch: 0 };
  let resumed: FitCheckpoint['resumed'] = null;
  let monitorValue: number | null = null;
  // A resume that fails (strict mismatch, another dataset) must not leave the run lock held in this process.
  if (resume) {
    try {
      const loaded = await checkpointer.loadLatest();
      if (loaded) {
        const state = parseFitState(loaded.state, loaded.path);
        const report = restoreModelState(model, undefined, loaded, { strict, tf });
        resumed = { ...report, path: loaded.path, step: loaded.step };
        ({ step, epochsDone, position } = state);
        monitorValue = state.monitor?.value ?? null;
        const warn = options.onWarning ?? ((m: string) => console.warn(`ckptio: ${m}`));
        const savedSchedule = state.schedule == null ? null : validateSchedule(state.schedule, { name: 'checkpoint state.schedule' });
        if (JSON.stringify(savedSchedule) !== JSON.stringify(schedule))
          warn(
            `the learning-rate schedule differs from the one the checkpoint was trained with (${JSON.stringify(savedSchedule)}); continuing with ${JSON.stringify(schedule)}`,
          );
        if (report.unseededRandomLayers.length)
          warn(
            `the model has unseeded random layers (${report.unseededRandomLayers.join(', ')}): the resumed run will not match an uninterrupted one; give them a seed`,
          );
        if (dataset) {
          const now = dataset.describe();
          if (state.dataset && JSON.stringify(state.dataset) !== JSON.stringify(now)) {
            throw new CheckpointError(`checkpoint was trained on a different dataset order (${JSON.stringify(state.dataset)}, now ${JSON.stringify(now)})`, {
              code: 'ECKPT_MISMATCH',
              path: loaded.path,
            });
          }
          dataset.seek(position);
        } else if (position.batch > 0) {
          warn(
            `checkpoint ${loaded.path} was made mid-epoch (epoch ${position.epoch}, batch ${position.batch}); model.fit restarts that epoch, so the resume is not exact (use fitDataset with seededDataset for batch-exact resume)`,
          );
        }
      }
    } catch (err) {
      await checkpointer.close().catch(() => {});
      throw err;
    }
  }
  const initialEpoch = position.epoch;
  let epoch = initialEpoch;
  // model.fit cannot skip batches: a mid-epoch checkpoint restarts its epoch there (warned above).
  let batchOffset = dataset ? position.batch : 0;

  const save = async (): Promise<void> => {
    const state: FitState = {
      kind: 'ckptio.fit',
      step,
      epochsDone,
      position: { ...position },
      monitor: monitor ? { name: monitor, value: monitorValue } : null,
      dataset: dataset?.describe() ?? null,
      schedule,
    };
    const payload = {
      tensors: modelState(model, undefined, { tf, ...(ckptOptions.onWarning ? { onWarning: ckptOptions.onWarning } : {}) }),
      state,
      metrics: monitor && monitorValue !== null ? { [monitor]: monitorValue } : {},
    };
    const handle = await checkpointer.save(step, payload);
    if (onDurable)
      handle.durable.then(
        (d) => {
          if (d) onDurable(d);
        },
        () => {},
      );
    // cpu and wasm saves are with the writer already; a webgpu save's reads start at the next turn, which
    // model.fit would otherwise give only at the next saving batch.
    if (!handle.queued && !handle.skipped) await nextTurn();
  };

  // tfjs accepts callbacks as instances of its own Callback class (it tests instanceof), so the class is made
  // from the tfjs module in use.
  class FitCheckpointCallback extends tf.Callback implements FitCheckpoint {
    readonly initialEpoch = initialEpoch;
    readonly resumed = resumed;
    readonly checkpointer = checkpointer;
    get step(): number {
      return step;
    }

    override async onEpochBegin(e: number): Promise<void> {
      if (e !== epoch) batchOffset = 0;
      epoch = e;
      position = { epoch, batch: batchOffset };
    }

    override async onBatchBegin(): Promise<void> {
      if (schedule) applySchedule(model.optimizer, schedule, step);
    }

    override async onBatchEnd(batch: number, logs?: tfType.Logs): Promise<void> {
      step++;
      position = { epoch, batch: batchOffset + batch + 1 };
      if (monitor && logs && monitor in logs) monitorValue = await scalarOf(logs[monitor]);
      if (everyBatches !== undefined && step % everyBatches === 0) await save();
    }

    override async onEpochEnd(e: number, logs?: tfType.Logs): Promise<void> {
      epochsDone = e + 1;
      epoch = e + 1;
      batchOffset = 0;
      position = { epoch: e + 1, batch: 0 };
      if (monitor && logs && monitor in logs) monitorValue = await scalarOf(logs[monitor]);
      // Saved even when everyBatches just saved this step: that save recorded a mid-epoch position.
      if (everyEpoch) await save();
    }

    override async onTrainEnd(): Promise<void> {
      await checkpointer.flush();
    }

    async close(): Promise<void> {
      await checkpointer.close();
    }
  }
  return new FitCheckpointCallback();
}
