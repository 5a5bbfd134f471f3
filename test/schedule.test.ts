import assert from 'node:assert/strict';
import { test } from 'node:test';
import { learningRate, ScheduleConfig } from '../src/train/schedule';

const s: ScheduleConfig = { kind: 'cosine', baseLr: 1e-3, warmupSteps: 100, startLr: 0, totalSteps: 1100, minLr: 1e-5 };

test('linear warmup then cosine: values at chosen steps', () => {
  assert.equal(learningRate(s, 0), 0);
  assert.equal(learningRate(s, 50), 5e-4);
  assert.equal(learningRate(s, 100), 1e-3);
  assert.ok(Math.abs(learningRate(s, 600) - (1e-5 + 0.5 * (1e-3 - 1e-5))) < 1e-15, 'cosine midpoint');
  assert.equal(learningRate(s, 1100), 1e-5);
  assert.equal(learningRate(s, 5000), 1e-5);
  const mono = Array.from({ length: 1000 }, (_, i) => learningRate(s, 100 + i));
  assert.ok(mono.every((v, i) => i === 0 || v <= mono[i - 1]!), 'non-increasing after warmup');
});

test('constant and step schedules', () => {
  assert.equal(learningRate({ ...s, kind: 'constant' }, 700), 1e-3);
  const st = { ...s, kind: 'step' as const, stepSize: 200, gamma: 0.5 };
  assert.equal(learningRate(st, 299), 1e-3);
  assert.equal(learningRate(st, 300), 5e-4);
  assert.equal(learningRate(st, 700), 1.25e-4);
});
