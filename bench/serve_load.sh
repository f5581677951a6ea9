#!/usr/bin/env bash
# Load test for lathe serve: CLIENTS concurrent streaming clients (the official OpenAI Node client)
# x REQUESTS requests each, on a tiny model. Prints errors, p50/p99 latency, time to first token,
# aggregate completion tokens/s and the server's RSS before and after (it must stay flat).
#
# usage: bench/serve_load.sh [BUILD_DIR]            (default build)
# env:   CLIENTS=8 REQUESTS=200 MAX_TOKENS=64 CONCURRENCY=8 THREADS=0
#        SERVE_ARGS="--no-batch-decode" (extra lathe serve options)
#        MODEL=DIR (default: the stories260K fixture, ../shared/fixtures/models/stories260K-hf)
#        WEIGHTS="f32 q8_0" (one server per value, `lathe serve --weights W`, then a before/after table;
#        default: one server with serve's default)
# Quick run: CLIENTS=4 REQUESTS=20 bench/serve_load.sh build
# Quantized weights (docs/quant.md): MODEL=<SmolLM2-135M-shape dir> WEIGHTS="f32 q8_0" REQUESTS=10 bench/serve_load.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
CLIENTS=${CLIENTS:-8} REQUESTS=${REQUESTS:-200} MAX_TOKENS=${MAX_TOKENS:-64} CONCURRENCY=${CONCURRENCY:-8} THREADS=${THREADS:-0}
MODEL=${MODEL:-$root/../shared/fixtures/models/stories260K-hf}
[ -d "$MODEL" ] || { echo "serve_load.sh: model $MODEL not found (set MODEL=DIR)" >&2; exit 1; }
"$root/tests/serve/setup_npm.sh" "$build" >&2

work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

measure() {  # weights ("" = serve's default): starts a server, loads it, prints the figures, stops it
  local weights=$1
  # The previous server's output goes first: the new server's redirect truncates it only once the
  # background job runs, and the wait below would read the old port.
  rm -rf "$work/data" "$work/out" "$work/err"
  "$build/lathe" serve --model "$MODEL" --served-model-name tiny --port 0 --data-dir "$work/data" \
    --max-concurrency "$CONCURRENCY" --queue-size 256 --threads "$THREADS" ${weights:+--weights "$weights"} \
    ${SERVE_ARGS:-} >"$work/out" 2>"$work/err" &
  server_pid=$!
  for _ in $(seq 600); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.05; done
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/out")
  [ -n "$port" ] || { echo "serve_load.sh: server did not start:" >&2; cat "$work/err" >&2; exit 1; }
  rss() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
  url="http://127.0.0.1:$port/v1"

  # Warm-up (first allocations, page faults), then the measured run.
  LATHE_NPM_DIR="$build/serve-npm" node "$root/bench/serve_load_client.mjs" "$url" tiny "$CLIENTS" 2 "$MAX_TOKENS" >/dev/null
  rss_before=$(rss)
  result=$(LATHE_NPM_DIR="$build/serve-npm" node "$root/bench/serve_load_client.mjs" "$url" tiny "$CLIENTS" "$REQUESTS" "$MAX_TOKENS")
  rss_after=$(rss)
  # A second measured run: RSS after it must not have grown again (no per-request leak).
  LATHE_NPM_DIR="$build/serve-npm" node "$root/bench/serve_load_client.mjs" "$url" tiny "$CLIENTS" "$(( (REQUESTS + 3) / 4 ))" "$MAX_TOKENS" >/dev/null
  rss_after2=$(rss)
  metrics=$(curl -s "http://127.0.0.1:$port/metrics" | grep -E '^lathe_(requests_total|completion_tokens_total|resident)' || true)
  kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; server_pid=

  echo "== weights ${weights:-default}"
  echo "$result"
  echo "$result" | node -e '
    const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const [b, a, a2] = process.argv.slice(1).map(Number);
    console.log(`clients ${r.clients}, requests ${r.requests}, errors ${r.errors}${r.first_error ? " (" + r.first_error + ")" : ""}`);
    console.log(`latency p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms; first token p50 ${r.ttft_ms.p50} ms, p99 ${r.ttft_ms.p99} ms`);
    console.log(`aggregate ${r.tokens_per_s} completion tokens/s, ${r.requests_per_s} requests/s over ${r.wall_s} s`);
    console.log(`server RSS ${(b/1024).toFixed(1)} MiB before, ${(a/1024).toFixed(1)} MiB after, ${(a2/1024).toFixed(1)} MiB after another run`);
  ' "$rss_before" "$rss_after" "$rss_after2"
  echo "$metrics"
  echo "${weights:-default} $rss_after2 $result" >> "$work/summary"
  grep -q '"errors":0' <<<"$result"
}

for w in ${WEIGHTS:-""}; do measure "$w"; done
[ -z "${WEIGHTS:-}" ] && measure ""
if [ "$(wc -l < "$work/summary")" -gt 1 ]; then
  echo "| weights | aggregate tok/s | vs first | p50 ms | p99 ms | first token p99 ms | server RSS MiB |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
    let base = null;
    for (const l of lines) {
      const [w, rss, ...rest] = l.split(" "), r = JSON.parse(rest.join(" "));
      base ??= r.tokens_per_s;
      console.log(`| ${w} | ${r.tokens_per_s} | ${(r.tokens_per_s / base).toFixed(2)}x | ${r.latency_ms.p50} | ${r.latency_ms.p99} | ${r.ttft_ms.p99} | ${(rss / 1024).toFixed(1)} |`);
    }' "$work/summary"
fi
