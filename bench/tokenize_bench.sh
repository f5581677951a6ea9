#!/usr/bin/env bash
# Encode throughput of lathe vs the @huggingface/tokenizers reference on a generated mixed
# Korean/English corpus (plus ko_easylaw answers when the fixtures are present), Qwen3 and Llama 3.
#   bench/tokenize_bench.sh [BUILD_DIR] [MB]
# Needs: BUILD_DIR/bench/tokenize_bench, the fixtures, node, and the reference package installed in
# TOKREF_DIR (default /tmp/tokref: npm install --ignore-scripts @huggingface/tokenizers).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
mb=${2:-4}
fx=$root/../shared/fixtures
corpus=$(mktemp /tmp/lathe-tok-corpus-XXXXXX.txt)
trap 'rm -f "$corpus"' EXIT
python3 - "$corpus" "$mb" "$fx" <<'PY'
import json, os, random, sys
out, mb, fx = sys.argv[1], float(sys.argv[2]), sys.argv[3]
random.seed(7)
ko = ["제{}조(목적) 이 법은 국민의 생활 안전을 보장함을 목적으로 한다.", "임대차 계약이 끝나면 보증금을 돌려받을 수 있습니다.",
      "근로자는 근로계약서를 서면으로 받아야 합니다.", "안녕하세요, 법률 상담을 받고 싶습니다. 😀", "과태료는 {}원 이하입니다."]
en = ["The tenant may terminate the lease after {} months.", "Fine-tuning with LoRA keeps the base weights frozen.",
      "def f(x):\n    return x * {}\n", "Results: accuracy {}%, loss 0.{}"]
texts = []
law = os.path.join(fx, "datasets/ko_easylaw/easylaw_kr_생활법령.json")
if os.path.exists(law):
    texts += [r.get("output", "") for r in json.load(open(law, encoding="utf-8"))]
with open(out, "w", encoding="utf-8") as f:
    n = 0
    while n < mb * 1e6:
        if texts and random.random() < 0.5:
            s = random.choice(texts)
        else:
            s = " ".join(random.choice(ko + en).format(random.randint(1, 999), random.randint(1, 99)) for _ in range(4))
        line = s.replace("\n", " ") + "\n"
        f.write(line)
        n += len(line.encode())
PY
echo "corpus: $(du -h "$corpus" | cut -f1) mixed Korean/English"
for name in qwen3 llama3; do
  dir=$fx/tokenizers/$name
  [ -f "$dir/tokenizer.json" ] || { echo "skip $name (fixture absent)"; continue; }
  echo "== $name"
  ours=$("$build/bench/tokenize_bench" "$dir" "$corpus" 2)
  echo "$ours"
  ref=$(node "$root/tools/tokenizer_ref/bench_ref.mjs" "$dir" "$corpus")
  echo "$ref"
  a=$(echo "$ours" | sed -E 's/.*single: ([0-9.]+) MB.*/\1/')
  b=$(echo "$ref" | sed -E 's/.*single: ([0-9.]+) MB.*/\1/')
  python3 -c "print('ratio lathe/reference (single thread): %.2fx' % ($a / $b))"
done
