#!/usr/bin/env bash
# Installs lathe's build and test dependencies (Debian 12 packages only) and builds it.
# Usage: scripts/setup.sh [BUILD_DIR]   (default: build). Safe to run again.
#        LATHE_BUILD_TARGETS=lathe scripts/setup.sh   builds only the named targets (the example needs only lathe)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev libopenblas0-openmp libfmt-dev nlohmann-json3-dev libcli11-dev
  libyaml-cpp-dev libcpp-httplib-dev libsqlite3-dev libonig-dev libutf8proc-dev libxxhash-dev
  libpoppler-cpp-dev poppler-utils curl libjemalloc-dev libsimdjson-dev
  libgtest-dev libbenchmark-dev
  openmpi-bin libopenmpi-dev
)
# oneDNN: --base-compute bf16|int8 (optional; the amd64 build only, CMakeLists.txt finds it).
[ "$(dpkg --print-architecture)" = amd64 ] && PACKAGES+=(libdnnl-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js + npm drive the serving tests with the official `openai` client. A machine that already has
# node (e.g. from nodesource, whose nodejs bundles npm) keeps it: Debian's npm would conflict with it.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "== installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "== configuring and building in $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${LATHE_CMAKE_ARGS:-}
ninja -C "$BUILD_DIR" -j "$(nproc)" ${LATHE_BUILD_TARGETS:-}
