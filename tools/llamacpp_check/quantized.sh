#!/usr/bin/env bash
# GGUF files written by `lathe quantize` (Q8_0, Q4_0, Q4_K, Q6_K, F16, BF16), checked against llama.cpp: llama.cpp loads each
# and continues a prompt greedily; the table says how many ids it shares with lathe on the same file
# (and the top-2 probabilities at the first difference, to see whether it was a near-tie).
# Usage: tools/llamacpp_check/quantized.sh LATHE_BINARY NLC_DIR [MODEL] [N] [IDS]
#   NLC_DIR: where `npm install node-llama-cpp@3.21.1` ran; MODEL: an HF directory with its tokenizer
#   (default: the stories260K fixture); N new tokens (200); IDS the prompt ids (1,403,407,261,378).
#   TYPES (environment): the types to check (default: f32 q8_0 q4_0 q4_k q6_k f16 bf16). stories260K's
#   rows (64, 172) are no multiple of 256, so its q4_k/q6_k files hold the Q8_0/F16 fallbacks: give
#   MODEL an HF directory with 256-multiple sizes to exercise the K-quant blocks.
set -euo pipefail
L=$(realpath "$1"); NLC=$(realpath "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=${3:-$HERE/../../../shared/fixtures/models/stories260K-hf}
N=${4:-200}; IDS=${5:-1,403,407,261,378}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cp "$HERE"/greedy_ids.mjs "$NLC"/
"$L" export --model "$MODEL" --format gguf --gguf-type f32 --output "$W/f32.gguf" >/dev/null
TYPES=${TYPES:-f32 q8_0 q4_0 q4_k q6_k f16 bf16}
for t in $TYPES; do
  [ "$t" = f32 ] || "$L" quantize --model "$MODEL" --type $t --output "$W/$t.gguf" >/dev/null
done
printf "%-6s %-28s %s\n" type "ids shared with lathe" "llama.cpp top-2 at the first difference"
for t in $TYPES; do
  (cd "$NLC" && node greedy_ids.mjs "$W/$t.gguf" "$IDS" "$N" f32 probs) > "$W/llama_$t.txt"
  "$L" generate --model "$W/$t.gguf" --prompt-ids "$IDS" --max-new-tokens "$N" --stop-ids 99999 > "$W/lathe_$t.txt"
  /usr/bin/python3 - "$W/llama_$t.txt" "$W/lathe_$t.txt" "$t" "$N" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
a, b = lines[0].split(), open(sys.argv[2]).read().split()
n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
why = lines[1 + n].split("top2 ")[1] if n < len(a) and 1 + n < len(lines) else "-"
print(f"{sys.argv[3]:6} {n:>4} of {sys.argv[4]:<20} {why}")
PY
done
