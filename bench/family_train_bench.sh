#!/usr/bin/env bash
# Training speed and memory per model family at the real shape of its smallest member (random
# weights, random ids): tokens/s (the first step, a warm-up, excluded) and peak RSS of `lathe train`.
# Usage: bench/family_train_bench.sh [BUILD_DIR]
#   env: FAMILIES="gemma3-270m exaone4-1.2b ..." METHOD=lora|qlora|full SEQ=512 STEPS=3 THREADS=2 BATCH=1
# The README's model table quotes its output. No reference runs beside it (bench/train_bench.sh
# compares lathe with PyTorch on one shape); this one answers "what does tuning family X cost here".
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
THREADS=${THREADS:-2}; BATCH=${BATCH:-1}; METHOD=${METHOD:-lora}; STEPS=${STEPS:-3}; SEQ=${SEQ:-512}
FAMILIES=${FAMILIES:-"gemma3-270m exaone4-1.2b"}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
# The published configs' shapes (hidden, intermediate, layers, heads, kv heads, head_dim, vocab, family keys).
shape() {
  case "$1" in
    gemma3-270m) echo "--arch gemma3 --hidden-size 640 --intermediate-size 2048 --num-hidden-layers 18 \
      --num-attention-heads 4 --num-key-value-heads 1 --head-dim 256 --vocab-size 262144 --sliding-window 512 \
      --query-pre-attn-scalar 256 --rope-theta 1000000 --rope-local-base-freq 10000 --rms-norm-eps 1e-6" ;;
    gemma2-2b) echo "--arch gemma2 --hidden-size 2304 --intermediate-size 9216 --num-hidden-layers 26 \
      --num-attention-heads 8 --num-key-value-heads 4 --head-dim 256 --vocab-size 256000 --sliding-window 4096 \
      --query-pre-attn-scalar 256 --rms-norm-eps 1e-6" ;;
    exaone4-1.2b) echo "--arch exaone4 --hidden-size 2048 --intermediate-size 4096 --num-hidden-layers 30 \
      --num-attention-heads 32 --num-key-value-heads 8 --head-dim 64 --vocab-size 102400 --sliding-window 0 \
      --tie-word-embeddings --rope-theta 1000000" ;;
    exaone-2.4b) echo "--arch exaone --hidden-size 2560 --intermediate-size 7168 --num-hidden-layers 30 \
      --num-attention-heads 32 --num-key-value-heads 8 --head-dim 80 --vocab-size 102400 --tie-word-embeddings \
      --rope-theta 1000000" ;;
    smollm3-3b) echo "--arch smollm3 --hidden-size 2048 --intermediate-size 11008 --num-hidden-layers 36 \
      --num-attention-heads 16 --num-key-value-heads 4 --head-dim 128 --vocab-size 128256 --tie-word-embeddings \
      --rope-theta 5000000" ;;
    phi4-mini) echo "--arch phi3 --hidden-size 3072 --intermediate-size 8192 --num-hidden-layers 32 \
      --num-attention-heads 24 --num-key-value-heads 8 --head-dim 128 --vocab-size 200064 --tie-word-embeddings \
      --partial-rotary-factor 0.75 --rope-theta 10000" ;;
    *) echo "unknown family $1" >&2; exit 2 ;;
  esac
}
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
method_args=(--lora-r 16 --lora-alpha 32 --lora-target-modules all-linear)
[ "$METHOD" = full ] && method_args=()
printf "%-14s %-6s %5s %10s %12s %s\n" family method seq "tok/s" "peak RSS" params
for fam in $FAMILIES; do
  # shellcheck disable=SC2046
  params=$("$B/lathe" init-model $(shape "$fam") --seed 1 --output "$W/$fam" | sed -n 's/.*, \(.*\) parameters/\1/p')
  vocab=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$W/$fam/config.json")
  /usr/bin/python3 - "$W/data.jsonl" "$BATCH" "$SEQ" "$vocab" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        f.write(json.dumps({"input_ids": [random.randrange(int(sys.argv[4])) for _ in range(int(sys.argv[3]))]}) + "\n")
PY
  /usr/bin/time -f "%M" -o "$W/rss" "$B/lathe" train --model "$W/$fam" --data "$W/data.jsonl" --output "$W/out-$fam" \
    --method "$METHOD" "${method_args[@]}" --learning-rate 1e-4 --max-steps $((STEPS + 1)) \
    --per-device-train-batch-size "$BATCH" --save-steps 0 --threads "$THREADS" --gradient-checkpointing >/dev/null 2>&1
  /usr/bin/python3 - "$W/out-$fam/metrics.jsonl" "$(cat "$W/rss")" "$fam" "$METHOD" "$SEQ" "$params" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][1:]
tps = sum(r["tokens"] for r in rows) / sum(r["tokens"] / r["tokens_per_s"] for r in rows)
print(f"{sys.argv[3]:14s} {sys.argv[4]:6s} {sys.argv[5]:>5s} {tps:10.1f} {int(sys.argv[2])/2**20:9.2f} GiB {sys.argv[6]}")
PY
  rm -rf "$W/$fam" "$W/out-$fam"
done
