#!/usr/bin/env bash
# Decode GEMV figures for docs/quant.md: F32 (OpenBLAS sgemv) vs Q8_0 vs Q4_0 on SmolLM2-135M's MLP
# shapes, 1 and 2 threads, on the native instruction set and pinned to AVX2 (LATHE_CPU_ISA=avx2 pins
# lathe's quantized kernels and OpenBLAS's core). Run on an idle machine: `uptime` first.
# Usage: bench/qgemv_bench.sh [BUILD_DIR]   (default: build; needs `ninja -C BUILD_DIR qgemv_bench`)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}/bench/qgemv_bench
uptime
lscpu | grep -E "Model name|L3"
echo "== native"
"$B" --benchmark_min_time=0.5 --benchmark_color=false | sed -n '/^quant kernels/,$p'
echo "== LATHE_CPU_ISA=avx2"
LATHE_CPU_ISA=avx2 "$B" --benchmark_min_time=0.5 --benchmark_color=false | sed -n '/^quant kernels/,$p'
