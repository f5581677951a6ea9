#!/usr/bin/env bash
# Sets up everything and runs the bundled example end to end: the ACME policy QA project
# (examples/acme-policy-qa) through every stage of `lathe run` — build a small base model from the
# project's own text, prepare the data (report), index the documents, LoRA-tune, evaluate base vs
# prompting vs retrieval vs tuned vs tuned+retrieval
# (report + gate), export (PEFT, merged HF, GGUF) — then serve the tuned model and ask it one question
# through the OpenAI-compatible API, and rate the answer (feedback for the next round).
#   scripts/run_example.sh                 project copy in out/acme-policy-qa (rerun: unchanged stages skip)
#   LATHE_EXAMPLE_DIR=DIR scripts/run_example.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
LATHE_BUILD_TARGETS=lathe scripts/setup.sh build
LATHE=$root/build/lathe
DIR=${LATHE_EXAMPLE_DIR:-out/acme-policy-qa}
built=$(date +%s)

# A copy of the example, so the checkout stays clean; a second run reuses it and skips what is unchanged.
[ -f "$DIR/project.yaml" ] || "$LATHE" init "$DIR" --example acme-policy-qa
cd "$DIR"
echo "== lathe run ($(pwd)/project.yaml)"
set +e
"$LATHE" run
rc=$?
set -e
if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then echo "lathe run failed (exit $rc)"; exit $rc; fi
ran=$(date +%s)

echo "== serve smoke test: the tuned adapter behind the OpenAI-compatible API"
log=$(mktemp)
"$LATHE" serve --model out/base/model --adapter acme=out/train --port 0 --data-dir out/serve \
  --served-model-name acme-base > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 100); do
  port=$(sed -nE 's/.*listening on http:\/\/[^:]+:([0-9]+).*/\1/p' "$log")
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "lathe serve exited"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "lathe serve did not start"; exit 1; }
question='연차 휴가는 며칠 받을 수 있나요?'
echo "POST /v1/chat/completions  model=acme  \"$question\""
resp=$(curl -sS --fail-with-body "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "{\"model\":\"acme\",\"messages\":[{\"role\":\"user\",\"content\":\"$question\"}],\"max_tokens\":48,\"temperature\":0}")
echo "$resp"
id=$(echo "$resp" | sed -nE 's/.*"id":"([^"]+)".*/\1/p' | head -1)
# Rate the answer as a reviewer would: the policy says 15 days. A wrong answer gets a correction, which
# `lathe feedback export --corrections-only` turns into a training record for the next round.
if echo "$resp" | grep -q '15'; then
  fb="{\"completion_id\":\"$id\",\"rating\":1,\"comment\":\"correct\"}"
else
  fb="{\"completion_id\":\"$id\",\"rating\":-1,\"correction\":\"연차 휴가는 연 15일입니다.\"}"
fi
curl -sS --fail-with-body "http://127.0.0.1:$port/v1/feedback" -H 'Content-Type: application/json' -d "$fb" > /dev/null
echo "feedback stored for $id"
kill $pid; wait $pid 2>/dev/null || true
"$LATHE" feedback stats --data-dir out/serve | head -5
"$LATHE" feedback export --data-dir out/serve --output out/serve/feedback.jsonl | tail -n 1
end=$(date +%s)

echo
echo "== done in $((end - start)) s (setup+build $((built - start)) s, lathe run $((ran - built)) s, serve $((end - ran)) s)"
echo "   project:      $(pwd)"
echo "   data report:  $(pwd)/out/data/report.html"
echo "   eval report:  $(pwd)/out/eval/report.html"
echo "   adapter:      $(pwd)/out/export/peft   (merged HF model: out/export/merged, GGUF: out/export/*.gguf)"
echo "   pass rates:   $("$LATHE" runs | sed -n 2p | grep -oE '[a-z0-9_+.-]+=[0-9.]+' | tr '\n' ' ')(held-out paraphrased questions)"
exit $rc
