#!/usr/bin/env bash
# Decode with quantized weights (docs/quant.md "In the model"): lathe generate --weights f32 | q8_0 |
# q4_0 on the SmolLM2-135M shape (hidden 576, ffn 1536, 30 layers, 9/3 heads, vocab 49152, tied),
# random weights from `lathe init-model`, quantized on load. Prints decode and prefill tokens/s
# (median of RUNS runs), the ratio to f32 (the machine's throughput swings, so ratios), peak RSS and
# the weight bytes held. With TOKENIZER=DIR (a tokenizer.json of at most 49152 tokens, padded to the
# vocabulary; a GGUF needs one: the stories260K fixture's will do) also the Q8_0 / Q4_0 GGUF from
# `lathe quantize`, which should decode at the --weights speed (the same blocks, used in place from
# the mapping: peak RSS near the weights held).
# Usage: bench/decode_bench.sh [BUILD_DIR]   (env: THREADS=2 PROMPT=32 NEW=64 RUNS=5 TOKENIZER=)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
THREADS=${THREADS:-2}; PROMPT=${PROMPT:-32}; NEW=${NEW:-64}; RUNS=${RUNS:-5}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
uptime
lscpu | grep -E "Model name|^L3" || true
"$B/lathe" init-model --arch llama --hidden-size 576 --intermediate-size 1536 --num-hidden-layers 30 \
  --num-attention-heads 9 --num-key-value-heads 3 --vocab-size 49152 --tie-word-embeddings --seed 1 \
  ${TOKENIZER:+--tokenizer "$TOKENIZER"} --output "$W/smollm2-shape" >/dev/null
if [ -n "${TOKENIZER:-}" ]; then
  for t in q8_0 q4_0; do "$B/lathe" quantize --model "$W/smollm2-shape" --type $t --output "$W/$t.gguf" >/dev/null; done
fi
ids=$(/usr/bin/python3 -c "import random; random.seed(0); print(','.join(str(random.randrange(49152)) for _ in range($PROMPT)))")
one() {  # label, then generate's model arguments: one JSON line
  local label=$1; shift
  echo "$label $("$B/lathe" generate "$@" --prompt-ids "$ids" --max-new-tokens "$NEW" --stop-ids -1 \
                   --threads "$THREADS" --stats 2>&1 >/dev/null | tail -1)"
}
# Interleaved (run 1 of every variant, then run 2, ...), so a change in the machine's load hits
# every variant alike instead of one of them.
for r in $(seq "$RUNS"); do
  one f32 --model "$W/smollm2-shape" --weights f32
  one q8_0 --model "$W/smollm2-shape" --weights q8_0
  one q4_0 --model "$W/smollm2-shape" --weights q4_0
  for t in q8_0 q4_0; do [ -f "$W/$t.gguf" ] && one "$t.gguf" --model "$W/$t.gguf"; done
done > "$W/runs.txt"
/usr/bin/python3 - "$W/runs.txt" "$THREADS" "$PROMPT" "$NEW" "$RUNS" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, js = line.split(" ", 1)
    rows.setdefault(label, []).append(json.loads(js))
T, P, N, R = sys.argv[2:6]
print(f"SmolLM2-135M shape, {T} threads, prompt {P}, {N} new tokens, median of {R} runs")
base = statistics.median(r["decode_tok_s"] for r in rows["f32"])
pbase = statistics.median(r["prefill_tok_s"] for r in rows["f32"])
print(f"{'weights':10} {'decode tok/s':>12} {'vs f32':>7} {'min/med':>7} {'prefill tok/s':>13} {'vs f32':>7} {'weights MiB':>11} {'peak RSS MiB':>12}")
for label, rs in rows.items():
    d = [r["decode_tok_s"] for r in rs]
    med, pre = statistics.median(d), statistics.median(r["prefill_tok_s"] for r in rs)
    print(f"{label:10} {med:12.1f} {med/base:6.2f}x {min(d)/med:7.2f} {pre:13.1f} {pre/pbase:6.2f}x "
          f"{rs[0]['weight_bytes']/2**20:11.1f} {max(r['peak_rss_bytes'] for r in rs)/2**20:12.1f}")
PY
