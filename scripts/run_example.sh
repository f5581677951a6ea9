#!/usr/bin/env bash
# Sets up everything and runs the main job on the bundled example.
# Today (foundation stage) the example is: create a small Llama-architecture model with
# `lathe init-model`, inspect it, score token sequences (perplexity) and generate greedily.
# With ../shared/fixtures present it also runs the real stories260K model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
LATHE=build/lathe
OUT=${LATHE_EXAMPLE_OUT:-out/example}
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== 1. a small Llama model (random init, seed 42)"
$LATHE init-model --arch llama --hidden-size 128 --intermediate-size 344 --num-hidden-layers 4 \
  --num-attention-heads 8 --num-key-value-heads 4 --vocab-size 1024 --initializer-range 0.1 --seed 42 \
  --output "$OUT/tiny-llama"
$LATHE inspect "$OUT/tiny-llama" | head -8

echo "== 2. perplexity of two token sequences (a random model scores near ln(1024) = 6.93)"
printf '{"input_ids":[1,17,200,33,5,900,12,7,7,7]}\n{"input_ids":[1,2,3,4,5,6,7,8]}\n' > "$OUT/ids.jsonl"
$LATHE perplexity --model "$OUT/tiny-llama" --ids-file "$OUT/ids.jsonl"

echo "== 3. greedy generation from ids 1,17,200"
$LATHE generate --model "$OUT/tiny-llama" --prompt-ids 1,17,200 --max-new-tokens 16 --stats

echo "== 4. LoRA fine-tuning on the two sequences (tiny memorisation run), then perplexity with the adapter"
$LATHE train --model "$OUT/tiny-llama" --data "$OUT/ids.jsonl" --output "$OUT/lora" --method lora \
  --lora-target-modules all-linear --lora-r 8 --learning-rate 1e-2 --max-steps 40 --save-steps 20 \
  --per-device-train-batch-size 2 --logging-steps 10 --threads 1  # a 1M-parameter model runs best on one core
$LATHE perplexity --model "$OUT/tiny-llama" --adapter "$OUT/lora" --ids-file "$OUT/ids.jsonl"

FIX=../shared/fixtures/models
if [ -f "$FIX/gguf/stories260K.gguf" ]; then
  echo "== 5. the real stories260K model (GGUF, its own vocabulary): greedy continuation of 'Once upon a time'"
  $LATHE generate --model "$FIX/gguf/stories260K.gguf" --prompt "Once upon a time" --max-new-tokens 60
fi
echo "== done: outputs in $OUT"
