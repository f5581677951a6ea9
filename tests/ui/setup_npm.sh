#!/usr/bin/env bash
# Installs puppeteer-core for the browser test into BUILD_DIR/ui-npm (never into the source tree). It
# drives the system's chromium (Debian: apt-get install chromium); no browser is downloaded.
# Idempotent: does nothing when the installed copy matches package.json.
# usage: tests/ui/setup_npm.sh BUILD_DIR
set -euo pipefail
build_dir=${1:?usage: setup_npm.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build_dir"
dest="$(cd "$build_dir" && pwd)/ui-npm"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "tests/ui/setup_npm.sh: node and npm are needed for the browser test (Node 18+)" >&2
  exit 1
fi
mkdir -p "$dest"
if [ -f "$dest/node_modules/puppeteer-core/package.json" ] && cmp -s "$here/package.json" "$dest/package.json"; then
  exit 0
fi
cp "$here/package.json" "$dest/package.json"
(cd "$dest" && PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --ignore-scripts --loglevel=error)
echo "tests/ui/setup_npm.sh: puppeteer-core $(node -p "require('$dest/node_modules/puppeteer-core/package.json').version") in $dest"
