#!/usr/bin/env bash
# Preference-training benchmark: a DPO step (LoRA, reference = base with the adapter off) of lathe vs
# the PyTorch eager reference (bench/ref_torch_pref.py), same shape, same threads; and lathe's peak
# RSS for DPO vs SFT LoRA on the same sequences (DPO: 1 pair per micro-batch = 2 rows of
# PROMPT+COMPLETION tokens; SFT: the same 2 rows as a batch of 2), target ratio <= 1.15.
# Random weights (SmolLM2-135M shape unless LAYERS is smaller), random ids, LoRA r=16 all-linear.
# Usage: bench/pref_bench.sh [BUILD_DIR]   (env: THREADS=2 STEPS=2 PROMPT=128 COMPLETION=128 LAYERS=30
#        REF_CORETYPE=: e.g. Haswell or SkylakeX gives the reference's OpenBLAS the kernels lathe selects, see
#        bench/train_bench.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
THREADS=${THREADS:-2}; STEPS=${STEPS:-2}; PROMPT=${PROMPT:-128}; COMPLETION=${COMPLETION:-128}; LAYERS=${LAYERS:-30}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
"$B/lathe" init-model --arch llama --hidden-size 576 --intermediate-size 1536 --num-hidden-layers "$LAYERS" \
  --num-attention-heads 9 --num-key-value-heads 3 --vocab-size 49152 --tie-word-embeddings --seed 1 \
  --output "$W/m" >/dev/null
# One pre-tokenized pair (repeated: every step sees the same shape), and the same two rows for SFT.
/usr/bin/python3 - "$W" "$PROMPT" "$COMPLETION" <<'PY'
import json, random, sys
w, P, C = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(0)
ids = lambda n: [random.randrange(49152) for _ in range(n)]
p, c, r = ids(P), ids(C), ids(C)
with open(w + "/pref.jsonl", "w") as f:
    f.write(json.dumps({"prompt_input_ids": p, "chosen_input_ids": c, "rejected_input_ids": r}) + "\n")
with open(w + "/sft.jsonl", "w") as f:
    for comp in (c, r):
        f.write(json.dumps({"input_ids": p + comp, "labels": [-100] * P + comp}) + "\n")
PY
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ref=$(${REF_CORETYPE:+env OPENBLAS_CORETYPE=$REF_CORETYPE} /usr/bin/python3 bench/ref_torch_pref.py --threads "$THREADS" --layers "$LAYERS" --prompt-len "$PROMPT" \
  --completion-len "$COMPLETION" --pairs 1 --steps "$STEPS")
common=(--model "$W/m" --lora-r 16 --lora-alpha 32 --lora-target-modules all-linear --learning-rate 1e-4
        --max-steps $((STEPS + 1)) --save-steps 0 --threads "$THREADS" --max-seq-length $((PROMPT + COMPLETION)))
/usr/bin/time -f "%M" -o "$W/rss_dpo" "$B/lathe" train "${common[@]}" --data "$W/pref.jsonl" --output "$W/dpo" \
  --method dpo --per-device-train-batch-size 1 2>/dev/null
/usr/bin/time -f "%M" -o "$W/rss_sft" "$B/lathe" train "${common[@]}" --data "$W/sft.jsonl" --output "$W/sft" \
  --method lora --per-device-train-batch-size 2 --no-shuffle 2>/dev/null
export REF_CORETYPE=${REF_CORETYPE:-}
/usr/bin/python3 - "$ref" "$W" "$LAYERS" "$PROMPT" "$COMPLETION" <<'PY'
import json, os, sys
ref = json.loads(sys.argv[1]); w = sys.argv[2]
def rows(name):
    return [json.loads(l) for l in open(f"{w}/{name}/metrics.jsonl") if '"loss"' in l][1:]  # step 1 warms up
def tps(rs):
    return sum(r["tokens"] for r in rs) / sum(r["tokens"] / r["tokens_per_s"] for r in rs)
dpo, sft = tps(rows("dpo")), tps(rows("sft"))
rss = {k: int(open(f"{w}/rss_{k}").read()) * 1024 for k in ("dpo", "sft")}
print(f"shape: SmolLM2-135M with {sys.argv[3]} layers, 1 pair = 2 rows of {sys.argv[4]}+{sys.argv[5]} tokens, LoRA r16 all-linear")
print(f"DPO step: lathe {dpo:7.1f} tok/s   reference {ref['tokens_per_s']:7.1f} tok/s ({ref['impl']}, OPENBLAS_CORETYPE={os.environ.get('REF_CORETYPE') or 'default'})   ratio {dpo/ref['tokens_per_s']:.2f}x")
print(f"SFT step (same rows): lathe {sft:7.1f} tok/s   DPO/SFT time ratio {sft/dpo:.2f} (reference forward + policy forward/backward vs forward/backward)")
print(f"peak RSS: DPO {rss['dpo']/2**20:8.1f} MiB   SFT {rss['sft']/2**20:8.1f} MiB   ratio {rss['dpo']/rss['sft']:.3f} (target <= 1.15)"
      f"   reference DPO {ref['peak_rss_bytes']/2**20:.1f} MiB")
PY
