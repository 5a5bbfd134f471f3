#!/usr/bin/env bash
# Prints the path of Node <major> for linux-<arch> (x64 or arm64), fetched once from the npm registry (the package
# node-linux-<arch>@<major>, with npm pack; nothing else is downloaded) into <cache>/node-<major>/bin/node.
# Usage: scripts/fetch-node.sh <arch> <major> <cache>
set -euo pipefail
arch=$1 major=$2 cache=$3
dir=$cache/node-$major
if [ ! -x "$dir/bin/node" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$tmp" && npm pack "node-linux-$arch@$major" --silent --no-audit >/dev/null)
  tar xzf "$tmp"/node-linux-"$arch"-"$major".*.tgz -C "$dir" --strip-components=1 package/bin/node package/LICENSE
fi
echo "$dir/bin/node"
