/** Chooses and loads the writer binding (the native addon, native/addon/, entry point module.cc; or the portable
 * writer, src/portable/). Nothing else in src/ loads either. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from './errors';
export * from './contract';
import type { NativeBinding, TestingBinding } from './contract';

const root = path.resolve(__dirname, '..', '..', '..');

/** The one command that builds the addon from source where no prebuilt binary matches (docs/packaging.md). */
export const BUILD_FROM_SOURCE = 'npx ckptio build-addon';

/** The command that builds the testing addon (`npm install` in a clone runs it too, through `prepare`). */
export const TESTING_BUILD = 'npm run build:native:testing';

/** The testing build's file: CKPTIO_TESTING_ADDON, else the development tree's build-cmake-testing/Release/ckptio.node. */
export function testingAddonPath(): string {
  return path.resolve(process.env.CKPTIO_TESTING_ADDON || path.join(root, 'build-cmake-testing', 'Release', 'ckptio.node'));
}

/** Where the addon comes from, first match wins:
 * 1. CKPTIO_ADDON, a specific build (the ASan one, the node-gyp one, a broken one for the crash tests);
 * 2. CKPTIO_TESTING=1: the testing build (testingAddonPath(); see testing() below);
 * 3. the development tree's (or a from-source) cmake-js build, build-cmake/Release/ckptio.node;
 * 4. node-gyp-build: build/Release (the node-gyp build), build/Debug, then the packed
 *    prebuilds/<platform>-<arch>/ckptio.glibc.node, matched on platform, arch and libc. */
function addonPath(): string {
  if (process.env.CKPTIO_ADDON) {
    const p = path.resolve(process.env.CKPTIO_ADDON);
    if (!fs.existsSync(p)) {
      throw new CheckpointError(`ckptio native addon not found: CKPTIO_ADDON=${p} does not exist`, { code: 'ECKPT_INTERNAL', path: p });
    }
    return p;
  }
  if (process.env.CKPTIO_TESTING === '1') {
    const p = testingAddonPath();
    if (!fs.existsSync(p)) {
      throw new CheckpointError(`the ckptio testing addon is not built (CKPTIO_TESTING=1 asks for ${p}): build it with ${TESTING_BUILD}`, {
        code: 'ECKPT_INTERNAL',
        path: p,
      });
    }
    return p;
  }
  const cmakeBuild = path.join(root, 'build-cmake', 'Release', 'ckptio.node');
  if (fs.existsSync(cmakeBuild)) return cmakeBuild;
  try {
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    return nodeGypBuild.resolve(root);
  } catch (err) {
    const libc = process.env.LIBC || (fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc');
    const detail = String((err as Error)?.message ?? err)
      .trim()
      .replace(/\s+/g, ' ');
    throw new CheckpointError(
      `ckptio has no native addon for platform=${process.platform} arch=${process.arch} libc=${libc} ` +
        `(node ${process.versions.node}, Node-API ${process.versions.napi}); prebuilt binaries cover linux-x64 and linux-arm64 (glibc). ` +
        `Build it from source (needs a C++17 compiler and cmake >= 3.15) with: ${BUILD_FROM_SOURCE}. ` +
        `Looked for ${cmakeBuild}, ${path.join(root, 'build', 'Release')} and ${path.join(root, 'prebuilds')} (${detail})`,
      { code: 'ECKPT_INTERNAL' },
    );
  }
}

/** Which writer this process uses: the native addon, or the portable writer (src/portable/) where the addon is not
 * wanted (CKPTIO_WRITER=portable: the addon is then never loaded) or does not load (no binary for the platform, a
 * broken one), with a one-line notice naming why. CKPTIO_WRITER=native insists on the addon, and so does naming a build
 * (CKPTIO_ADDON, CKPTIO_TESTING=1): its failure is thrown. */
export type WriterKind = 'native' | 'portable';

function loadAddon(file: string): NativeBinding {
  const addon = require(file) as NativeBinding;
  if (typeof addon.tempNamePattern !== 'string') {
    // An addon built from older sources: without the pattern, start-up's sweep of stale temporaries cannot tell a
    // temporary from a checkpoint.
    throw new CheckpointError(
      `the ckptio addon at ${file} is older than this ckptio (it exports no tempNamePattern): rebuild it (npm run build:native, or ${BUILD_FROM_SOURCE})`,
      { code: 'ECKPT_INTERNAL', path: file },
    );
  }
  return addon;
}

function portable(): NativeBinding {
  return (require('../portable/binding') as typeof import('../portable/binding')).createPortableBinding();
}

function chooseWriter(): { kind: WriterKind; binding: NativeBinding; file: string | null } {
  const requested = process.env.CKPTIO_WRITER ?? '';
  if (!['', 'native', 'portable'].includes(requested)) {
    throw new CheckpointError(`CKPTIO_WRITER=${requested} is not a writer: use native or portable (or leave it unset)`, { code: 'ECKPT_ARGS' });
  }
  if (requested === 'portable') return { kind: 'portable', binding: portable(), file: null };
  // A named build (CKPTIO_ADDON: the ASan, node-gyp or deliberately broken one; CKPTIO_TESTING=1: the testing build)
  // is asked for on purpose: its failure is thrown, never replaced by the portable writer.
  const insist = requested === 'native' || Boolean(process.env.CKPTIO_ADDON) || process.env.CKPTIO_TESTING === '1';
  let file: string | null = null;
  try {
    file = addonPath();
    return { kind: 'native', binding: loadAddon(file), file };
  } catch (err) {
    if (insist)
      throw err instanceof CheckpointError
        ? err
        : new CheckpointError(`the ckptio addon at ${file} did not load: ${String((err as Error)?.message ?? err)}`, {
            code: 'ECKPT_INTERNAL',
            ...(file ? { path: file } : {}),
          });
    const why = String((err as Error)?.message ?? err).split('\n')[0]!;
    // One line, once, on stderr: what runs and why; choosing the portable writer explicitly silences it.
    process.stderr.write(
      `ckptio: using the portable writer, because the native addon did not load (${why}); set CKPTIO_WRITER=portable to choose it without this notice, or CKPTIO_WRITER=native to insist on the addon\n`,
    );
    return { kind: 'portable', binding: portable(), file: null };
  }
}

const chosen = chooseWriter();
/** The writer in use (see chooseWriter). */
export const writerKind: WriterKind = chosen.kind;
/** The addon's file, or null under the portable writer. */
export const addonFile: string | null = chosen.file;
export const native: NativeBinding = chosen.binding;
native.init(CheckpointError);

/** The testing hooks (faults, rawWrite, writerStats), which only the testing build exports.
 *
 * The scheme: the hooks act on the addon instance they belong to (each Node environment's own writer, Env and
 * counters), and a second copy of the addon loaded beside `native` would be a second instance whose fault twin
 * no save goes through. So the testing build is never loaded beside the release one: it is loaded AS `native`,
 * for the whole process, and testing() hands back that same object. A test or bench that uses the hooks selects
 * it before anything imports src/: its first import is test/testing-addon.ts, which sets CKPTIO_TESTING=1 (each
 * test file runs in its own process under node --test; children it spawns inherit the setting and so load the
 * same build). CKPTIO_ADDON still wins (the ASan and the deliberately broken builds are testing builds too).
 * Everything else, the package included, gets the release build, and test/build.test.ts checks that its exports
 * hold no hook. Throws ECKPT_INTERNAL when this process's addon is a release build. */
export function testing(): TestingBinding {
  const t = native as Partial<TestingBinding>;
  if (typeof t.rawWrite === 'function' && typeof t.writerStats === 'function' && typeof t.faults === 'object') return native as TestingBinding;
  if (addonFile === null) {
    throw new CheckpointError(
      `this process uses the portable writer (CKPTIO_WRITER=${process.env.CKPTIO_WRITER ?? ''}), which has no testing hooks (faults, rawWrite, writerStats)`,
      {
        code: 'ECKPT_INTERNAL',
      },
    );
  }
  throw new CheckpointError(
    `the ckptio addon this process loaded (${addonFile}) is a release build: it has no testing hooks (faults, rawWrite, writerStats). ` +
      `They act on the process's own addon, so load the testing build as that addon: set CKPTIO_TESTING=1 before ckptio is first imported ` +
      `(tests and benches import test/testing-addon first) or CKPTIO_ADDON=<a testing build>; build it with ${TESTING_BUILD}`,
    { code: 'ECKPT_INTERNAL', path: addonFile },
  );
}
