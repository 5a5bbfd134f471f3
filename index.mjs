// The ESM entry: a thin wrapper over the CommonJS build (dist/src/index.js), so `import` and `require` share
// one module instance: one init() of the native addon, one CheckpointError class (instanceof holds across both).
// Node finds the named exports with its CommonJS export analysis; test/package.test.ts checks they match.
export * from './dist/src/index.js';
export { default } from './dist/src/index.js';
