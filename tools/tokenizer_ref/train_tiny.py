#!/usr/bin/env python3
"""Trains lathe's own tiny tokenizers (tests/data/tokenizer/tiny_*.json) on text written for the project.

  tiny_bytelevel.json  byte-level BPE (Llama 3 style split regex + ByteLevel), 300 merges, NFC, added tokens
  tiny_spm.json        SentencePiece-style BPE with byte_fallback (Metaspace pre-tokenizer), 300 merges

Pure Python, deterministic: python3 tools/tokenizer_ref/train_tiny.py (rewrites both files).
"""
import collections
import json
import os
import re

CORPUS = """
Once upon a time there was a small robot who liked to read books about the sea.
The robot said: "I want to see the waves!" and walked to the harbour every morning.
Fine-tuning a language model turns a general model into a domain expert.
We train adapters with LoRA, evaluate them on test cases, and export the merged weights.
def encode(text): return [vocab[w] for w in text.split()]
for (int i = 0; i < n; i++) { sum += x[i] * w[i]; }
The quick brown fox jumps over the lazy dog 1234567890 times.
제1조(목적) 이 법은 국민의 생활 안전을 보장함을 목적으로 한다.
제2조(정의) 이 법에서 사용하는 용어의 뜻은 다음과 같다.
임대차 계약이 끝나면 임차인은 보증금을 돌려받을 권리가 있습니다.
근로자는 근로계약서를 서면으로 받아야 하며, 임금은 매월 지급됩니다.
안녕하세요, 오늘 날씨가 좋네요. 법률 상담을 받고 싶습니다.
한국어와 English를 섞어서 쓰는 문장도 토크나이저가 잘 처리해야 합니다.
""" * 3

BYTES_TO_UNICODE = {}
_n = 0
for _b in range(256):
    if 0x21 <= _b <= 0x7E or 0xA1 <= _b <= 0xAC or 0xAE <= _b <= 0xFF:
        BYTES_TO_UNICODE[_b] = chr(_b)
    else:
        BYTES_TO_UNICODE[_b] = chr(256 + _n)
        _n += 1


def learn_merges(words, n_merges):
    """words: Counter of tuple-of-symbols -> count. Returns the merge list (greedy most frequent pair)."""
    words = dict(words)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new_words = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    return merges


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_level():
    words = collections.Counter()
    for w in re.findall(r" ?[^\s]+|\s+", CORPUS):  # training split only; encoding uses LLAMA3_SPLIT
        words[tuple(BYTES_TO_UNICODE[b] for b in w.encode())] += 1
    merges = learn_merges(words, 300)
    vocab = {BYTES_TO_UNICODE[b]: i for i, b in enumerate(range(256))}
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    n = len(vocab)
    added = []
    for i, (content, special) in enumerate([("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
                                            ("<think>", False)]):
        added.append({"id": n + i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": special})
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [n],
                                                                "tokens": ["<|endoftext|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }


def spm():
    text = CORPUS.replace(" ", "\u2581")
    words = collections.Counter()
    for line in text.split("\n"):
        if line:
            words[tuple("\u2581" + line)] += 1
    # Alphabet: characters seen at least 4 times; rarer ones (most Hangul) go through byte fallback.
    chars = collections.Counter(c for w, n in words.items() for c in w for _ in range(n))
    alphabet = sorted(c for c, k in chars.items() if k >= 4)
    words = collections.Counter({tuple(c if c in alphabet else "?" for c in w): n for w, n in words.items()})
    merges = [m for m in learn_merges(words, 700) if "?" not in m[0] + m[1]][:300]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for c in alphabet:
        vocab[c] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "tokenizer")
    for name, tok in [("tiny_bytelevel", byte_level()), ("tiny_spm", spm())]:
        path = os.path.join(root, name)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False, indent=1)
        with open(os.path.join(path, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            special = tok["added_tokens"]
            json.dump({"bos_token": special[0]["content"] if name == "tiny_bytelevel" else "<s>",
                       "eos_token": "<|im_end|>" if name == "tiny_bytelevel" else "</s>",
                       "unk_token": None if name == "tiny_bytelevel" else "<unk>",
                       "model_max_length": 512}, f, indent=1)
        print(name, len(tok["model"]["vocab"]), "tokens,", len(tok["model"]["merges"]), "merges")


if __name__ == "__main__":
    main()
