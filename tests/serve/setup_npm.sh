#!/usr/bin/env bash
# Installs the official `openai` npm package for the serve tests into BUILD_DIR/serve-npm (never into
# the source tree). Idempotent: does nothing when the installed copy matches package.json.
# usage: tests/serve/setup_npm.sh BUILD_DIR
set -euo pipefail
build_dir=${1:?usage: setup_npm.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build_dir"
dest="$(cd "$build_dir" && pwd)/serve-npm"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup_npm.sh: node and npm are needed for the serve tests (Node 18+)" >&2
  exit 1
fi
mkdir -p "$dest"
if [ -f "$dest/node_modules/openai/package.json" ] && cmp -s "$here/package.json" "$dest/package.json"; then
  exit 0
fi
cp "$here/package.json" "$dest/package.json"
(cd "$dest" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error)
echo "setup_npm.sh: openai $(node -p "require('$dest/node_modules/openai/package.json').version") in $dest"
