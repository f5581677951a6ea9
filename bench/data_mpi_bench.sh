#!/usr/bin/env bash
# `lathe data prepare` in one process vs under `mpirun -np N` (default 2), one thread per process, on
# the generated corpus of bench/data_bench.sh split into 8 JSONL files (the unit a rank reads), with
# PII redaction and exact dedup as there (near dedup and tokenization off). Checks that the two output
# directories are byte-identical, prints both wall times and their ratio.
#   bench/data_mpi_bench.sh [BUILD_DIR] [MB] [NP]        defaults: build, 80, 2
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
mb=${2:-80}
np=${3:-2}
bin=$build/lathe
[ -x "$bin" ] || { echo "missing $bin"; exit 1; }
command -v mpirun >/dev/null || { echo "mpirun is not on PATH"; exit 1; }
tmp=$(mktemp -d /tmp/lathe-datampi-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/in"
/usr/bin/python3 "$root/bench/data_bench_gen.py" "$tmp/corpus.jsonl" "$mb"
(cd "$tmp/in" && split -n l/8 -d --additional-suffix=.jsonl "$tmp/corpus.jsonl" part-)
rm "$tmp/corpus.jsonl"
size=$(du -cb "$tmp"/in/*.jsonl | tail -1 | cut -f1)
cat > "$tmp/data.yaml" <<YAML
data:
  inputs: [in/]
  pii: {policy: redact}
  dedup: {exact: true, near: false}
  split: {ratios: [1]}
YAML
cd "$tmp"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
t0=$(date +%s.%N)
"$bin" data prepare --config data.yaml --output one > one.log 2>&1
t1=$(date +%s.%N)
mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none -np "$np" -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS \
  "$bin" data prepare --config data.yaml --output many > many.log 2>&1
t2=$(date +%s.%N)
diff -r one many > /dev/null && same=identical || same=DIFFERENT
awk -v s="$size" -v a="$t0" -v b="$t1" -v c="$t2" -v np="$np" -v same="$same" 'BEGIN {
  printf "corpus %.1f MB in 8 files\n", s / 1e6;
  printf "1 process, 1 thread:          %6.2f s (%.1f MB/s)\n", b - a, s / 1e6 / (b - a);
  printf "mpirun -np %d, 1 thread each:  %6.2f s (%.1f MB/s)\n", np, c - b, s / 1e6 / (c - b);
  printf "ratio 1 process / mpirun: %.2fx; output directories %s\n", (b - a) / (c - b), same }'
tail -n 1 one.log
[ "$same" = identical ]
