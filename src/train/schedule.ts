/** Learning-rate schedules, as pure functions of the global step (so resume needs only the step). */
export type ScheduleKind = 'constant' | 'step' | 'cosine';

export interface ScheduleConfig {
  kind: ScheduleKind;
  /** Peak learning rate, reached at the end of warmup. */
  baseLr: number;
  /** Steps of linear warmup from startLr to baseLr (0: none). */
  warmupSteps: number;
  startLr: number;
  /** Steps over which cosine decays from baseLr to minLr (after warmup). */
  totalSteps: number;
  minLr: number;
  /** 'step': multiply by gamma every stepSize steps after warmup. */
  stepSize?: number;
  gamma?: number;
}

export function learningRate(s: ScheduleConfig, step: number): number {
  if (step < s.warmupSteps) return s.startLr + (s.baseLr - s.startLr) * (step / s.warmupSteps);
  const after = step - s.warmupSteps;
  switch (s.kind) {
    case 'constant':
      return s.baseLr;
    case 'step':
      return s.baseLr * Math.pow(s.gamma ?? 0.1, Math.floor(after / (s.stepSize ?? 1000)));
    case 'cosine': {
      const span = Math.max(1, s.totalSteps - s.warmupSteps);
      const progress = Math.min(1, after / span);
      return s.minLr + 0.5 * (s.baseLr - s.minLr) * (1 + Math.cos(Math.PI * progress));
    }
  }
}
