#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, coverage) into build-fuzz/ and runs each for a while.
# Usage: scripts/fuzz.sh [TARGET ...]        every fuzz/<name>.cpp, or only the named ones
#        FUZZ_SECONDS=600 scripts/fuzz.sh    the long run (default 30 s a target, what CI runs)
# Each target starts from its seed corpus fuzz/corpus/<name>/ (copied, so the tree stays clean) and
# fails the script on its first finding; the crashing input is left in build-fuzz/findings/<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
BUILD_DIR=build-fuzz
if ! command -v clang++ >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DLATHE_FUZZ=ON -DLATHE_TESTS=OFF -DLATHE_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo ${LATHE_CMAKE_ARGS:-} >/dev/null
ninja -C "$BUILD_DIR" -j "$(nproc)" "${targets[@]/#/fuzz_}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
for t in "${targets[@]}"; do
  work="$BUILD_DIR/corpus/$t"
  findings="$BUILD_DIR/findings/$t"
  mkdir -p "$work" "$findings"
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$work/"
  echo "== fuzz_$t for ${SECONDS_EACH} s"
  "$BUILD_DIR/fuzz_$t" "$work" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=20 \
    -artifact_prefix="$findings/" -print_final_stats=1 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==|SUMMARY|ERROR)" || true
  if [ -n "$(ls -A "$findings")" ]; then
    echo "fuzz_$t: finding(s) in $findings" >&2
    exit 1
  fi
done
