#!/usr/bin/python3
"""Checks that the example's data still matches PLANTED.md and tests/cases.yaml after an edit.

- every JSONL line parses, except exactly the lines PLANTED.md lists as malformed-json;
- each exact-duplicate line equals an earlier line of the same file;
- the planted resident registration number has a valid check digit and the card number passes Luhn;
- no test prompt (tests/eval_prompts.jsonl) is a training question, and eval_prompts.jsonl matches cases.yaml;
- every contains/icontains key of a case occurs in its `expected` sentence;
- feedback/corrections.jsonl holds DPO pairs whose prompts are not test prompts.
Run from anywhere: /usr/bin/python3 examples/acme-policy-qa/tools/check_example.py (needs PyYAML).
"""
import csv, json, os, re, sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
errors = []


def planted_rows():
    rows = []
    for line in open(os.path.join(ROOT, "PLANTED.md"), encoding="utf-8"):
        m = re.match(r"\| (data/\S+) \| (\d+) \| ([a-z-]+) \| (.*) \|$", line.rstrip("\n"))
        if m:
            rows.append((m.group(1), int(m.group(2)), m.group(3), m.group(4)))
    return rows


def rrn_valid(digits):
    w = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
    return (11 - sum(int(d) * k for d, k in zip(digits, w)) % 11) % 10 == int(digits[12])


def luhn_valid(digits):
    total = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


rows = planted_rows()
lines = {f: open(os.path.join(ROOT, f), encoding="utf-8").read().split("\n")[:-1]
         for f in ("data/qa_ko.jsonl", "data/qa_en.jsonl", "data/qa_extra.csv")}
questions = set()
for f in ("data/qa_ko.jsonl", "data/qa_en.jsonl"):
    expected_bad = {r[1] for r in rows if r[0] == f and r[2] == "malformed-json"}
    bad = set()
    for n, text in enumerate(lines[f], 1):
        try:
            j = json.loads(text)
        except json.JSONDecodeError:
            bad.add(n)
            continue
        questions.add(j["question"] if "question" in j else j["messages"][0]["content"])
    if bad != expected_bad:
        errors.append(f"{f}: unparsable lines {sorted(bad)}, PLANTED.md lists {sorted(expected_bad)}")
with open(os.path.join(ROOT, "data/qa_extra.csv"), encoding="utf-8", newline="") as fh:
    questions |= {r["question"] for r in csv.DictReader(fh)}

for f, n, kind, note in rows:
    text = lines[f][n - 1]
    if kind == "exact-duplicate" and text not in lines[f][:n - 1]:
        errors.append(f"{f}:{n}: listed as exact-duplicate but no earlier identical line")
    if kind == "pii-rrn":
        m = re.search(r"(\d{6})-(\d{7})", text)
        if not m or not rrn_valid(m.group(1) + m.group(2)):
            errors.append(f"{f}:{n}: no resident registration number with a valid check digit")
    if kind == "pii-card":
        m = re.search(r"\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}", text)
        if not m or not luhn_valid(re.sub(r"\D", "", m.group(0))):
            errors.append(f"{f}:{n}: no card number passing Luhn")

suite = yaml.safe_load(open(os.path.join(ROOT, "tests/cases.yaml"), encoding="utf-8"))
prompts = [c["prompt"] for c in suite["cases"]]
listed = [json.loads(l)["prompt"] for l in open(os.path.join(ROOT, "tests/eval_prompts.jsonl"), encoding="utf-8") if l.strip()]
if listed != prompts:
    errors.append("tests/eval_prompts.jsonl does not list the prompts of tests/cases.yaml in order")
norm = lambda s: re.sub(r"[\s?.!,]+", " ", s.lower()).strip()
seen = {norm(q) for q in questions}
for c in suite["cases"]:
    if norm(c["prompt"]) in seen:
        errors.append(f"case {c['id']}: prompt appears in the training data")
    for a in c["assert"]:
        if a["type"] in ("contains", "icontains"):
            hay, key = (c["expected"], a["value"]) if a["type"] == "contains" else (c["expected"].lower(), a["value"].lower())
            if key not in hay:
                errors.append(f"case {c['id']}: key {a['value']!r} not in expected {c['expected']!r}")

# The reviewer's corrections (the align round): DPO pairs whose prompt is no test prompt, whose chosen
# answer is a case's expected sentence and whose rejected answer is not.
expected = {c["expected"] for c in suite["cases"]}
pairs = 0
for n, text in enumerate(open(os.path.join(ROOT, "feedback/corrections.jsonl"), encoding="utf-8"), 1):
    j = json.loads(text)
    pairs += 1
    if set(j) != {"prompt", "chosen", "rejected"}:
        errors.append(f"feedback/corrections.jsonl:{n}: fields {sorted(j)}, expected prompt, chosen, rejected")
        continue
    if norm(j["prompt"]) in {norm(p) for p in prompts}:
        errors.append(f"feedback/corrections.jsonl:{n}: the prompt is a test prompt")
    if j["chosen"] not in expected or j["rejected"] == j["chosen"]:
        errors.append(f"feedback/corrections.jsonl:{n}: chosen is not a case's expected answer, or equals rejected")

for e in errors:
    print("error:", e)
print(f"{len(rows)} planted records, {len(questions)} distinct training questions, {len(prompts)} test cases, "
      f"{pairs} correction pairs: "
      + ("OK" if not errors else f"{len(errors)} problem(s)"))
sys.exit(1 if errors else 0)
