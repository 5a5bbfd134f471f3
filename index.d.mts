// Types for the ESM entry (index.mjs): the CommonJS build's declarations, re-exported.
export * from './dist/src/index.js';
import * as ckptio from './dist/src/index.js';
export default ckptio;
