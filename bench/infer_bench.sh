#!/usr/bin/env bash
# Inference benchmark: lathe vs the PyTorch eager reference, same shape, same thread count, one run.
# SmolLM2-135M shape (hidden 576, ffn 1536, 30 layers, 9/3 heads, vocab 49152, tied), random weights.
# Prints prefill tok/s at 512 tokens, decode tok/s, ratios, peak RSS vs weight bytes, GFLOP/s vs sgemm peak.
# Usage: bench/infer_bench.sh [BUILD_DIR]   (env: THREADS=2 PROMPT=512 NEW=64)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
THREADS=${THREADS:-2}; PROMPT=${PROMPT:-512}; NEW=${NEW:-64}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
"$B/lathe" init-model --arch llama --hidden-size 576 --intermediate-size 1536 --num-hidden-layers 30 \
  --num-attention-heads 9 --num-key-value-heads 3 --vocab-size 49152 --tie-word-embeddings --seed 1 \
  --output "$W/smollm2-shape" >/dev/null
ids=$(/usr/bin/python3 -c "import random; random.seed(0); print(','.join(str(random.randrange(49152)) for _ in range($PROMPT)))")
# Reference first (its peak RSS is its own process).
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ref=$(/usr/bin/python3 bench/ref_torch_infer.py --threads "$THREADS" --prompt "$PROMPT" --new "$NEW")
ours=$("$B/lathe" generate --model "$W/smollm2-shape" --prompt-ids "$ids" --max-new-tokens "$NEW" \
        --stop-ids -1 --threads "$THREADS" --stats 2>&1 >/dev/null | tail -1)
peak=$("$B/bench/sgemm_peak" "$THREADS")
/usr/bin/python3 - "$ref" "$ours" "$peak" "$PROMPT" <<'PY'
import json, sys
ref, ours, peak, P = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
N = 134.5e6  # matmul weights of the SmolLM2-135M shape (incl. tied lm_head)
C, L, H, D = 576, 30, 9, 64
attn = 2 * 2 * L * H * D * P / 2      # causal QK^T + PV per token, averaged over the prompt
flop_prefill = 2 * N + attn
print(f"reference: {ref['impl']}")
print(f"prefill  {P} tokens: lathe {ours['prefill_tok_s']:8.1f} tok/s   reference {ref['prefill_tok_s']:8.1f} tok/s   ratio {ours['prefill_tok_s']/ref['prefill_tok_s']:.2f}x (target >= 1.5x)")
print(f"decode            : lathe {ours['decode_tok_s']:8.1f} tok/s   reference {ref['decode_tok_s']:8.1f} tok/s   ratio {ours['decode_tok_s']/ref['decode_tok_s']:.2f}x (target >= 2x)")
print(f"peak RSS          : lathe {ours['peak_rss_bytes']/2**20:8.1f} MiB = {ours['peak_rss_bytes']/ours['weight_bytes']:.2f}x weight bytes ({ours['weight_bytes']/2**20:.1f} MiB; target <= 1.3x)   reference {ref['peak_rss_bytes']/2**20:.1f} MiB")
g = ours['prefill_tok_s'] * flop_prefill / 1e9
print(f"prefill GFLOP/s   : lathe {g:.1f} = {100*g/peak['gflops']:.0f}% of measured sgemm peak {peak['gflops']:.1f} (n={peak['sgemm_n']})")
PY
