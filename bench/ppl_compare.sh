#!/usr/bin/env bash
# Perplexity of each GGUF type against f32, lathe next to llama.cpp on the same file and the same token
# ids (docs/quant.md, "Against llama.cpp"). Each model is written as one GGUF per type in TYPES
# (f32/f16: `lathe export --format gguf`, block types: `lathe quantize`; a type lathe cannot write yet
# is skipped with a note); `lathe perplexity --ids-file --context-length` and bench/llamacpp_ppl.mjs
# (node-llama-cpp 3.21.1) score the same ids with the same windows. Cases:
#   stories260K   the fixture (../shared/fixtures/models/stories260K-hf) on bench/data/tinystory_en.txt
#   stories260K-gguf  llama.cpp's own stories260K.gguf (the file its CI uses) on the same text: every
#                 row's GGUF is written by lathe from llama.cpp's file (a GGUF source)
#   example       the bundled example's tuned model (EXAMPLE_OUT/export/merged) on its validation split
#                 (EXAMPLE_OUT/data/validation.tokens-*.safetensors: the QA records as the pipeline
#                 tokenized them, every token scored)
#   example-base  the example's pre-trained base (EXAMPLE_OUT/base/model) on general_holdout.md
# EXAMPLE_OUT is the `out/` of a finished `lathe run` of examples/acme-policy-qa (scripts/run_example.sh
# leaves it in out/acme-policy-qa/out); without it the example cases are skipped with a note.
# Usage: bench/ppl_compare.sh [BUILD_DIR]
# env: TYPES="f32 f16 q8_0 q4_0 q4_k q6_k" THREADS=1 LLAMA_KV=f32 EXAMPLE_OUT=DIR NLC_DIR=DIR
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(cd "${1:-build}" && pwd)
TYPES=${TYPES:-f32 f16 q8_0 q4_0 q4_k q6_k}; THREADS=${THREADS:-1}; LLAMA_KV=${LLAMA_KV:-f32}
EXAMPLE_OUT=${EXAMPLE_OUT:-$PWD/out/acme-policy-qa/out}
STORIES=$PWD/../shared/fixtures/models/stories260K-hf
NLC=$(bench/setup_llamacpp.sh)
cp bench/llamacpp_ppl.mjs "$NLC/"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT

text_ids() {  # model text_file out.jsonl: the text as one sequence, tokenized as lathe perplexity --text-file does
  "$B/lathe" tokenize --tokenizer "$1" --file "$2" --add-special-tokens --json |
    /usr/bin/python3 -c 'import json,sys; print(json.dumps({"input_ids": json.load(sys.stdin)["ids"]}))' > "$3"
}
tokens_ids() {  # tokens.safetensors out.jsonl: one sequence per record (seq_offsets), as the pipeline tokenized them
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
def arr(name, fmt, size):
    lo, hi = head[name]["data_offsets"]
    b = raw[8 + n + lo:8 + n + hi]
    return list(struct.unpack(f"<{len(b) // size}{fmt}", b))
ids, offs = arr("input_ids", "i", 4), arr("seq_offsets", "q", 8)
with open(sys.argv[2], "w") as f:
    for a, b in zip(offs, offs[1:]):
        f.write(json.dumps({"input_ids": ids[a:b]}) + "\n")
PY
}

cases=()
if [ -d "$STORIES" ]; then
  text_ids "$STORIES" bench/data/tinystory_en.txt "$W/stories260K.jsonl"; cases+=("stories260K|$STORIES|tinystory_en.txt")
else echo "note: $STORIES not found: stories260K skipped"; fi
STORIES_GGUF=$PWD/../shared/fixtures/models/gguf/stories260K.gguf
if [ -f "$STORIES_GGUF" ]; then
  text_ids "$STORIES_GGUF" bench/data/tinystory_en.txt "$W/stories260K-gguf.jsonl"
  cases+=("stories260K-gguf|$STORIES_GGUF|tinystory_en.txt")
fi
if [ -d "$EXAMPLE_OUT/export/merged" ] && ls "$EXAMPLE_OUT"/data/validation.tokens-*.safetensors >/dev/null 2>&1; then
  for f in "$EXAMPLE_OUT"/data/validation.tokens-*.safetensors; do tokens_ids "$f" /dev/stdout; done > "$W/example.jsonl"
  cases+=("example|$EXAMPLE_OUT/export/merged|validation split")
  text_ids "$EXAMPLE_OUT/base/model" examples/acme-policy-qa/general_holdout.md "$W/example-base.jsonl"
  cases+=("example-base|$EXAMPLE_OUT/base/model|general_holdout.md")
else echo "note: no finished example run at $EXAMPLE_OUT (scripts/run_example.sh, or set EXAMPLE_OUT=): example cases skipped"; fi

echo "== $(date -u +%FT%TZ) $(uptime)"
for c in "${cases[@]}"; do
  IFS='|' read -r name model text <<<"$c"
  # The window: the model's context (stories260K's GGUF says 2048 but was trained at 512, its HF config's value).
  if [ -d "$model" ]; then ctx=$(/usr/bin/python3 -c "import json; print(json.load(open('$model/config.json'))['max_position_embeddings'])")
  else ctx=512; fi
  ref=$("$B/lathe" perplexity --model "$model" --weights f32 --ids-file "$W/$name.jsonl" --context-length "$ctx" --threads "$THREADS" --json)
  echo "$name|$text|hf|lathe|$ref"
  for ty in $TYPES; do
    f="$W/$name.$ty.gguf"
    case $ty in
      f32|f16) cmd=("$B/lathe" export --model "$model" --format gguf --gguf-type "$ty" --output "$f") ;;
      *) cmd=("$B/lathe" quantize --model "$model" --type "$ty" --output "$f") ;;
    esac
    if ! "${cmd[@]}" >/dev/null 2>"$W/err"; then
      echo "note: skipping $name $ty: lathe cannot write it yet ($(grep -v '^note:' "$W/err" | head -1))" >&2; continue
    fi
    echo "$name|$text|$ty|lathe|$("$B/lathe" perplexity --model "$f" --ids-file "$W/$name.jsonl" --context-length "$ctx" --threads "$THREADS" --json)"
    for kv in $LLAMA_KV; do
      echo "$name|$text|$ty|llama.cpp-kv$kv|$(cd "$NLC" && node llamacpp_ppl.mjs "$f" "$W/$name.jsonl" "$ctx" "$THREADS" "$kv")"
    done
  done
done > "$W/ppl.txt"
/usr/bin/python3 - "$W/ppl.txt" <<'PY'
import json, sys
rows = [l.rstrip("\n").split("|", 4) for l in open(sys.argv[1])]
res = {}
for name, text, ty, impl, js in rows:
    res.setdefault((name, text), {}).setdefault(ty, {})[impl] = json.loads(js)
for (name, text), d in res.items():
    hf = d["hf"]["lathe"]
    print(f"\n{name} on {text}: {hf['tokens']} predicted tokens; lathe on the source model, --weights f32: ppl {hf['ppl']:.4f}")
    impls = sorted({i for t in d.values() for i in t if i != "lathe"})
    print("| GGUF | lathe ppl | vs f32 | " + " | ".join(f"{i} ppl | vs f32 | lathe / {i}" for i in impls) + " |")
    print("| --- | ---: | ---: |" + " ---: | ---: | ---: |" * len(impls))
    f32 = d.get("f32", {})
    for ty, t in d.items():
        if ty == "hf":
            continue
        a = t["lathe"]["ppl"]
        line = f"| {ty} | {a:.4f} | {100 * (a / f32['lathe']['ppl'] - 1):+.2f}% |" if "lathe" in f32 else f"| {ty} | {a:.4f} | - |"
        for i in impls:
            if i in t:
                b = t[i]["ppl"]
                vs = f"{100 * (b / f32[i]['ppl'] - 1):+.2f}%" if i in f32 else "-"
                line += f" {b:.4f} | {vs} | {100 * (a / b - 1):+.3f}% |"
            else:
                line += " - | - | - |"
        print(line)
PY
