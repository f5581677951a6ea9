#!/usr/bin/env bash
# Before/after benchmark of two lathe builds (e.g. a refactor against the commit before it), same
# shapes as infer_bench.sh / train_bench.sh (SmolLM2-135M shape, random weights), the two builds
# run alternately ROUNDS times so machine load hits both alike. Prints the median of each and the
# ratio after/before; timing noise on a shared 2-core machine is a few percent.
# Usage: bench/before_after.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR   (env: THREADS=2 ROUNDS=3 PROMPT=512
#        NEW=32 SEQ=512 STEPS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?before build dir}; B=${2:?after build dir}
THREADS=${THREADS:-2}; ROUNDS=${ROUNDS:-3}; PROMPT=${PROMPT:-512}; NEW=${NEW:-32}; SEQ=${SEQ:-512}; STEPS=${STEPS:-3}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
"$B/lathe" init-model --arch llama --hidden-size 576 --intermediate-size 1536 --num-hidden-layers 30 \
  --num-attention-heads 9 --num-key-value-heads 3 --vocab-size 49152 --tie-word-embeddings --seed 1 \
  --output "$W/m" >/dev/null
ids=$(/usr/bin/python3 -c "import random; random.seed(0); print(','.join(str(random.randrange(49152)) for _ in range($PROMPT)))")
/usr/bin/python3 -c "
import json, random; random.seed(0)
print(json.dumps({'input_ids': [random.randrange(49152) for _ in range($SEQ)]}))" > "$W/data.jsonl"
for r in $(seq "$ROUNDS"); do
  for side in before after; do
    d=$A; [ $side = after ] && d=$B
    "$d/lathe" generate --model "$W/m" --prompt-ids "$ids" --max-new-tokens "$NEW" --stop-ids -1 \
      --threads "$THREADS" --stats 2>&1 >/dev/null | tail -1 >> "$W/gen_$side.jsonl"
    for method in lora full; do
      rm -rf "$W/out"
      "$d/lathe" train --model "$W/m" --data "$W/data.jsonl" --output "$W/out" --method $method \
        --lora-r 16 --lora-alpha 32 --lora-target-modules all-linear --learning-rate 1e-4 \
        --max-steps $((STEPS + 1)) --save-steps 0 --threads "$THREADS" >/dev/null 2>&1
      grep '"loss"' "$W/out/metrics.jsonl" | tail -n +2 | sed "s/^/{\"method\":\"$method\",\"row\":/; s/$/}/" >> "$W/train_$side.jsonl"
    done
  done
done
/usr/bin/python3 - "$W" "$A" "$B" <<'PY'
import json, statistics, sys
w, a, b = sys.argv[1:4]
def rows(p): return [json.loads(l) for l in open(p) if l.strip()]
def med(xs): return statistics.median(xs)
print(f"before: {a}\nafter:  {b}")
print(f"{'measure':32s} {'before':>10s} {'after':>10s} {'after/before':>13s}")
g = {s: rows(f"{w}/gen_{s}.jsonl") for s in ("before", "after")}
for key, name in (("prefill_tok_s", "prefill tok/s"), ("decode_tok_s", "decode tok/s"), ("peak_rss_bytes", "generate peak RSS MiB")):
    x = [med([r[key] for r in g[s]]) / (2**20 if "rss" in key else 1) for s in ("before", "after")]
    print(f"{name:32s} {x[0]:10.1f} {x[1]:10.1f} {x[1]/x[0]:13.3f}")
t = {s: rows(f"{w}/train_{s}.jsonl") for s in ("before", "after")}
for m in ("lora", "full"):
    x = [med([r["row"]["tokens_per_s"] for r in t[s] if r["method"] == m]) for s in ("before", "after")]
    print(f"{'train ' + m + ' tok/s':32s} {x[0]:10.1f} {x[1]:10.1f} {x[1]/x[0]:13.3f}")
    l = [[r["row"]["loss"] for r in t[s] if r["method"] == m] for s in ("before", "after")]
    print(f"{'train ' + m + ' losses identical':32s} {str(l[0] == l[1]):>10s}")
PY
