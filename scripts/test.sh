#!/usr/bin/env bash
# Sets up everything (Debian packages, build) and runs the test suite.
# Usage: scripts/test.sh            the whole suite (unit, golden, gradcheck, e2e labels)
#        LATHE_TEST_LABEL=unit scripts/test.sh   one label only
#        LATHE_SANITIZE=1 scripts/test.sh        ASan+UBSan build in build-asan
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=build
if [ "${LATHE_SANITIZE:-0}" = "1" ]; then
  BUILD_DIR=build-asan
  # clang, with the libFuzzer targets configured in the same tree: scripts/fuzz.sh with
  # FUZZ_BUILD_DIR=build-asan then builds only the fuzz harnesses against these libraries (CI compiles
  # the libraries twice, not three times).
  if ! command -v clang++ >/dev/null 2>&1 || ! dpkg-query -W -f='${Status}' libomp-dev 2>/dev/null | grep -q "install ok installed"; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libomp-dev
  fi
  export CC=clang CXX=clang++
  export LATHE_CMAKE_ARGS="${LATHE_CMAKE_ARGS:-} -DLATHE_SANITIZE=ON -DLATHE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATHE_BENCH=OFF"
  # OpenBLAS/OpenMP keep thread-local caches alive at exit; leak reports there are not ours.
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
# One label set only: build just its test executables (and lathe, which they run).
if [ -n "${LATHE_TEST_LABEL:-}" ] && [ -z "${LATHE_BUILD_TARGETS:-}" ]; then
  targets=(lathe)
  while IFS= read -r f; do targets+=("$(basename "$f" .cpp)"); done \
    < <(find tests -name '*.cpp' | grep -E "_(${LATHE_TEST_LABEL})\.cpp$" | sort)
  export LATHE_BUILD_TARGETS="${targets[*]}"
fi
scripts/setup.sh "$BUILD_DIR"
# The serve e2e tests drive the server with the official `openai` npm package (installed under the
# build dir; needs node + npm and the registry). Never fatal here: without it that one test fails
# and says why.
tests/serve/setup_npm.sh "$BUILD_DIR" || echo "warning: tests/serve/setup_npm.sh failed; the OpenAI-client serve test will fail" >&2
# The workbench's browser test drives Debian's chromium with npm's puppeteer-core (no browser
# download); fonts-nanum so that Korean text renders in its screenshots. Only the plain run has the
# e2e label; without either package the test skips.
if [ "${LATHE_SANITIZE:-0}" != "1" ] && [ "${LATHE_TEST_BROWSER:-1}" = "1" ]; then
  need=()
  for p in chromium fonts-nanum; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"; } ||
      echo "warning: could not install ${need[*]}; the browser test of lathe ui will skip" >&2
  fi
fi
tests/ui/setup_npm.sh "$BUILD_DIR" || echo "warning: tests/ui/setup_npm.sh failed; the browser test of lathe ui will skip" >&2
# A per-test limit, so that a test that hangs fails with its name instead of stalling CI (the longest,
# an e2e run under the sanitizers, takes a few minutes).
args=(--test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout "${LATHE_TEST_TIMEOUT:-900}")
[ -n "${LATHE_TEST_LABEL:-}" ] && args+=(-L "$LATHE_TEST_LABEL")
ctest "${args[@]}"
