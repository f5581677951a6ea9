#!/usr/bin/env python3
"""The reference a user would script: Python's sqlite3 with FTS5 (unicode61 words, the default
tokenizer), one row per Markdown section, and the same questions. Prints build MB/s, query latency
and hit@5 as JSON for bench/retrieval_bench.sh.
Usage: retrieval_ref_fts5.py CORPUS_DIR DB_PATH"""
import glob, json, os, re, sqlite3, sys, time

corpus, db_path = sys.argv[1], sys.argv[2]
if os.path.exists(db_path):
    os.remove(db_path)
t0 = time.time()
db = sqlite3.connect(db_path)
db.execute("CREATE VIRTUAL TABLE p USING fts5(text, file UNINDEXED)")
nbytes = 0
for path in sorted(glob.glob(os.path.join(corpus, "docs", "*.md"))):
    text = open(path, encoding="utf-8").read()
    nbytes += len(text.encode())
    for sec in re.split(r"\n(?=#)", text):
        if sec.strip():
            db.execute("INSERT INTO p(text, file) VALUES (?, ?)", (sec, os.path.basename(path)))
db.commit()
build = time.time() - t0
qs = [json.loads(l) for l in open(os.path.join(corpus, "questions.jsonl"), encoding="utf-8")]
lat, hits = [], 0
for q in qs:
    terms = [t for t in re.findall(r"\w+", q["query"])]
    expr = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    t1 = time.time()
    rows = db.execute("SELECT text, file FROM p WHERE p MATCH ? ORDER BY rank LIMIT 5", (expr,)).fetchall()
    lat.append(time.time() - t1)
    hits += any(f == q["doc"] and q["answer"] in t for t, f in rows)
lat.sort()
print(json.dumps({"build_s": build, "mb_per_s": nbytes / 1e6 / build, "p50_ms": 1e3 * lat[len(lat) // 2],
                  "p99_ms": 1e3 * lat[int(len(lat) * 0.99)], "hit_at_5": hits / len(qs)}))
