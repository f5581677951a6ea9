#!/usr/bin/env bash
# Decode and prefill speed of lathe against llama.cpp on the same GGUF file (docs/quant.md, "Against
# llama.cpp"). For each shape in SHAPES a model with random weights from `lathe init-model`, written as
# one GGUF per type in TYPES (f32/f16 with `lathe export --format gguf`, the block types with
# `lathe quantize`; a type lathe cannot write yet is skipped with a note). Each file is decoded by
# `lathe generate --stats` and by llama.cpp (node-llama-cpp 3.21.1, pinned: bench/llamacpp_decode.mjs)
# with the same prompt ids, prompt length and number of new tokens, at each thread count in THREADS_LIST.
# Runs are interleaved (run 1 of every file and program, then run 2, ...; lathe and llama.cpp take turns
# going first) so a change in the machine's load hits all alike. Prints per shape and thread count: decode
# and prefill tokens/s (median of RUNS), the ratio lathe / llama.cpp, min/median (stability), peak RSS
# of both, and the roofline: measured read bandwidth (bench/membw) / bytes read per decoded token.
# LLAMA_VARIANT=haswell runs llama.cpp's AVX2 build only (set LATHE_CPU_ISA=avx2
# OPENBLAS_CORETYPE=Haswell for lathe's AVX2 path beside it).
#
# Shapes (both tied, like the real models):
#   smollm2  SmolLM2-135M: llama, hidden 576, ffn 1536, 30 layers, 9/3 heads, vocab 49152
#   qwen05   Qwen2.5-0.5B: qwen2 (q/k/v bias), hidden 896, ffn 4864, 24 layers, 14/2 heads, vocab 151936
# A GGUF needs a tokenizer: TOKENIZER (default the stories260K fixture's, 512 tokens) padded to the vocabulary.
#
# Usage: bench/decode_bench.sh [BUILD_DIR]
# env: SHAPES="smollm2 qwen05" TYPES="f32 f16 q8_0 q4_0 q4_k q6_k" THREADS_LIST="2 1" RUNS=5 PROMPT=32 NEW=64
#      LLAMA_KV="f32" (llama.cpp's KV cache; lathe's is f32; "f32 f16" adds llama.cpp's default as well)
#      TOKENIZER=DIR NLC_DIR=DIR (node-llama-cpp install, bench/setup_llamacpp.sh) KEEP=DIR (keep the files)
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(cd "${1:-build}" && pwd)
SHAPES=${SHAPES:-smollm2 qwen05}; TYPES=${TYPES:-f32 f16 q8_0 q4_0 q4_k q6_k}; THREADS_LIST=${THREADS_LIST:-2 1}
RUNS=${RUNS:-5}; PROMPT=${PROMPT:-32}; NEW=${NEW:-64}; LLAMA_KV=${LLAMA_KV:-f32}
TOKENIZER=${TOKENIZER:-$PWD/../shared/fixtures/models/stories260K-hf}
[ -d "$TOKENIZER" ] || [ -f "$TOKENIZER" ] || { echo "decode_bench.sh: tokenizer $TOKENIZER not found (set TOKENIZER=)" >&2; exit 1; }
NLC=$(bench/setup_llamacpp.sh)
if [ -n "${LLAMA_VARIANT:-}" ]; then
  # llama.cpp's prebuilt CPU backends come one per x86 level (libggml-cpu-haswell.so, -skylakex, ...)
  # and the best the CPU runs is loaded. A copy of the install with only LLAMA_VARIANT's library makes
  # it load that one: LLAMA_VARIANT=haswell (AVX2) beside LATHE_CPU_ISA=avx2 OPENBLAS_CORETYPE=Haswell
  # compares the two programs' AVX2 code on an AVX-512 machine. The backends are looked up next to the
  # resolved package, so the copy holds real files (without the GPU packages: ~85 MB), kept in the cache.
  V="$NLC-only-$LLAMA_VARIANT"
  if [ ! -f "$V/.complete" ]; then
    rm -rf "$V"; mkdir -p "$V"
    (cd "$NLC" && tar --exclude='node_modules/@node-llama-cpp/linux-x64-cuda*' --exclude='node_modules/@node-llama-cpp/linux-x64-vulkan*' \
       --exclude='node_modules/@node-llama-cpp/linux-arm*' -cf - node_modules package.json) | (cd "$V" && tar xf -)
    bins=$V/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
    [ -f "$bins/libggml-cpu-$LLAMA_VARIANT.so" ] || { echo "decode_bench.sh: no libggml-cpu-$LLAMA_VARIANT.so in $bins" >&2; exit 1; }
    for f in "$bins"/libggml-cpu-*.so; do [ "$f" = "$bins/libggml-cpu-$LLAMA_VARIANT.so" ] || rm "$f"; done
    touch "$V/.complete"
  fi
  NLC=$V
fi
cp bench/llamacpp_decode.mjs "$NLC/"  # ESM resolves node-llama-cpp next to the script
if [ -n "${KEEP:-}" ]; then W=$KEEP; mkdir -p "$W"; else W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; fi
[ -x "$B/bench/membw" ] || ninja -C "$B" membw >/dev/null
echo "== $(date -u +%FT%TZ) $(uptime)"
echo "lathe kernels: ${LATHE_CPU_ISA:-best for this CPU}, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(default)}; llama.cpp CPU backend: ${LLAMA_VARIANT:-best for this CPU}"
lscpu | grep -E "Model name|^L2|^L3" || true
for t in $THREADS_LIST; do echo "membw $t $("$B/bench/membw" "$t" 512 5)"; done > "$W/membw.txt"
cat "$W/membw.txt"

shape_args() {
  case $1 in
    smollm2) echo "--arch llama --hidden-size 576 --intermediate-size 1536 --num-hidden-layers 30 --num-attention-heads 9 --num-key-value-heads 3 --vocab-size 49152" ;;
    qwen05) echo "--arch qwen2 --hidden-size 896 --intermediate-size 4864 --num-hidden-layers 24 --num-attention-heads 14 --num-key-value-heads 2 --vocab-size 151936" ;;
    *) echo "decode_bench.sh: unknown shape '$1' (smollm2, qwen05)" >&2; return 1 ;;
  esac
}
vocab_of() { shape_args "$1" | sed 's/.*--vocab-size \([0-9]*\).*/\1/'; }

# The files: one HF directory per shape, one GGUF per type lathe can write.
declare -A files
for s in $SHAPES; do
  # shellcheck disable=SC2046
  "$B/lathe" init-model $(shape_args "$s") --tie-word-embeddings --seed 1 --tokenizer "$TOKENIZER" --output "$W/$s" >/dev/null
  for ty in $TYPES; do
    f="$W/$s.$ty.gguf"
    case $ty in
      f32|f16) cmd=("$B/lathe" export --model "$W/$s" --format gguf --gguf-type "$ty" --output "$f") ;;
      *) cmd=("$B/lathe" quantize --model "$W/$s" --type "$ty" --output "$f") ;;
    esac
    if "${cmd[@]}" >/dev/null 2>"$W/err"; then files[$s.$ty]=$f
    else echo "note: skipping $s $ty: lathe cannot write it yet ($(grep -v '^note:' "$W/err" | head -1))"; fi
  done
  rm -rf "${W:?}/$s"  # the f32 source (2 GB for qwen05) is not needed any more
done

one() {  # shape threads type impl: one line "shape threads type impl JSON"
  local s=$1 t=$2 ty=$3 impl=$4 f=${files[$1.$3]} ids=$5 js
  if [ "$impl" = lathe ]; then
    js=$("$B/lathe" generate --model "$f" --prompt-ids "$ids" --max-new-tokens "$NEW" --stop-ids -1 \
           --threads "$t" --stats 2>&1 >/dev/null | tail -1)
  else
    js=$(cd "$NLC" && node llamacpp_decode.mjs "$f" "$ids" "$NEW" "$t" "${impl#llama.cpp-kv}")
  fi
  echo "$s $t $ty $impl $(stat -c %s "$f") $js"
}
for s in $SHAPES; do
  ids=$(/usr/bin/python3 -c "import random; random.seed(0); print(','.join(str(random.randrange($(vocab_of "$s"))) for _ in range($PROMPT)))")
  for t in $THREADS_LIST; do
    for r in $(seq "$RUNS"); do
      for ty in $TYPES; do
        [ -n "${files[$s.$ty]:-}" ] || continue
        impls=(lathe); for kv in $LLAMA_KV; do impls+=("llama.cpp-kv$kv"); done
        if [ $((r % 2)) -eq 0 ]; then  # take turns going first
          for ((i = ${#impls[@]} - 1; i >= 0; i--)); do one "$s" "$t" "$ty" "${impls[$i]}" "$ids"; done
        else
          for i in "${impls[@]}"; do one "$s" "$t" "$ty" "$i" "$ids"; done
        fi
      done
    done
    echo "== $s $t threads done $(uptime)" >&2
  done
done | tee "$W/runs.txt" >/dev/null
echo "== $(date -u +%FT%TZ) $(uptime)"
echo "lathe kernels: ${LATHE_CPU_ISA:-best for this CPU}, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(default)}; llama.cpp CPU backend: ${LLAMA_VARIANT:-best for this CPU}"
/usr/bin/python3 bench/decode_table.py "$W/runs.txt" "$W/membw.txt" "$PROMPT" "$NEW" "$RUNS"
