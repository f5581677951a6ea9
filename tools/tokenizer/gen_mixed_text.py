#!/usr/bin/python3
"""Writes deterministic mixed Korean + English text for timing `lathe tokenizer train`.

The sentences are written for this script; they are remixed with a fixed-seed RNG (subjects, verbs,
objects and numbers recombined) so the words repeat like real text while lines rarely repeat exactly.
Usage: gen_mixed_text.py OUT_FILE [MEGABYTES]
"""
import random
import sys

KO_SUBJ = ["우리 팀은", "작은 모델은", "학생들이", "연구자가", "사용자는", "이 프로그램은", "선생님께서", "친구가"]
KO_OBJ = ["데이터를", "문장을", "토크나이저를", "한국어 글을", "질문과 답변을", "긴 문서를", "코드를", "예제를"]
KO_VERB = ["학습합니다.", "정리했습니다.", "읽고 있습니다.", "빠르게 처리한다.", "다시 확인했어요.",
           "천천히 살펴봅니다.", "저장하고 비교합니다.", "평가할 예정입니다."]
KO_EXTRA = ["오늘은 날씨가 맑습니다.", "결과가 좋았습니다!", "왜 그런지 궁금하네요?", "다음 단계로 넘어갑시다.",
            "처음부터 끝까지 함께 해요.", "서울에서 부산까지 기차로 갔다."]
EN_SUBJ = ["The small model", "Our team", "A careful reader", "The tokenizer", "Every student", "This program"]
EN_VERB = ["learns", "reads", "compares", "writes", "evaluates", "splits"]
EN_OBJ = ["the training data", "long documents", "Korean sentences", "simple questions", "the example files",
          "numbers like {n}"]
EN_EXTRA = ["It's working well.", "We'll check it again tomorrow.", "Don't forget the tests!",
            "The results were stored in run {n}.", "Why does this happen?"]


def line(rng):
    n = rng.randint(1, 9999)
    if rng.random() < 0.55:
        parts = [rng.choice(KO_SUBJ), rng.choice(KO_OBJ), rng.choice(KO_VERB)]
        if rng.random() < 0.4:
            parts.append(rng.choice(KO_EXTRA))
        if rng.random() < 0.2:
            parts.append(f"{n}개의 예제가 있습니다.")
    else:
        parts = [rng.choice(EN_SUBJ), rng.choice(EN_VERB), rng.choice(EN_OBJ).format(n=n) + "."]
        if rng.random() < 0.4:
            parts.append(rng.choice(EN_EXTRA).format(n=n))
    return " ".join(parts)


def main():
    out = sys.argv[1]
    target = int(float(sys.argv[2] if len(sys.argv) > 2 else 2) * 1024 * 1024)
    rng = random.Random(1234)
    size = 0
    with open(out, "w", encoding="utf-8") as f:
        while size < target:
            para = "\n".join(line(rng) for _ in range(rng.randint(2, 6))) + "\n\n"
            f.write(para)
            size += len(para.encode("utf-8"))


if __name__ == "__main__":
    main()
