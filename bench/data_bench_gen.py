#!/usr/bin/python3
"""Deterministic mixed Korean/English JSONL corpus for bench/data_bench.sh: Alpaca, messages and text
records, ~5% exact duplicates, a sprinkling of phone numbers and e-mails.  usage: data_bench_gen.py OUT MB"""
import json, random, sys

out, mb = sys.argv[1], float(sys.argv[2])
rng = random.Random(1234)
ko = ("서울 부산 계약 법률 임대차 보증금 세금 신고 절차 상담 회사 근로자 휴가 병원 보험 청구 학교 학생 "
      "시험 결과 안내 문의 답변 확인 필요 경우 기간 이내 제출 서류 방법").split()
en = ("the contract tenant deposit tax report procedure company worker leave hospital insurance claim school "
      "student exam result notice question answer check need case period within submit document method").split()

def sentence():
    words = ko if rng.random() < 0.6 else en
    s = " ".join(rng.choice(words) for _ in range(rng.randint(8, 30)))
    r = rng.random()
    if r < 0.03:
        s += f" 연락처 010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
    elif r < 0.05:
        s += f" mail user{rng.randint(1, 999)}@example.com"
    return s + "."

limit = int(mb * 1024 * 1024)
written, recent = 0, []
with open(out, "w", encoding="utf-8") as f:
    while written < limit:
        if recent and rng.random() < 0.05:
            line = rng.choice(recent)
        else:
            k = rng.random()
            body = " ".join(sentence() for _ in range(rng.randint(2, 8)))
            if k < 0.4:
                rec = {"instruction": sentence(), "input": "", "output": body}
            elif k < 0.7:
                rec = {"messages": [{"role": "user", "content": sentence()}, {"role": "assistant", "content": body}]}
            else:
                rec = {"text": body}
            line = json.dumps(rec, ensure_ascii=False) + "\n"
            recent = (recent + [line])[-1000:]
        f.write(line)
        written += len(line.encode("utf-8"))
