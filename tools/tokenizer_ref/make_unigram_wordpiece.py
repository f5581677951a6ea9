#!/usr/bin/env python3
"""Writes lathe's own Unigram and WordPiece tokenizers (tests/data/tokenizer/tiny_unigram*, tiny_wordpiece*) from
text written for the project; no real model's vocabulary is used.

  tiny_unigram          XLM-R layout: normalizer Sequence[Precompiled, Replace ' {2,}' -> ' '] with a charsmap
                        built here (NFKC-like rules in SentencePiece's double-array format), Metaspace (always,
                        split), Unigram of ~4k pieces (corpus pieces + the 2350 KS X 1001 Hangul syllables),
                        no byte fallback, <s> $A </s>, Metaspace decoder, <mask> with lstrip
  tiny_unigram_bf       T5/Gemma-like: no normalizer, WhitespaceSplit + Metaspace (first, no split), Unigram with
                        byte_fallback over corpus pieces only, $A </s>, decoder ByteFallback + Metaspace (first)
  tiny_wordpiece        BERT uncased: BertNormalizer (clean_text, CJK spacing, strip_accents null -> lowercase),
                        BertPreTokenizer, WordPiece (## prefix, max_input_chars_per_word 24), BertProcessing,
                        WordPiece decoder with cleanup
  tiny_wordpiece_cased  BertNormalizer (no lowercase, strip_accents true, no CJK spacing), WhitespaceSplit +
                        Punctuation, WordPiece (max 100), TemplateProcessing [CLS] $A [SEP], decoder without cleanup

Pure Python, deterministic: python3 tools/tokenizer_ref/make_unigram_wordpiece.py (rewrites the four folders).
Scores are rounded to 4 decimals so that every JSON reader parses them to the same double.
"""
import base64
import collections
import json
import math
import os
import struct
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_tiny import CORPUS  # noqa: E402  (the project's own text, shared with the BPE tokenizers)

EXTRA = """
검색 증강 생성은 질문과 관련된 문서를 먼저 찾고, 찾은 문서를 근거로 답변을 작성합니다.
임베딩 모델은 문장을 벡터로 바꾸고, 두 벡터의 코사인 유사도로 문서의 순위를 정합니다.
다국어 인코더는 한국어, 영어, 일본어 문서를 같은 공간에 놓습니다.
Retrieval encoders map queries and passages into one vector space; the nearest passages are re-ranked.
Multilingual models such as cross-lingual encoders handle Korean, English, Japanese and Chinese text.
The café serves crème brûlée; the résumé of the naïve coöperative was déjà vu. São Paulo, Ångström, Zürich.
中文测试 漢字 日本語のテキスト 東京 大阪 学生 先生 検索 文書
Don't worry, they're done. It's fine; we've tested it and it doesn't break.
Question: What is the deposit? Answer: The tenant gets the deposit back when the lease ends.
"""

TEXT = CORPUS + EXTRA * 2
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "data", "tokenizer")
META = "\u2581"


# ---------------------------------------------------------------- SentencePiece precompiled charsmap
def charsmap_rules():
    """NFKC-like rules, as SentencePiece's nmt_nfkc does: control characters removed, white space and
    format characters mapped to a space, compatibility forms folded, a few decomposed letters composed."""
    rules = {}
    for cp in [*range(0x01, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, 0x8F, 0x9F]:
        rules[chr(cp)] = ""
    for cp in [0x09, 0x0A, 0x0C, 0x0D, 0xA0, 0x1680, *range(0x2000, 0x2010), 0x2028, 0x2029, 0x202F, 0x205F,
               0x2581, 0x3000, 0xFEFF, 0xFFFD]:
        rules[chr(cp)] = " "
    folded = [*range(0xFF01, 0xFF5E),  # full-width ASCII (U+FF5E stays, as in nmt_nfkc)
              *range(0xFB00, 0xFB07),  # Latin ligatures
              *range(0x2460, 0x2474),  # circled numbers
              *range(0x3131, 0x318F),  # Hangul compatibility jamo -> conjoining jamo
              0xB2, 0xB3, 0xB9, 0xBD, 0x2026, 0x2122]
    for cp in folded:
        n = unicodedata.normalize("NFKC", chr(cp))
        if n != chr(cp):
            rules[chr(cp)] = n
    # Multi-character keys (one grapheme each): decomposed accents compose; a full-width letter with an
    # accent is both a key and has its first character as a shorter key.
    for base in "AEIOUNCaeiouncｅ":
        for mark in "\u0300\u0301\u0308\u0303\u0327":
            s = base + mark
            n = unicodedata.normalize("NFKC", s)
            if len(n) == 1:
                rules[s] = n
    rules["\r\n"] = "\n "  # distinguishes a grapheme-level match ("\r\n" is one grapheme) from per-char
    return rules


def double_array(pairs):
    """darts-clone units for (key bytes, value) pairs: a unit is label | has_leaf << 8 | offset << 10, a node's
    children sit at base ^ label (base = position ^ offset), and a key's value is a unit (1 << 31 | value) at
    its last node's base ^ 0. Each base is used once, so a lookup never lands on another node's child."""
    trie = {}
    for key, value in pairs:
        node = trie
        for b in key:
            node = node.setdefault(b, {})
        node[-1] = value
    units = {0: 0}
    used_bases = set()
    queue = collections.deque([(trie, 0, 0)])
    while queue:
        node, pos, label = queue.popleft()
        labels = sorted(k for k in node if k >= 0)
        need = ([0] if -1 in node else []) + labels
        base = 1
        while base in used_bases or any((base ^ c) in units for c in need):
            base += 1
        used_bases.add(base)
        offset = pos ^ base
        assert 0 < offset < (1 << 21)
        units[pos] = label | ((1 << 8) if -1 in node else 0) | (offset << 10)
        if -1 in node:
            units[base] = (1 << 31) | node[-1]
        for c in labels:
            units[base ^ c] = 0  # reserved now, written when the child is placed
            queue.append((node[c], base ^ c, c))
    n = max(max(units) + 1, max(b | 0xFF for b in used_bases) + 1)  # every base's 256-block is inside
    return [units.get(i, 0) for i in range(n)]


def precompiled_charsmap(rules):
    blob = b""
    where = {}
    pairs = []
    for key in sorted(rules, key=lambda s: s.encode()):
        norm = rules[key].encode()
        if norm not in where:
            where[norm] = len(blob)
            blob += norm + b"\0"
        pairs.append((key.encode(), where[norm]))
    units = double_array(pairs)
    raw = struct.pack("<I", 4 * len(units)) + struct.pack("<%dI" % len(units), *units) + blob
    return base64.b64encode(raw).decode()


def apply_rules(text, rules):
    """The corpus as the Precompiled normalizer sees it, near enough for counting pieces."""
    out = []
    i = 0
    while i < len(text):
        if text[i:i + 2] in rules:
            out.append(rules[text[i:i + 2]])
            i += 2
        else:
            out.append(rules.get(text[i], text[i]))
            i += 1
    return "".join(out)


# ---------------------------------------------------------------- Unigram
def unigram_vocab(text, n_pieces, max_len, extra_chars=()):
    words = collections.Counter(META + w for w in text.split())
    counts = collections.Counter()
    for w, c in words.items():
        for i in range(len(w)):
            for j in range(i + 1, min(len(w), i + max_len) + 1):
                counts[w[i:j]] += c
    singles = sorted({s for s in counts if len(s) == 1} | set(extra_chars))
    multi = sorted((s for s in counts if len(s) > 1 and counts[s] >= 2), key=lambda s: (-counts[s] * len(s), s))
    multi = multi[:n_pieces]
    total = sum(counts[s] for s in multi) + sum(counts[s] for s in singles) + len(singles)
    pieces = []
    for s in singles + multi:
        # Longer pieces get a bonus so that whole words win over their characters, as a trained model does.
        score = math.log((counts[s] + 0.5) / total) + 1.5 * (len(s) - 1)
        pieces.append([s, round(min(score, -0.01), 4)])
    return pieces


def ksx1001_syllables():
    out = []
    for cp in range(0xAC00, 0xD7A4):
        if len(chr(cp).encode("euc-kr")) == 2:  # Python also writes the 8-byte composed form for the rest
            out.append(chr(cp))
    return out


def added(tokens, lstrip=()):
    return [{"id": i, "content": t, "single_word": False, "lstrip": t in lstrip, "rstrip": False,
             "normalized": False, "special": True} for t, i in tokens]


def template(single, specials):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": s, "type_id": 0}} if s != "$A" else {"Sequence": {"id": "A", "type_id": 0}}
                       for s in single],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in specials}}


def tiny_unigram():
    rules = charsmap_rules()
    text = apply_rules(TEXT, rules)
    specials = [("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3)]
    vocab = [[t, 0.0] for t, _ in specials]
    seen = {t for t, _ in specials}
    for p in unigram_vocab(text, 1500, 8, ksx1001_syllables()):
        if p[0] not in seen:
            seen.add(p[0])
            vocab.append(p)
    # A positive score makes the unknown-piece penalty decide: "♞☃☃" (the lowest score) against unknown "♞"
    # (lowest - 10) plus "☃☃" (+5).
    low = min(score for _, score in vocab)
    vocab += [["\u2603\u2603", 5.0], ["\u265e\u2603\u2603", low]]
    vocab.append(["<mask>", 0.0])
    mask = len(vocab) - 1
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added(specials + [("<mask>", mask)], lstrip={"<mask>"}),
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": precompiled_charsmap(rules)},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
        "post_processor": template(["<s>", "$A", "</s>"], [("<s>", 0), ("</s>", 2)]),
        "decoder": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": False},
    }


def tiny_unigram_bf():
    specials = [("<pad>", 0), ("</s>", 1), ("<unk>", 2)]
    vocab = [[t, 0.0] for t, _ in specials] + [["<0x%02X>" % b, 0.0] for b in range(256)]
    seen = {t for t, _ in vocab}
    # Hangul characters seen fewer than 6 times are left out, so Korean text exercises byte fallback.
    chars = collections.Counter(TEXT)
    text = "".join(c if not ("\uac00" <= c <= "\ud7a3") or chars[c] >= 6 else " " for c in TEXT)
    for p in unigram_vocab(text, 700, 6):
        if p[0] not in seen:
            seen.add(p[0])
            vocab.append(p)
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added(specials),
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": False}]},
        "post_processor": template(["$A", "</s>"], [("</s>", 1)]),
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"},
            {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": False}]},
        "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": True},
    }


# ---------------------------------------------------------------- WordPiece
def is_punct(c):
    o = ord(c)
    return (33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126
            or unicodedata.category(c).startswith("P"))


def is_cjk(c):
    o = ord(c)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2A6DF or 0xF900 <= o <= 0xFAFF)


def bert_words(text, lowercase, strip_accents, cjk):
    if cjk:
        text = "".join(" %s " % c if is_cjk(c) else c for c in text)
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    if lowercase:
        text = text.lower()
    words = []
    for w in text.split():
        cur = ""
        for c in w:
            if is_punct(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
    return collections.Counter(words)


def wordpiece_vocab(words, n_words, n_sub):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for w in words for c in w})
    whole = sorted((w for w in words if words[w] >= 2 and len(w) > 1), key=lambda w: (-words[w], w))[:n_words]
    sub = collections.Counter()
    pre = collections.Counter()
    for w, c in words.items():
        for i in range(len(w)):
            for j in range(i + 2, min(len(w), i + 6) + 1):
                (sub if i > 0 else pre)[w[i:j]] += c
    subs = sorted((s for s in sub if sub[s] >= 3), key=lambda s: (-sub[s] * len(s), s))[:n_sub]
    pres = sorted((s for s in pre if pre[s] >= 3), key=lambda s: (-pre[s] * len(s), s))[:n_sub // 2]
    vocab = {}
    for t in specials + chars + ["##" + c for c in chars] + whole + pres + ["##" + s for s in subs]:
        vocab.setdefault(t, len(vocab))
    return vocab


def tiny_wordpiece(cased):
    words = bert_words(TEXT, lowercase=not cased, strip_accents=True, cjk=not cased)
    vocab = wordpiece_vocab(words, 500, 600)
    specials = [(t, vocab[t]) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added(specials),
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": not cased,
                       "strip_accents": True if cased else None, "lowercase": not cased},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", vocab["[SEP]"]], "cls": ["[CLS]", vocab["[CLS]"]]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 24, "vocab": vocab},
    }
    if cased:
        tok["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Punctuation", "behavior": "Isolated"}]}
        tok["post_processor"] = template(["[CLS]", "$A", "[SEP]"], [("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        tok["decoder"] = {"type": "WordPiece", "prefix": "##", "cleanup": False}
        tok["model"]["max_input_chars_per_word"] = 100
    return tok


def main():
    for name, tok in [("tiny_unigram", tiny_unigram()), ("tiny_unigram_bf", tiny_unigram_bf()),
                      ("tiny_wordpiece", tiny_wordpiece(False)), ("tiny_wordpiece_cased", tiny_wordpiece(True))]:
        path = os.path.join(OUT, name)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(name, len(tok["model"]["vocab"]), "tokens")


if __name__ == "__main__":
    main()
