#!/usr/bin/env bash
# Data pipeline throughput: collect + map + clean + PII (redact) + exact dedup, as `lathe data prepare`
# runs them (near dedup and tokenization off; records.jsonl, manifest and report are written and
# counted in the time), on a generated mixed Korean/English JSONL corpus, beside a one-pass Python
# reference (json + NFC + regex redaction + hash) over the same file.
#   bench/data_bench.sh [BUILD_DIR] [MB]        defaults: build, 200; threads: OMP_NUM_THREADS (default 2)
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
start=$(date +%s.%N)
/usr/bin/time -v "$bin" data prepare --config "$tmp/data.yaml" > "$tmp/log.txt" 2> "$tmp/time.txt"
end=$(date +%s.%N)
lathe_mbs=$(echo "$size $start $end" | awk '{printf "%.1f", $1 / 1e6 / ($3 - $2)}')
echo "lathe data prepare (collect+map+clean+PII+exact dedup+write, OMP_NUM_THREADS=$OMP_NUM_THREADS): $(echo $size | awk '{printf "%.1f", $1/1e6}') MB at $lathe_mbs MB/s"
grep -E "Maximum resident|Percent of CPU" "$tmp/time.txt" | sed 's/^\s*/  /'
tail -n 2 "$tmp/log.txt"
ref=$(/usr/bin/python3 "$root/bench/data_ref_onepass.py" "$tmp/corpus.jsonl")
echo "$ref"
ref_mbs=$(echo "$ref" | sed -E 's/.*= ([0-9.]+) MB\/s.*/\1/')
echo "ratio lathe / reference: $(echo "$lathe_mbs $ref_mbs" | awk '{printf "%.2f", $1 / $2}')x"
