/** The WebGPU backend in Node: Dawn (npm `webgpu`, a prebuilt dawn.node) under `@tensorflow/tfjs-backend-webgpu`.
 * Both are optional peers, loaded only by loadTf('webgpu').
 *
 * - Dawn's globals (GPUBufferUsage, GPUMapMode, ...) and `navigator.gpu` are installed before the backend is
 *   imported (it registers itself only if `navigator.gpu` exists then).
 * - Adapters are tried in order: Vulkan (a real GPU), then OpenGL ES with `featureLevel: 'compatibility'` (on a
 *   machine without a GPU: Mesa's llvmpipe through EGL, `EGL_PLATFORM=surfaceless`). Dawn rejects Mesa's
 *   software Vulkan (lavapipe), so the software route is OpenGL ES.
 * - ckptio registers the 'webgpu' backend factory itself (the one the package registers asks for an adapter
 *   without `featureLevel`, which finds nothing on the OpenGL ES route), with the device limits tfjs asks for.
 * - A live Dawn instance keeps Node from exiting: close() disposes the backend, destroys the device and drops
 *   the instance. docs/gpu.md has what was measured. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as tfType from '@tensorflow/tfjs';
import { CheckpointError } from '../binding/errors';
import { requirePeer } from '../binding/peer';

type Tf = typeof tfType;

/** The Dawn backends ckptio tries, in order. */
export type DawnBackend = 'vulkan' | 'opengles' | 'opengl' | 'null';

/** What adapter Dawn gave: recorded in the start event and in every checkpoint's provenance. */
export interface WebGpuAdapterReport {
  dawnBackend: DawnBackend;
  featureLevel: 'core' | 'compatibility';
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Dawn's own flag (a CPU fallback adapter such as SwiftShader). */
  isFallbackAdapter: boolean;
  /** A CPU implementation (llvmpipe, lavapipe, SwiftShader, softpipe): no real GPU figures. */
  software: boolean;
  /** Each backend tried before this one and why it gave no adapter. */
  tried: { dawnBackend: DawnBackend; reason: string }[];
}

export interface WebGpuOptions {
  /** Dawn backends to try, in order (default: CKPTIO_DAWN_BACKENDS, comma-separated, or vulkan,opengles). */
  dawnBackends?: DawnBackend[];
}

interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
  features: ReadonlySet<string>;
  limits: Record<string, number>;
  requestDevice(desc?: unknown): Promise<GpuDeviceLike>;
}
interface GpuDeviceLike {
  destroy(): void;
  lost: Promise<unknown>;
  queue: { onSubmittedWorkDone(): Promise<void> };
}
interface GpuLike {
  requestAdapter(opts?: unknown): Promise<GpuAdapterLike | null>;
  getPreferredCanvasFormat?(): string;
  wgslLanguageFeatures?: unknown;
}
interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

interface Live {
  gpu: GpuLike;
  device: GpuDeviceLike | null;
  adapter: WebGpuAdapterReport;
  navigator: PropertyDescriptor | undefined;
  tf: Tf;
}

let live: Live | null = null;

/** The adapter of the webgpu backend set up in this process, or null (not set up, or closed). */
export function currentWebGpuAdapter(): WebGpuAdapterReport | null {
  return live?.adapter ?? null;
}

// `webgpu` is an ES module. Node >= 20.19 and 22.12 load it with require(); older ones need a real import(),
// which TypeScript's CommonJS output would turn back into require().

const nativeImport = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

async function loadDawn(): Promise<DawnModule> {
  let resolved: string;
  try {
    resolved = require.resolve('webgpu');
  } catch {
    // requirePeer turns the miss into ECKPT_MISSING_PACKAGE naming the package.
    return requirePeer<DawnModule>('webgpu', "loadTf('webgpu')");
  }
  try {
    return require(resolved) as DawnModule;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw err;
    return (await nativeImport(pathToFileURL(resolved).href)) as DawnModule;
  }
}

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software/i;

function report(
  a: GpuAdapterLike,
  dawnBackend: DawnBackend,
  featureLevel: WebGpuAdapterReport['featureLevel'],
  tried: WebGpuAdapterReport['tried'],
): WebGpuAdapterReport {
  const info = a.info ?? {};
  const isFallbackAdapter = Boolean(info.isFallbackAdapter ?? a.isFallbackAdapter ?? false);
  const r = {
    dawnBackend,
    featureLevel,
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter,
    software: false,
    tried,
  };
  r.software = isFallbackAdapter || SOFTWARE.test(`${r.device} ${r.description} ${r.vendor}`);
  return r;
}

/** Shared libraries the two routes need, by Debian package; the ones not found are named in the error. */
const SYSTEM_LIBS: { file: string; pkg: string; route: string }[] = [
  { file: 'libEGL.so.1', pkg: 'libegl1', route: 'opengles' },
  { file: 'libEGL_mesa.so.0', pkg: 'libegl-mesa0', route: 'opengles' },
  { file: 'libGLESv2.so.2', pkg: 'libgles2', route: 'opengles' },
  { file: 'dri/swrast_dri.so', pkg: 'libgl1-mesa-dri', route: 'opengles' },
  { file: 'libvulkan.so.1', pkg: 'libvulkan1 (and the GPU vendor driver)', route: 'vulkan' },
];

function libDirs(): string[] {
  const multiarch = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  const fromEnv = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  return [...fromEnv, `/usr/lib/${multiarch}`, `/lib/${multiarch}`, '/usr/lib64', '/usr/lib', '/lib64', '/lib', '/usr/local/lib'];
}

/** The system libraries of the Vulkan / OpenGL ES routes that are not on this machine. */
export function missingSystemLibraries(): { file: string; pkg: string; route: string }[] {
  if (process.platform !== 'linux') return [];
  const dirs = libDirs();
  return SYSTEM_LIBS.filter((l) => !dirs.some((d) => fs.existsSync(path.join(d, l.file))));
}

function noAdapterError(tried: WebGpuAdapterReport['tried']): CheckpointError {
  const missing = missingSystemLibraries();
  const gles = missing.filter((m) => m.route === 'opengles');
  const hint = gles.length
    ? ` Missing system libraries for the OpenGL ES (software) route: ${gles.map((m) => `${m.file} (${m.pkg})`).join(', ')}; on Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri, and set EGL_PLATFORM=surfaceless.`
    : missing.length
      ? ` Not found: ${missing.map((m) => `${m.file} (${m.pkg})`).join(', ')}.`
      : '';
  return new CheckpointError(`loadTf('webgpu'): Dawn created no WebGPU adapter (${tried.map((t) => `${t.dawnBackend}: ${t.reason}`).join('; ')}).${hint}`, {
    code: 'ECKPT_NO_GPU_ADAPTER',
  });
}

function defaultBackends(): DawnBackend[] {
  const env = process.env.CKPTIO_DAWN_BACKENDS;
  return env
    ? (env
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean) as DawnBackend[])
    : ['vulkan', 'opengles'];
}

function setNavigatorGpu(gpu: GpuLike): PropertyDescriptor | undefined {
  const previous = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true, enumerable: true });
  return previous;
}

function restoreNavigator(previous: PropertyDescriptor | undefined): void {
  if (previous) Object.defineProperty(globalThis, 'navigator', previous);
  else delete (globalThis as { navigator?: unknown }).navigator;
}

/** Sets Dawn up, picks an adapter and registers the tfjs 'webgpu' backend on it (not yet selected). */
export async function setupWebGpu(tf: Tf, opts: WebGpuOptions = {}): Promise<WebGpuAdapterReport> {
  if (live) return live.adapter;
  const dawn = await loadDawn();
  Object.assign(globalThis, dawn.globals);
  // Mesa's EGL needs a platform without a display server; harmless where there is one.
  process.env.EGL_PLATFORM ??= 'surfaceless';
  const tried: WebGpuAdapterReport['tried'] = [];
  let chosen: { gpu: GpuLike; adapter: GpuAdapterLike; report: WebGpuAdapterReport } | null = null;
  for (const b of opts.dawnBackends ?? defaultBackends()) {
    const gpu = dawn.create([`backend=${b}`]);
    const featureLevel = b === 'vulkan' ? 'core' : 'compatibility';
    let adapter: GpuAdapterLike | null;
    try {
      adapter = await gpu.requestAdapter(
        featureLevel === 'core' ? { powerPreference: 'high-performance' } : { featureLevel, powerPreference: 'high-performance' },
      );
    } catch (err) {
      tried.push({ dawnBackend: b, reason: (err as Error).message });
      continue;
    }
    if (!adapter) {
      tried.push({ dawnBackend: b, reason: 'no adapter' });
      continue;
    }
    chosen = { gpu, adapter, report: report(adapter, b, featureLevel, [...tried]) };
    break;
  }
  if (!chosen) throw noAdapterError(tried);
  const { gpu, adapter } = chosen;
  // The package registers its own factory at import when navigator.gpu exists; ours replaces it.
  const previous = setNavigatorGpu({
    requestAdapter: async () => adapter,
    getPreferredCanvasFormat: () => gpu.getPreferredCanvasFormat?.() ?? 'rgba8unorm',
    wgslLanguageFeatures: gpu.wgslLanguageFeatures,
  });
  const state: Live = { gpu, device: null, adapter: chosen.report, navigator: previous, tf };
  try {
    const mod = requirePeer<{ WebGPUBackend: new (device: unknown, info?: unknown) => tfType.KernelBackend }>(
      '@tensorflow/tfjs-backend-webgpu',
      "loadTf('webgpu')",
    );
    if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
    tf.registerBackend(
      'webgpu',
      async () => {
        // What tfjs-backend-webgpu 4.22 asks for (src/base.ts), on the adapter chosen above.
        const requiredFeatures = ['timestamp-query', 'bgra8unorm-storage'].filter((f) => adapter.features.has(f));
        const l = adapter.limits;
        const device = await adapter.requestDevice({
          requiredFeatures,
          requiredLimits: {
            maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
            maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
            maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
            maxBufferSize: l.maxBufferSize,
            maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
            maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
          },
        });
        state.device = device;
        return new mod.WebGPUBackend(device, adapter.info);
      },
      3,
    );
  } catch (err) {
    restoreNavigator(previous);
    throw err;
  }
  live = state;
  return state.adapter;
}

/** Waits for `p` (errors ignored) at most `ms`. */
async function settle(p: Promise<unknown>, ms = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.catch(() => {}),
    new Promise<void>((r) => {
      timer = setTimeout(r, ms);
    }),
  ]);
  clearTimeout(timer);
}

/** Disposes the tfjs webgpu backend (every tensor on it is gone), destroys the device and drops the Dawn
 * instance so Node can exit. Idempotent. */
export async function closeWebGpu(): Promise<void> {
  const s = live;
  if (!s) return;
  live = null;
  const device = s.device;
  s.device = null;
  try {
    // Let submitted work finish before the buffers go, then wait for Dawn to report the device gone: a process
    // that exited while Dawn's and Mesa's threads were still tearing down was seen to abort or hang in exit().
    if (device) await settle(device.queue.onSubmittedWorkDone());
    if (s.tf.findBackendFactory('webgpu')) s.tf.removeBackend('webgpu');
  } finally {
    if (device) {
      device.destroy();
      await settle(device.lost);
    }
    restoreNavigator(s.navigator);
  }
}
