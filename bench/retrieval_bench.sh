#!/usr/bin/env bash
# Retrieval index speed and quality on a generated Korean/English policy corpus (bench/retrieval_bench_gen.py):
# `lathe index build` MB/s (full, then an unchanged rebuild), query latency p50/p99 and hit@5 of
# `lathe index search` for the bigram (default) and words analyzers, against the reference in the same
# run: Python's sqlite3 FTS5 with its default unicode61 tokenizer (bench/retrieval_ref_fts5.py).
# Usage: bench/retrieval_bench.sh [BUILD_DIR]   env: MB=20 (corpus size)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; MB=${MB:-20}
L=$PWD/$B/lathe
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
python3 bench/retrieval_bench_gen.py "$W/corpus" "$MB"
now() { date +%s.%N; }
for an in bigram words; do
  t0=$(now); "$L" index build --input "$W/corpus/docs" --output "$W/ix-$an" --analyzer $an --chunk-tokens 256 --no-progress > "$W/build-$an.txt"; t1=$(now)
  "$L" index build --input "$W/corpus/docs" --output "$W/ix-$an" --analyzer $an --chunk-tokens 256 --no-progress > "$W/rebuild-$an.txt"; t2=$(now)
  python3 - "$L" "$W/ix-$an" "$W/corpus/questions.jsonl" "$an" "$t0" "$t1" "$t2" "$MB" <<'PY' > "$W/lathe-$an.json"
import json, subprocess, sys, time
lathe, ix, qf, an, t0, t1, t2, mb = sys.argv[1:9]
build_s, rebuild_s = float(t1) - float(t0), float(t2) - float(t1)
qs = [json.loads(l) for l in open(qf, encoding="utf-8")]
# One process per query would time process start-up; `lathe index search` is timed as a user runs it,
# and the in-process search time is what eval and serve pay (reported by lathe eval as retrieval latency).
lat, hits = [], 0
for q in qs:
    t = time.time()
    out = subprocess.run([lathe, "index", "search", "--index", ix, "--query", q["query"], "--k", "5", "--json"],
                         capture_output=True, text=True, check=True).stdout
    lat.append(time.time() - t)
    hs = json.loads(out)["hits"]
    hits += any(h["file"].endswith(q["doc"]) and q["answer"] in h["text"] for h in hs)
lat.sort()
print(json.dumps({"analyzer": an, "build_s": float(build_s), "mb_per_s": float(mb) / float(build_s),
                  "rebuild_s": float(rebuild_s), "cli_p50_ms": 1e3 * lat[len(lat) // 2],
                  "cli_p99_ms": 1e3 * lat[int(len(lat) * 0.99)], "hit_at_5": hits / len(qs)}))
PY
done
python3 bench/retrieval_ref_fts5.py "$W/corpus" "$W/ref.sqlite" > "$W/ref.json"
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
ref = json.load(open(f"{w}/ref.json"))
print(f"reference (python3 sqlite3 FTS5 unicode61): build {ref['mb_per_s']:.1f} MB/s, query p50 {ref['p50_ms']:.2f} ms "
      f"p99 {ref['p99_ms']:.2f} ms (in-process), hit@5 {100 * ref['hit_at_5']:.1f}%")
for an in ["bigram", "words"]:
    r = json.load(open(f"{w}/lathe-{an}.json"))
    print(f"lathe {an:6s}: build {r['mb_per_s']:.1f} MB/s ({r['mb_per_s'] / ref['mb_per_s']:.2f}x the reference), "
          f"unchanged rebuild {r['rebuild_s']:.2f} s, `lathe index search` p50 {r['cli_p50_ms']:.1f} ms "
          f"p99 {r['cli_p99_ms']:.1f} ms (process start included), hit@5 {100 * r['hit_at_5']:.1f}% "
          f"({r['hit_at_5'] - ref['hit_at_5']:+.3f} vs the reference)")
PY
