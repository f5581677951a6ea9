#!/usr/bin/env bash
# Training benchmark: lathe vs the PyTorch eager reference, same shape, same threads, one run.
# SmolLM2-135M shape, seq 512, LoRA r=16 on all linear layers (or full FT), random weights and ids.
# Usage: bench/train_bench.sh [BUILD_DIR]   (env: THREADS=2 BATCH=1 METHOD=lora|qlora|full|prefix STEPS=3
#        PREFIX_LEN=20 REF_CORETYPE= PROFILE=1 (lathe's per-phase step profile) REF=0 (skip the reference)
#        LATHE_ARGS="..." (extra `lathe train` flags))
# lathe re-selects OpenBLAS's AVX-512/AVX2 kernels when the library falls back to its generic
# "Prescott" ones on a CPU model it does not know; PyTorch's OpenBLAS does not. REF_CORETYPE=SkylakeX
# gives the reference those kernels too (OPENBLAS_CORETYPE), for a like-for-like comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
THREADS=${THREADS:-2}; BATCH=${BATCH:-1}; METHOD=${METHOD:-lora}; STEPS=${STEPS:-3}; SEQ=${SEQ:-512}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
"$B/lathe" init-model --arch llama --hidden-size 576 --intermediate-size 1536 --num-hidden-layers 30 \
  --num-attention-heads 9 --num-key-value-heads 3 --vocab-size 49152 --tie-word-embeddings --seed 1 \
  --output "$W/m" >/dev/null
/usr/bin/python3 - "$W/data.jsonl" "$BATCH" "$SEQ" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        f.write(json.dumps({"input_ids": [random.randrange(49152) for _ in range(int(sys.argv[3]))]}) + "\n")
PY
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
PREFIX_LEN=${PREFIX_LEN:-20}
case "$METHOD" in full) refm=full ;; prefix) refm=prefix ;; *) refm=lora ;; esac
method_args=(--lora-r 16 --lora-alpha 32 --lora-target-modules all-linear)
[ "$METHOD" = prefix ] && method_args=(--num-virtual-tokens "$PREFIX_LEN")
if [ "${REF:-1}" = 0 ]; then ref='{"impl":"(skipped)","method":"-","tokens_per_s":1,"peak_rss_bytes":1}'; else
ref=$(${REF_CORETYPE:+env OPENBLAS_CORETYPE=$REF_CORETYPE} /usr/bin/python3 bench/ref_torch_train.py --threads "$THREADS" \
  --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --method "$refm" --prefix-len "$PREFIX_LEN"); fi
[ "${PROFILE:-0}" = 1 ] && export LATHE_PROFILE=1
/usr/bin/time -f "%M" -o "$W/rss" "$B/lathe" train --model "$W/m" --data "$W/data.jsonl" --output "$W/out" \
  --method "$METHOD" "${method_args[@]}" --learning-rate 1e-4 \
  --max-steps $((STEPS + 1)) --per-device-train-batch-size "$BATCH" --save-steps 0 --threads "$THREADS" ${LATHE_ARGS:-} 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
peak=$("$B/bench/sgemm_peak" "$THREADS")
export REF_CORETYPE=${REF_CORETYPE:-}
/usr/bin/python3 - "$ref" "$W/out/metrics.jsonl" "$(cat "$W/rss")" "$peak" "$SEQ" "$METHOD" <<'PY'
import json, os, sys
ref = json.loads(sys.argv[1]); rows = [json.loads(l) for l in open(sys.argv[2]) if '"loss"' in l]
rss = int(sys.argv[3]) * 1024; peak = json.loads(sys.argv[4]); T = int(sys.argv[5]); method = sys.argv[6]
rows = rows[1:]  # the first step warms up
tps = sum(r["tokens"] for r in rows) / sum(r["tokens"] / r["tokens_per_s"] for r in rows)
N = 134.5e6; attn = 2 * 2 * 30 * 9 * 64 * T / 2
flops = (6 if method == "full" else 4) * N + 3 * attn
g = tps * flops / 1e9
print(f"reference: {ref['impl']} ({ref['method']}), OPENBLAS_CORETYPE={os.environ.get('REF_CORETYPE') or '(library default)'}")
print(f"{method:5s} seq {T}: lathe {tps:7.1f} tok/s   reference {ref['tokens_per_s']:7.1f} tok/s   ratio {tps/ref['tokens_per_s']:.2f}x (target >= 1.5x)")
print(f"peak RSS  : lathe {rss/2**20:8.1f} MiB   reference {ref['peak_rss_bytes']/2**20:8.1f} MiB   ratio {rss/ref['peak_rss_bytes']:.2f}")
print(f"GFLOP/s   : lathe {g:.1f} = MFU {100*g/peak['gflops']:.0f}% of measured sgemm peak {peak['gflops']:.1f}")
PY
if [ "${PROFILE:-0}" = 1 ]; then sed -n '/step profile/,$p' "$W/err" | grep -v '^lathe train: data parallel'; fi
