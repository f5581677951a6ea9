#!/usr/bin/env bash
# Cross-builds lathe for 64-bit ARM (aarch64) on an x86-64 Debian 12 machine and runs the unit tests
# under qemu-user. Installs what it needs (Debian packages only): Debian's cross compiler, qemu-user,
# and the arm64 builds of the libraries lathe links, multiarch (dpkg --add-architecture arm64).
# Usage: scripts/cross_aarch64.sh [BUILD_DIR]            (default: build-aarch64)
#   LATHE_CROSS_TESTS=all                  every *_unit test (default: tests/kernels, model, data_pipeline)
#   LATHE_CROSS_TESTS='kernels/qblock_unit kernels/nf4_unit'   the named test files only
#   LATHE_CROSS_TESTS=none                 build lathe and run its smoke test only
#   LATHE_CROSS_SMOKE=0                    skip the lathe smoke test (init-model + generate under qemu)
#   LATHE_CMAKE_ARGS=...                   extra cmake arguments (e.g. -DLATHE_ARCH=armv8.2-a+dotprod)
# qemu runs the kernels' fastest variant the emulated CPU ("max": has dotprod) offers; QEMU_CPU=
# cortex-a72 emulates a core without dotprod, so the plain NEON kernels are selected by default.
# Figures from qemu are correctness only: emulated speed says nothing about a real ARM core.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build-aarch64}
start=$(date +%s)
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

# ---- packages ----
# Host side: the cross compiler, qemu, the build tools, and the architecture-independent headers.
# libonig-dev and libyaml-cpp-dev are not Multi-Arch: same (their :arm64 builds would remove the
# host's), so the host's copy supplies the headers and the arm64 link files are unpacked below.
HOST_PACKAGES=(g++-aarch64-linux-gnu qemu-user qemu-user-binfmt cmake ninja-build pkg-config
               nlohmann-json3-dev libcli11-dev libonig-dev libyaml-cpp-dev)
TARGET_PACKAGES=(libopenblas-dev libopenblas0-openmp libfmt-dev libcpp-httplib-dev libsqlite3-dev
                 libonig5 libyaml-cpp0.7 libutf8proc-dev libxxhash-dev libpoppler-cpp-dev libgtest-dev)
missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${TARGET_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p:arm64" 2>/dev/null | grep -q "install ok installed" || missing+=("$p:arm64")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "== adding the arm64 architecture to dpkg"
    $SUDO dpkg --add-architecture arm64
  fi
  echo "== installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The arm64 link files of the two packages above (libonig.so, oniguruma.pc, yaml-cpp's CMake config)
# go where multiarch would have put them; the host's package provides the identical headers.
LIBDIR=/usr/lib/aarch64-linux-gnu
if [ ! -e $LIBDIR/libonig.so ] || [ ! -e $LIBDIR/cmake/yaml-cpp/yaml-cpp-config.cmake ]; then
  echo "== unpacking the arm64 link files of libonig-dev and libyaml-cpp-dev into $LIBDIR"
  debs=$(mktemp -d)
  (cd "$debs" && apt-get download -q libonig-dev:arm64 libyaml-cpp-dev:arm64 2>/dev/null)
  for d in "$debs"/*.deb; do dpkg -x "$d" "$debs/root"; done
  $SUDO cp -an "$debs/root$LIBDIR/." $LIBDIR/
  rm -rf "$debs"
fi

# ---- binfmt_misc ----
# Tests that start a program through a shell (LATHE_BINARY, the test binary itself) need the kernel
# to hand arm64 executables to qemu; ctest starts the test binaries through qemu by itself.
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  if [ -w /proc/sys/fs/binfmt_misc/register ] || [ -n "$SUDO" ]; then
    $SUDO sh -c 'cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register' 2>/dev/null || true
  fi
fi
# Without binfmt_misc (an unprivileged container) the one unit test that re-executes its own binary
# (QBlock.LatheCpuIsaIsReadAndChecked) cannot run; it is left out, by name, and the rest still run.
exclude='_NOT_BUILT$'
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "warning: qemu-aarch64 is not registered with binfmt_misc: leaving out QBlock.LatheCpuIsaIsReadAndChecked" >&2
  exclude='_NOT_BUILT$|^QBlock\.LatheCpuIsaIsReadAndChecked$'
fi

# ---- configure and build ----
launcher=""
command -v ccache >/dev/null 2>&1 && launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
echo "== configuring $BUILD_DIR for aarch64"
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
  -DLATHE_BENCH=OFF $launcher ${LATHE_CMAKE_ARGS:-} > "$BUILD_DIR/configure.log" 2>&1 ||
  { cat "$BUILD_DIR/configure.log"; exit 1; }

sel=${LATHE_CROSS_TESTS:-kernels model data_pipeline}
tests=()
case "$sel" in
  none) ;;
  all) while IFS= read -r f; do tests+=("$(basename "$f" .cpp)"); done < <(find tests -name '*_unit.cpp' | sort) ;;
  *)
    for s in $sel; do
      if [ -d "tests/$s" ]; then
        while IFS= read -r f; do tests+=("$(basename "$f" .cpp)"); done < <(find "tests/$s" -name '*_unit.cpp' | sort)
      else
        tests+=("$(basename "$s" .cpp)")
      fi
    done ;;
esac
echo "== building lathe ${tests[*]}"
ninja -C "$BUILD_DIR" -j "$(nproc)" lathe "${tests[@]}"
echo "== built in $(( $(date +%s) - start )) s"

# ---- run under qemu ----
file "$BUILD_DIR/lathe" 2>/dev/null | grep -q aarch64 || { echo "error: $BUILD_DIR/lathe is not an aarch64 binary" >&2; exit 1; }
if [ "${LATHE_CROSS_SMOKE:-1}" = "1" ]; then
  # A randomly initialised tiny llama, greedy decode in f32 and with the Q8_0 / Q4_0 kernels; each must
  # print tokens. The model is random, so only completion is checked here, not text.
  smoke=$(mktemp -d)
  qemu-aarch64 "$BUILD_DIR/lathe" init-model --arch llama --hidden-size 64 --intermediate-size 128 \
    --num-hidden-layers 2 --num-attention-heads 4 --num-key-value-heads 2 --vocab-size 512 \
    --output "$smoke/model" > "$smoke/init.log" 2>&1 ||
    { cat "$smoke/init.log"; exit 1; }
  for wt in f32 q8_0 q4_0; do
    qemu-aarch64 "$BUILD_DIR/lathe" generate --model "$smoke/model" --weights $wt --prompt-ids 1,2,3 \
      --max-new-tokens 8 --json --threads 2 > "$smoke/gen_$wt.log" 2>&1 || { cat "$smoke/gen_$wt.log"; exit 1; }
    echo "== lathe generate --weights $wt under qemu: $(tail -n 1 "$smoke/gen_$wt.log")"
  done
  rm -rf "$smoke"
fi
if [ ${#tests[@]} -gt 0 ]; then
  # Tests of executables not built here are NOT_BUILT placeholders; leave them out.
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" -L unit -E "$exclude" \
    --timeout "${LATHE_TEST_TIMEOUT:-900}"
fi
echo "== cross build and tests took $(( $(date +%s) - start )) s"
