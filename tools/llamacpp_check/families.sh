#!/usr/bin/env bash
# llama.cpp agreement of lathe's GGUF export for every family llama.cpp runs (developer check, not
# part of the build; see README.md). For each family: a random model from `lathe init-model` (shapes
# llama.cpp accepts, norms perturbed so their placement and Gemma's 1 + w storage matter), exported as
# F32 and F16 GGUF; llama.cpp's greedy ids on each GGUF are compared with `lathe generate` on the HF
# directory (and, for F16, with lathe on the same GGUF). Prints one table row per family: how many of
# the N ids agree before the first difference.
#
#   tools/llamacpp_check/families.sh LATHE_BINARY NLC_DIR [N=96] [WORK_DIR]
# NLC_DIR: a directory where `npm install node-llama-cpp@3.21.1` was run.
set -euo pipefail
LATHE=$(realpath "${1:?lathe binary}")
NLC=$(realpath "${2:?directory with node_modules/node-llama-cpp}")
N=${3:-96}
WORK=${4:-$(mktemp -d)}
HERE=$(cd "$(dirname "$0")" && pwd)
TOK=${TOKENIZER:-$HERE/../../../shared/fixtures/models/stories260K-hf}
PROMPT=1,403,407,261,378
cp "$HERE/greedy_ids.mjs" "$NLC/"
mkdir -p "$WORK"

# A row per family: name | init-model flags | config.json patch (JSON) | initializer_range (default
# 0.2). The shapes are small but realistic for llama.cpp (head_dim 32, GQA, several layers), windows
# shorter than the sequence. Gemma gets 0.02: its embeddings are scaled by sqrt(hidden) and tied to
# lm_head, so larger ones make every step repeat the previous token, which would test little.
LONG='[1.0,1.1,1.3,1.6,2.0,2.6,3.3,4.2,5.4,6.9,8.8,11.0]'
SHORT='[1.0,1.0,1.05,1.1,1.2,1.3,1.45,1.6,1.8,2.0,2.2,2.5]'
FAMILIES=(
  "gemma2|--hidden-size 64 --arch gemma2 --num-hidden-layers 4 --head-dim 32 --query-pre-attn-scalar 32 --sliding-window 8|{}|0.02"
  "gemma3|--hidden-size 64 --arch gemma3 --num-hidden-layers 6 --head-dim 32 --query-pre-attn-scalar 32 --sliding-window 8 --sliding-window-pattern 3 --rope-theta 1000000 --rope-local-base-freq 10000|{\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0}}|0.02"
  "phi3|--arch phi3 --hidden-size 128 --num-hidden-layers 4 --num-attention-heads 4 --head-dim 32 --partial-rotary-factor 0.75 --max-position-embeddings 131072 --sliding-window 0|{\"rope_scaling\":{\"rope_type\":\"longrope\",\"short_factor\":$SHORT,\"long_factor\":$LONG},\"original_max_position_embeddings\":4096}"
  "smollm3|--hidden-size 64 --arch smollm3 --num-hidden-layers 4 --head-dim 32|{}"
  "exaone|--hidden-size 64 --arch exaone --num-hidden-layers 4 --head-dim 32 --rope-theta 500000|{\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64}}"
  "exaone4|--hidden-size 128 --arch exaone4 --num-hidden-layers 4 --head-dim 32 --sliding-window 0|{}"
  "exaone4-hybrid64|--hidden-size 128 --arch exaone4 --num-hidden-layers 64 --head-dim 32 --sliding-window 8 --sliding-window-pattern 4|{}"
  "llama3-rope|--hidden-size 64 --arch llama --num-hidden-layers 4 --head-dim 32 --rope-theta 500000|{\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":32.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64}}"
)

# Ids that agree before the first difference, as "k/N".
agree() {
  node -e 'const a=process.argv[1].trim().split(/\s+/),b=process.argv[2].trim().split(/\s+/);
           let k=0; while(k<a.length&&k<b.length&&a[k]===b[k])k++; console.log(`${k}/${a.length}`)' "$1" "$2"
}

printf '| family | distinct ids | llama.cpp F32 GGUF vs lathe HF | llama.cpp F16 GGUF vs lathe HF | llama.cpp F16 vs lathe F16 GGUF | notes |\n'
printf '|---|---|---|---|---|---|\n'
seed=1
for row in "${FAMILIES[@]}"; do
  IFS='|' read -r name flags patch range <<<"$row"
  dir=$WORK/$name
  rm -rf "$dir"
  # shellcheck disable=SC2086
  "$LATHE" init-model $flags --tokenizer "$TOK" \
    --intermediate-size 192 --num-key-value-heads 2 --initializer-range "${range:-0.2}" --seed $seed --output "$dir" >/dev/null
  node "$HERE/patch_model.mjs" "$dir" "$patch" 0.3 $seed >/dev/null
  notes=$("$LATHE" export --model "$dir" --format gguf --gguf-type f32 --output "$dir.f32.gguf" 2>&1 >/dev/null |
          sed -n 's/^note: llama.cpp: //p' | paste -sd ';' -)
  "$LATHE" export --model "$dir" --format gguf --gguf-type f16 --output "$dir.f16.gguf" >/dev/null 2>&1
  ref=$("$LATHE" generate --model "$dir" --prompt-ids $PROMPT --max-new-tokens "$N" --stop-ids 99999 2>/dev/null | tail -1)
  ref16=$("$LATHE" generate --model "$dir.f16.gguf" --prompt-ids $PROMPT --max-new-tokens "$N" --stop-ids 99999 2>/dev/null | tail -1)
  l32=$(cd "$NLC" && node greedy_ids.mjs "$dir.f32.gguf" $PROMPT "$N" f32 2>&1 | tail -1)
  l16=$(cd "$NLC" && node greedy_ids.mjs "$dir.f16.gguf" $PROMPT "$N" f32 2>&1 | tail -1)
  for out in "$l32" "$l16"; do  # a load error instead of ids goes into the notes
    [[ $out =~ ^[0-9\ ]+$ ]] || notes="${notes:+$notes; }llama.cpp: ${out:0:200}"
  done
  distinct=$(tr ' ' '\n' <<<"$ref" | sort -u | grep -c .)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$distinct" "$(agree "$l32" "$ref")" "$(agree "$l16" "$ref")" \
    "$(agree "$l16" "$ref16")" "${notes:-}"
  seed=$((seed + 1))
done
