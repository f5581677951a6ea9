#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, coverage) into build-fuzz/ and runs each for a while.
# Usage: scripts/fuzz.sh [TARGET ...]        every fuzz/<name>.cpp, or only the named ones
#        FUZZ_SECONDS=600 FUZZ_SEED=0 scripts/fuzz.sh    the long run, random seed (default: 30 s a
#                                    target with seed 1, so a short CI run replays a path already
#                                    explored here instead of failing at random on a new finding)
# Each target starts from its seed corpus fuzz/corpus/<name>/ (copied, so the tree stays clean) and
# fails the script on its first finding; the crashing input is left in build-fuzz/findings/<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
# FUZZ_BUILD_DIR=build-asan: reuse the sanitizer test build (scripts/test.sh with LATHE_SANITIZE=1
# configures it with clang and the fuzz targets), building only the harnesses.
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
if ! command -v clang++ >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libomp-dev
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
# -O1 -g1: as libFuzzer recommends (-O1), line tables only (faster builds; reports keep file:line).
if [ -z "${FUZZ_BUILD_DIR:-}" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DLATHE_FUZZ=ON -DLATHE_TESTS=OFF -DLATHE_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" ${LATHE_CMAKE_ARGS:-} >/dev/null
elif ! grep -q "LATHE_FUZZ:BOOL=ON" "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
  echo "fuzz.sh: FUZZ_BUILD_DIR=$BUILD_DIR is not a build configured with -DLATHE_FUZZ=ON" >&2
  exit 1
fi
if ! ninja -C "$BUILD_DIR" -j "$(nproc)" "${targets[@]/#/fuzz_}" >"$BUILD_DIR/build.log" 2>&1; then
  grep -v "loop not vectorized" "$BUILD_DIR/build.log" | tail -n 80 >&2
  exit 1
fi
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
for t in "${targets[@]}"; do
  work="$BUILD_DIR/corpus/$t"
  findings="$BUILD_DIR/findings/$t"
  mkdir -p "$work" "$findings"
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$work/"
  echo "== fuzz_$t for ${SECONDS_EACH} s"
  rc=0
  "$BUILD_DIR/fuzz/fuzz_$t" "$work" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=20 \
    -seed="${FUZZ_SEED:-1}" -artifact_prefix="$findings/" -print_final_stats=1 >"$BUILD_DIR/fuzz_$t.log" 2>&1 || rc=$?
  grep -E "^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|SUMMARY|ERROR)" "$BUILD_DIR/fuzz_$t.log" || true
  if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$findings")" ]; then
    tail -n 60 "$BUILD_DIR/fuzz_$t.log" >&2
    echo "fuzz_$t: exit status $rc; finding(s), if any, in $findings" >&2
    exit 1
  fi
done
