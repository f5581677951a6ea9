#!/usr/bin/env bash
# Data pipeline throughput: collect + map + clean + PII (redact) + exact dedup, as `lathe data prepare`
# runs them (near dedup and tokenization off; records.jsonl, manifest and report are written and
# counted in the time), on a generated mixed Korean/English JSONL corpus, beside a one-pass Python
# reference (json + NFC + regex redaction + hash) over the same file.
#   bench/data_bench.sh [BUILD_DIR] [MB]        defaults: build, 200; threads: OMP_NUM_THREADS (default 2)
#   env MODEL=DIR NEAR=1 BOTH=0 REF=0 (see below)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
mb=${2:-200}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
bin=$build/lathe
[ -x "$bin" ] || { echo "missing $bin"; exit 1; }
tmp=$(mktemp -d /tmp/lathe-databench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 "$root/bench/data_bench_gen.py" "$tmp/corpus.jsonl" "$mb"
size=$(stat -c %s "$tmp/corpus.jsonl")
cat > "$tmp/data.yaml" <<YAML
data:
  inputs: [corpus.jsonl]
  output: out
  pii: {policy: redact}
  dedup: {exact: true, near: false}
  split: {ratios: [1]}
YAML
# MODEL=DIR: format and tokenize with that model's tokenizer and chat template (e.g. the Qwen3 fixture);
# NEAR=1: MinHash near dedup on; BOTH=0: skip the in-memory driver (LATHE_DATA_IN_MEMORY=1, today's
# pipeline before streaming) that otherwise runs second for the ratio.
[ "${NEAR:-0}" = 1 ] && sed -i 's/near: false/near: true/' "$tmp/data.yaml"
model_args=()
[ -n "${MODEL:-}" ] && model_args=(--model "$MODEL")
run_lathe() {  # label, env assignment (or empty); prints a line and sets lathe_mbs
  local label=$1 envs=$2
  rm -rf "$tmp/out"
  local start end
  start=$(date +%s.%N)
  env $envs /usr/bin/time -v "$bin" data prepare --config "$tmp/data.yaml" "${model_args[@]}" > "$tmp/log.txt" 2> "$tmp/time.txt"
  end=$(date +%s.%N)
  lathe_mbs=$(echo "$size $start $end" | awk '{printf "%.1f", $1 / 1e6 / ($3 - $2)}')
  local user sys rss cpus
  user=$(grep "User time" "$tmp/time.txt" | awk '{print $NF}')
  sys=$(grep "System time" "$tmp/time.txt" | awk '{print $NF}')
  rss=$(grep "Maximum resident" "$tmp/time.txt" | awk '{print $NF}')
  cpus=$(echo "$user $sys" | awk '{printf "%.1f", $1 + $2}')
  echo "$label: $(echo $size | awk '{printf "%.1f", $1/1e6}') MB at $lathe_mbs MB/s, $cpus CPU-s ($(echo "$size $cpus" | awk '{printf "%.1f", $1/1e6/$2}') MB per CPU-s), peak RSS $((rss / 1024)) MB"
  eval "${3:-last}_rss=$rss; ${3:-last}_cpus=$cpus; ${3:-last}_mbs=$lathe_mbs"
  ( cd "$tmp/out" && sha256sum * ) > "$tmp/sums.${3:-last}"
}
what="collect+map+clean+PII+exact dedup"
[ "${NEAR:-0}" = 1 ] && what+="+near dedup"
[ -n "${MODEL:-}" ] && what+="+template+tokenize"
what+="+write"
echo "lathe data prepare ($what, OMP_NUM_THREADS=$OMP_NUM_THREADS)"
run_lathe "  streaming" "LATHE_VERBOSE=1" stream
# Where the streaming run's wall time went (its LATHE_VERBOSE step profile).
grep "^lathe data: " "$tmp/time.txt" | sed 's/^lathe data: /    /' || true
if [ "${BOTH:-1}" = 1 ]; then
  run_lathe "  in-memory (LATHE_DATA_IN_MEMORY=1)" "LATHE_DATA_IN_MEMORY=1" mem
  echo "  streaming / in-memory: speed $(echo "$mem_cpus $stream_cpus" | awk '{printf "%.2f", $1 / $2}')x (CPU-s), peak RSS $(echo "$stream_rss $mem_rss" | awk '{printf "%.2f", $1 / $2}')x"
  cmp -s "$tmp/sums.stream" "$tmp/sums.mem" && echo "  outputs: identical" || echo "  outputs: DIFFER"
fi
lathe_mbs=$stream_mbs
[ "${REF:-1}" = 0 ] && exit 0
ref=$(/usr/bin/python3 "$root/bench/data_ref_onepass.py" "$tmp/corpus.jsonl")
echo "$ref"
ref_mbs=$(echo "$ref" | sed -E 's/.*= ([0-9.]+) MB\/s.*/\1/')
echo "ratio lathe / reference: $(echo "$lathe_mbs $ref_mbs" | awk '{printf "%.2f", $1 / $2}')x"
