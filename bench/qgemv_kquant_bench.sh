#!/usr/bin/env bash
# GEMV figures of every in-place weight type (docs/quant.md "K-quants, F16 and BF16"): tokens/s over
# F32 at 1 and 2 threads, from memory (cold) and from cache (hot). Run on an idle machine.
# Usage: bench/qgemv_kquant_bench.sh [BUILD_DIR]   (needs `ninja -C BUILD_DIR qgemv_kquant_bench`)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}/bench/qgemv_kquant_bench
uptime
lscpu | grep -E "Model name|L3"
# REPS repetitions (median), FILTER a --benchmark_filter regex (e.g. 'gemv/[0-9]+/[0-9]+/[0-9]+/1/' for 1 thread).
"$B" --benchmark_min_time=${MIN_TIME:-0.3} --benchmark_repetitions=${REPS:-3} --benchmark_filter="${FILTER:-.}" \
  --benchmark_color=false | sed -n '/^quant kernels/,$p'
