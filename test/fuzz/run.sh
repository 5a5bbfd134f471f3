#!/usr/bin/env bash
# Builds the header fuzzer (clang, libFuzzer + ASan + UBSan) and runs it over a copy of the committed seed
# corpus. Usage: test/fuzz/run.sh [runs]   (default: 10 minutes of fuzzing; CI passes a fixed count)
# Exits non-zero on any crash, leak, sanitizer report or hang (libFuzzer's -timeout).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/build-fuzz
mkdir -p "$out"
command -v clang++ >/dev/null || { echo "clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
xxhash=$root/native/third_party/xxhash
srcs=(native/format/header.cc native/format/json.cc native/format/dtype.cc native/format/checksum.cc)
if [ ! -x "$out/header_fuzzer" ] || [ -n "$(find "${srcs[@]}" native/format/*.h native/io/status.h test/fuzz/header_fuzzer.cc -newer "$out/header_fuzzer")" ]; then
  clang++ -std=c++17 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-unused-parameter \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I native -isystem "$xxhash" test/fuzz/header_fuzzer.cc "${srcs[@]}" -o "$out/header_fuzzer"
fi
work=$out/corpus
rm -rf "$work" && mkdir -p "$work" && cp test/fuzz/corpus/* "$work"/
if [ $# -ge 1 ]; then limit=(-runs="$1"); else limit=(-max_total_time=600); fi
# Inputs up to 64 KiB: the header parser's work is in the first bytes; data-region size only scales hashing.
exec "$out/header_fuzzer" "${limit[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -seed=1 -dict=test/fuzz/safetensors.dict "$work"
