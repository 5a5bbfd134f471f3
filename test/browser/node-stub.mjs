// What tfjs-backend-wasm's ESM build imports from Node ('fs', 'os', 'path', 'perf_hooks') and uses only in Node:
// the page's import map points those names here.
export default {};
