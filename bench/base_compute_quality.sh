#!/usr/bin/env bash
# The quality cost of --base-compute: the same LoRA run (SmolLM2-135M shape, random init, LoRA r16
# all-linear) with each compute, from the same start on the same data, and its loss against f32's.
# The data is learnable (sequences from a fixed random bigram chain over 512 token ids), so the loss
# falls well below its start and the comparison is of a run that learns.
# Usage: bench/base_compute_quality.sh [BUILD_DIR]   (env: STEPS=200 SEQ=128 THREADS=2
#        COMPUTES="f32 bf16 int8" (those this CPU has), LR=1e-3)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
STEPS=${STEPS:-200}; SEQ=${SEQ:-128}; THREADS=${THREADS:-2}; LR=${LR:-1e-3}; COMPUTES=${COMPUTES:-"f32 bf16 int8"}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
"$B/lathe" init-model --arch llama --hidden-size 576 --intermediate-size 1536 --num-hidden-layers 30 \
  --num-attention-heads 9 --num-key-value-heads 3 --vocab-size 49152 --tie-word-embeddings --seed 1 \
  --output "$W/m" >/dev/null
/usr/bin/python3 - "$W/data.jsonl" "$SEQ" <<'PY'
import json, random, sys
random.seed(0)
V = 512
nxt = [[random.randrange(V) for _ in range(3)] for _ in range(V)]  # each id is followed by one of 3
with open(sys.argv[1], "w") as f:
    for _ in range(64):
        t = random.randrange(V); ids = []
        for _ in range(int(sys.argv[2])):
            ids.append(t); t = random.choice(nxt[t])
        f.write(json.dumps({"input_ids": ids}) + "\n")
PY
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for c in $COMPUTES; do
  "$B/lathe" train --model "$W/m" --data "$W/data.jsonl" --output "$W/out_$c" --method lora --lora-r 16 \
    --lora-alpha 32 --lora-target-modules all-linear --learning-rate "$LR" --max-steps "$STEPS" \
    --per-device-train-batch-size 1 --save-steps 0 --seed 1 --threads "$THREADS" --base-compute "$c" 2>"$W/err_$c" \
    || { tail -5 "$W/err_$c" >&2; echo "$c: failed (above)"; continue; }
done
/usr/bin/python3 - "$W" $COMPUTES <<'PY'
import json, os, sys
w = sys.argv[1]; runs = {}
for c in sys.argv[2:]:
    p = f"{w}/out_{c}/metrics.jsonl"
    if not os.path.exists(p): continue
    rows = [json.loads(l) for l in open(p)]
    runs[c] = ([r["loss"] for r in rows if "loss" in r], rows[-1].get("base_compute"),
               sum(r["tokens"] for r in rows if "loss" in r) / sum(r["tokens"] / r["tokens_per_s"] for r in rows if "loss" in r))
f = runs.get("f32")
print(f"{'compute':8s} {'recorded':8s} {'first':>8s} {'last-10 mean':>13s} {'vs f32':>9s} {'max |d| per step':>17s} {'tok/s':>7s}")
for c, (l, rec, tps) in runs.items():
    last = sum(l[-10:]) / len(l[-10:])
    ref = sum(f[0][-10:]) / len(f[0][-10:]) if f else None
    rel = f"{100 * (last / ref - 1):+.3f}%" if f else "-"
    d = max(abs(a - b) for a, b in zip(l, f[0])) if f else 0
    print(f"{c:8s} {str(rec):8s} {l[0]:8.4f} {last:13.4f} {rel:>9s} {d:17.4f} {tps:7.1f}")
PY
