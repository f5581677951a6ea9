#!/usr/bin/env bash
# Installs node-llama-cpp 3.21.1 (llama.cpp's prebuilt CPU binaries from npm; pinned, so figures
# compare against one llama.cpp) into a cache directory, never into the source tree, and prints that
# directory. Idempotent: does nothing when that version is there. The benchmarks that compare
# against llama.cpp (decode_bench.sh, ppl_compare.sh) call it.
# usage: bench/setup_llamacpp.sh [DIR]   (default: $NLC_DIR, else ~/.cache/lathe/node-llama-cpp-3.21.1)
set -euo pipefail
VERSION=3.21.1
dir=${1:-${NLC_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lathe/node-llama-cpp-$VERSION}}
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup_llamacpp.sh: node and npm are needed to run llama.cpp through node-llama-cpp" >&2
  exit 1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
have=$(node -p "try { require('$dir/node_modules/node-llama-cpp/package.json').version } catch { '' }")
if [ "$have" != "$VERSION" ]; then
  echo "setup_llamacpp.sh: installing node-llama-cpp@$VERSION into $dir" >&2
  # No download or source build at install time: the CPU binaries come prebuilt in the
  # @node-llama-cpp/<platform> package; without one for this platform the scripts fail on load.
  (cd "$dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund --loglevel=error \
     "node-llama-cpp@$VERSION" >&2)
fi
echo "$dir"
