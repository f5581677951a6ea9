#!/usr/bin/env python3
"""Generated policy documents (Korean and English Markdown) and questions with known answers for
bench/retrieval_bench.sh. Each document holds sections "## <topic> <n>" with one fact; a Korean
question uses a different particle than its document (환불은 → 환불이), as real questions do.
Usage: retrieval_bench_gen.py OUT_DIR TARGET_MB"""
import json, os, random, sys

out, target_mb = sys.argv[1], float(sys.argv[2])
random.seed(7)
KO = [("환불", "은", "이", "일 이내에 신청할 수 있습니다"), ("연차 휴가", "는", "를", "일입니다"),
      ("출장비", "는", "가", "만 원까지 지원됩니다"), ("교육비", "는", "를", "만 원까지 받을 수 있습니다"),
      ("보안 점검", "은", "을", "개월마다 받아야 합니다"), ("재택 근무", "는", "를", "일까지 할 수 있습니다")]
EN = [("refund window", "days from purchase"), ("annual leave", "days a year"), ("travel allowance", "dollars a day"),
      ("training budget", "hundred dollars a year"), ("security review", "months between reviews"),
      ("remote work limit", "days a month")]
FILL_KO = "이 항목은 회사의 일반 규정을 따르며 자세한 내용은 담당 부서에 문의하시기 바랍니다. "
FILL_EN = "This item follows the general company rules; ask the responsible team for the details. "
os.makedirs(os.path.join(out, "docs"), exist_ok=True)
questions, size, doc = [], 0, 0
while size < target_mb * 1e6:
    lines = [f"# Policy book {doc}\n"]
    for s in range(40):
        n = random.randint(2, 99)
        if random.random() < 0.5:
            topic, p_doc, p_q, tail = random.choice(KO)
            name = f"{topic} {doc}-{s}"
            lines.append(f"## {name}\n\n{name}{p_doc} {n}{tail}. " + FILL_KO * random.randint(2, 6) + "\n")
            q = f"{name}{p_q} 어떻게 되나요?"
            lang = "ko"
        else:
            topic, tail = random.choice(EN)
            name = f"{topic} {doc}-{s}"
            lines.append(f"## {name}\n\nThe {name} is {n} {tail}. " + FILL_EN * random.randint(2, 6) + "\n")
            q = f"What is the {name}?"
            lang = "en"
        if random.random() < 0.02:
            questions.append({"query": q, "answer": str(n), "doc": f"policy-{doc:05d}.md", "lang": lang})
    text = "\n".join(lines)
    with open(os.path.join(out, "docs", f"policy-{doc:05d}.md"), "w") as f:
        f.write(text)
    size += len(text.encode())
    doc += 1
with open(os.path.join(out, "questions.jsonl"), "w") as f:
    for q in questions[:400]:
        f.write(json.dumps(q, ensure_ascii=False) + "\n")
print(f"{doc} documents, {size / 1e6:.1f} MB, {min(len(questions), 400)} questions")
