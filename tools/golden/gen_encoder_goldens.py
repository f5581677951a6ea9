#!/usr/bin/python3
"""Golden hidden states and pooled vectors for tiny random BERT and XLM-RoBERTa encoders.

Run with Debian's PyTorch (torch 1.13, numpy):

    /usr/bin/python3 tools/golden/gen_encoder_goldens.py [CASE ...]

Each case (re)writes tests/data/golden/encoder/<case>/ with an encoder directory as Hugging Face and
sentence-transformers lay it out (config.json, model.safetensors, tokenizer.json, and for the XLM-R case
modules.json, 1_Pooling/config.json, config_sentence_transformers.json) plus golden.json:

  input_ids      ragged sequences of ids (special tokens included)
  hidden         every row of the last hidden states of each sequence
  pooled_cls     first-token vectors;  pooled_mean  the mean over each sequence's tokens
  texts          text, is_query, the ids the tokenizer must produce, and the vector the embedder must
                 return (prefix applied, the directory's pooling, L2-normalized)

The reference is float64 torch written from the published formulas (BERT: Devlin et al. 2018, post-LN
transformer encoder; RoBERTa: position ids start at padding_idx + 1); no transformers, tokenizers or
sentence-transformers package is used. The ids of `texts` come from the small WordPiece / Unigram
segmenters below, valid for the plain lowercase ASCII and Hangul texts used here (every character has a
piece, no accents, no ties); tests/retrieval/embedder_unit.cpp checks lathe's tokenizer against them.
"""

import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_goldens as base  # noqa: E402  (dump_golden)

OUT_ROOT = os.path.join(base.OUT_ROOT, "encoder")
RAGGED_LENS = (9, 4, 1, 7)

BERT_WORDS = ["the", "a", "refund", "policy", "is", "how", "do", "i", "get", "my", "money", "back", "return",
              "item", "within", "30", "days", "store", "credit", "card", "query", "passage", "환불", "기간",
              "un", "open", "ed", "box", "price", "full", "pay", "ment", ":", "?", ",", ".", "!"]
BERT_CONT = ["##s", "##ed", "##ing", "##able", "##은", "##이", "##ment", "##ly"]
BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

XLMR_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]
XLMR_WORDS = ["▁the", "▁a", "▁refund", "▁policy", "▁is", "▁how", "▁do", "▁i", "▁get", "▁my", "▁money", "▁back",
              "▁return", "▁item", "▁within", "▁30", "▁days", "▁query", "▁passage", "▁환불", "▁기간", "s", "ed",
              "ing", "▁un", "open", "▁box", "▁price", "▁full", "▁pay", "ment", ":", "?", ",", ".", "!", "은", "이", "▁"]

CASES = [
    dict(name="bert", model_type="bert", seed=3001, hidden=32, inter=48, layers=2, heads=4, max_pos=40,
         type_vocab=2, pad=0, eps=1e-12, dtype="F32", prefix="bert.",
         note="BertForMaskedLM-style names ('bert.' prefix, an MLM head tensor to ignore), F32, "
              "WordPiece tokenizer with [CLS] $A [SEP] (TemplateProcessing), no sentence-transformers files: "
              "the embedder's default mean pooling."),
    dict(name="xlm-roberta", model_type="xlm-roberta", seed=3002, hidden=32, inter=64, layers=2, heads=4,
         max_pos=42, type_vocab=1, pad=1, eps=1e-5, dtype="F16", prefix="",
         note="XLMRobertaModel names (no prefix), F16 weights (reference computed from the f16-rounded values), "
              "positions from pad_token_id + 1 = 2 (40 usable), Unigram + Metaspace tokenizer with <s> $A </s> "
              "(RobertaProcessing), pooler tensors to ignore, sentence-transformers CLS pooling + Normalize, e5-style "
              "query/passage prompts."),
]

TEXTS = [("how do i get my money back?", True), ("the refund policy is within 30 days.", False),
         ("환불은 기간", False), ("unopened boxes, full price!", False), ("a", True)]
PROMPTS = {"query": "query: ", "passage": "passage: "}


# ---------------------------------------------------------------------------
# Tokenizers: tokenizer.json builders and the matching reference segmenters
# ---------------------------------------------------------------------------
def bert_vocab():
    toks = BERT_SPECIAL + BERT_WORDS + BERT_CONT + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    toks += ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)] + ["0", "3", "##0", "##3"]
    seen = []
    for t in toks:
        if t not in seen:
            seen.append(t)
    return {t: i for i, t in enumerate(seen)}


def bert_tokenizer_json(vocab):
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in BERT_SPECIAL]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": False, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [vocab["[CLS]"]], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [vocab["[SEP]"]], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }


def bert_encode(vocab, text):
    """Lowercase, split at whitespace and ASCII punctuation, greedy longest-match WordPiece."""
    words, cur = [], ""
    for ch in text.lower():
        if ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
        elif ch in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~":
            if cur:
                words.append(cur)
            words.append(ch)
            cur = ""
        else:
            cur += ch
    if cur:
        words.append(cur)
    ids = []
    for w in words:
        start, pieces = 0, []
        while start < len(w):
            end = len(w)
            while end > start:
                piece = w[start:end] if start == 0 else "##" + w[start:end]
                if piece in vocab:
                    break
                end -= 1
            assert end > start, "no piece for %r in %r" % (w[start:], w)
            pieces.append(vocab[piece])
            start = end
        ids += pieces
    return [vocab["[CLS]"]] + ids + [vocab["[SEP]"]]


def xlmr_vocab():
    pieces = [(t, 0.0) for t in XLMR_SPECIAL]
    for i, t in enumerate(XLMR_WORDS):
        pieces.append((t, -3.0 - 0.01 * i - 0.5 * (len(t) < 2)))
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["0", "3", "환", "불", "기", "간"]
    for i, ch in enumerate(chars):
        if ch not in [p for p, _ in pieces]:
            pieces.append((ch, -9.0 - 0.01 * i))
    return pieces


def xlmr_tokenizer_json(pieces):
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, t in enumerate(XLMR_SPECIAL)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": True,
                           "add_prefix_space": True},
        "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": 3, "vocab": [[p, s] for p, s in pieces], "byte_fallback": False},
    }


def xlmr_encode(pieces, text):
    """Collapse space runs, Metaspace (prepend and split at '▁'), best-total-score Viterbi per word."""
    while "  " in text:
        text = text.replace("  ", " ")
    s = "▁" + text.replace(" ", "▁")
    words, cur = [], ""
    for ch in s:
        if ch == "▁" and cur:
            words.append(cur)
            cur = ""
        cur += ch
    if cur:
        words.append(cur)
    score = {p: (i, sc) for i, (p, sc) in enumerate(pieces) if p not in XLMR_SPECIAL}
    ids = []
    for w in words:
        best = [(-math.inf, None)] * (len(w) + 1)
        best[0] = (0.0, None)
        for end in range(1, len(w) + 1):
            for start in range(end):
                p = w[start:end]
                if p in score and best[start][0] > -math.inf:
                    cand = best[start][0] + score[p][1]
                    assert abs(cand - best[end][0]) > 1e-9, "tie segmenting %r" % w
                    if cand > best[end][0]:
                        best[end] = (cand, start)
        assert best[len(w)][0] > -math.inf, "no segmentation for %r" % w
        out, end = [], len(w)
        while end > 0:
            start = best[end][1]
            out.append(score[w[start:end]][0])
            end = start
        ids += out[::-1]
    return [0] + ids + [2]


# ---------------------------------------------------------------------------
# Weights and config
# ---------------------------------------------------------------------------
def make_config(case, vocab_size):
    arch = "BertForMaskedLM" if case["model_type"] == "bert" else "XLMRobertaModel"
    return {"architectures": [arch], "model_type": case["model_type"], "vocab_size": vocab_size,
            "hidden_size": case["hidden"], "num_hidden_layers": case["layers"],
            "num_attention_heads": case["heads"], "intermediate_size": case["inter"], "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": case["max_pos"], "type_vocab_size": case["type_vocab"],
            "initializer_range": 0.02, "layer_norm_eps": case["eps"], "pad_token_id": case["pad"],
            "position_embedding_type": "absolute", "torch_dtype": "float32" if case["dtype"] == "F32" else "float16"}


def make_weights(case, V):
    g = torch.Generator().manual_seed(case["seed"])
    C, F = case["hidden"], case["inter"]

    def rnd(*shape, std=0.2):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    def ln(n):
        return 1.0 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)

    p = case["prefix"]
    w = {p + "embeddings.word_embeddings.weight": rnd(V, C, std=0.5),
         p + "embeddings.position_embeddings.weight": rnd(case["max_pos"], C, std=0.3),
         p + "embeddings.token_type_embeddings.weight": rnd(case["type_vocab"], C, std=0.3),
         p + "embeddings.LayerNorm.weight": ln(C), p + "embeddings.LayerNorm.bias": rnd(C, std=0.1)}
    for l in range(case["layers"]):
        q = p + "encoder.layer.%d." % l
        for m in ("query", "key", "value"):
            w[q + "attention.self.%s.weight" % m] = rnd(C, C, std=0.35)
            w[q + "attention.self.%s.bias" % m] = rnd(C, std=0.1)
        w[q + "attention.output.dense.weight"] = rnd(C, C)
        w[q + "attention.output.dense.bias"] = rnd(C, std=0.1)
        w[q + "attention.output.LayerNorm.weight"] = ln(C)
        w[q + "attention.output.LayerNorm.bias"] = rnd(C, std=0.1)
        w[q + "intermediate.dense.weight"] = rnd(F, C, std=0.3)
        w[q + "intermediate.dense.bias"] = rnd(F, std=0.1)
        w[q + "output.dense.weight"] = rnd(C, F)
        w[q + "output.dense.bias"] = rnd(C, std=0.1)
        w[q + "output.LayerNorm.weight"] = ln(C)
        w[q + "output.LayerNorm.bias"] = rnd(C, std=0.1)
    # Tensors a loader must ignore: the base model's pooler (unused by sentence embeddings), the task
    # model's MLM head.
    if p:
        w["cls.predictions.bias"] = rnd(V)
    else:
        w["pooler.dense.weight"] = rnd(C, C)
        w["pooler.dense.bias"] = rnd(C)
    # Round to the stored type; the reference then computes in float64 from the stored values.
    st = torch.float32 if case["dtype"] == "F32" else torch.float16
    return {k: v.to(st).to(torch.float64) for k, v in w.items()}


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in sorted(tensors.items()):
        if dtype == "F32":
            b = t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        else:
            b = t.to(torch.float16).contiguous().numpy().astype("<f2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------
# The encoder, float64
# ---------------------------------------------------------------------------
def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased, as LayerNorm
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def encode(case, w, ids_batch, lengths):
    """ids_batch [B, T] (padded with pad), lengths [B] -> hidden [B, T, C]; padding keys masked."""
    p, C, H = case["prefix"], case["hidden"], case["heads"]
    D = C // H
    ids = torch.tensor(ids_batch)
    B, T = ids.shape
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # [B, T] real tokens
    if case["model_type"] == "bert":
        pos = torch.arange(T)[None, :].expand(B, T)
    else:  # RoBERTa: real tokens count from padding_idx + 1, padding sits at padding_idx
        pos = torch.where(mask, torch.cumsum(mask.long(), 1) + case["pad"], torch.full_like(ids, case["pad"]))
    x = (w[p + "embeddings.word_embeddings.weight"][ids] + w[p + "embeddings.position_embeddings.weight"][pos]
         + w[p + "embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"], case["eps"])
    key_bias = torch.zeros(B, T, dtype=torch.float64).masked_fill(~mask, -math.inf)[:, None, None, :]  # [B,1,1,T]
    for l in range(case["layers"]):
        q = p + "encoder.layer.%d." % l

        def lin(name, t):
            return t @ w[q + name + ".weight"].T + w[q + name + ".bias"]

        def heads(t):
            return t.view(B, T, H, D).transpose(1, 2)  # [B, H, T, D]

        Q, K, Vv = (heads(lin("attention.self." + m, x)) for m in ("query", "key", "value"))
        scores = Q @ K.transpose(-1, -2) / math.sqrt(D) + key_bias
        a = (torch.softmax(scores, -1) @ Vv).transpose(1, 2).reshape(B, T, C)
        x = layer_norm(x + lin("attention.output.dense", a), w[q + "attention.output.LayerNorm.weight"],
                       w[q + "attention.output.LayerNorm.bias"], case["eps"])
        f = lin("output.dense", gelu(lin("intermediate.dense", x)))
        x = layer_norm(x + f, w[q + "output.LayerNorm.weight"], w[q + "output.LayerNorm.bias"], case["eps"])
    return x


def pad_batch(case, seqs):
    T = max(len(s) for s in seqs)
    return [s + [case["pad"]] * (T - len(s)) for s in seqs], [len(s) for s in seqs]


def pool(h, n, mode, normalize):
    v = h[0] if mode == "cls" else h[:n].mean(0)
    return v / max(float(v.norm()), 1e-12) if normalize else v


def rows(t):
    return [[float(np.float32(x)) for x in r] for r in t.tolist()]


def vec(t):
    return [float(np.float32(x)) for x in t.tolist()]


def gen_case(case):
    outdir = os.path.join(OUT_ROOT, case["name"])
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    bert = case["model_type"] == "bert"
    if bert:
        vocab = bert_vocab()
        tok = bert_tokenizer_json(vocab)
        V = len(vocab)
        tokenize = lambda text: bert_encode(vocab, text)  # noqa: E731
    else:
        pieces = xlmr_vocab()
        tok = xlmr_tokenizer_json(pieces)
        V = len(pieces)
        tokenize = lambda text: xlmr_encode(pieces, text)  # noqa: E731

    def dump(name, obj):
        path = os.path.join(outdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1 if name != "tokenizer.json" else None, ensure_ascii=False)
            f.write("\n")

    dump("config.json", make_config(case, V))
    dump("tokenizer.json", tok)
    w = make_weights(case, V)
    write_safetensors(os.path.join(outdir, "model.safetensors"), w, case["dtype"])
    mode, normalize = "mean", True  # the embedder's defaults for a plain HF directory
    if not bert:
        mode = "cls"
        dump("modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
        dump("1_Pooling/config.json", {"word_embedding_dimension": case["hidden"], "pooling_mode_cls_token": True,
                                       "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
                                       "pooling_mode_mean_sqrt_len_tokens": False})
        dump("config_sentence_transformers.json", {"prompts": PROMPTS, "default_prompt_name": None,
                                                   "similarity_fn_name": "cosine"})

    # Random ids (not the special ones, as a tokenizer would give) between a first and last special id.
    g = torch.Generator().manual_seed(case["seed"] + 50000)
    first, last = (2, 3) if bert else (0, 2)
    seqs = []
    for n in RAGGED_LENS:
        body = torch.randint(5, V, (max(n - 2, 0),), generator=g).tolist()
        seqs.append(([first] + body + [last])[:n])
    ids, lens = pad_batch(case, seqs)
    hidden = encode(case, w, ids, lens)
    # Padding must not leak: each sequence alone gives the same rows.
    for b, s in enumerate(seqs):
        alone = encode(case, w, [s], [len(s)])[0]
        assert float((alone - hidden[b, :len(s)]).abs().max()) < 1e-12, "padding leaked into sequence %d" % b
    assert float(hidden.std()) > 0.5, "hidden states too flat"

    texts = []
    for text, is_query in TEXTS:
        prefixed = (PROMPTS["query"] if is_query else PROMPTS["passage"]) + text if not bert else text
        t_ids = tokenize(prefixed)
        h = encode(case, w, [t_ids], [len(t_ids)])[0]
        texts.append({"text": text, "is_query": is_query, "ids": t_ids, "vector": vec(pool(h, len(t_ids), mode, True))})

    golden = {
        "note": case["note"],
        "input_ids": seqs,
        "hidden": [rows(hidden[b, :len(s)]) for b, s in enumerate(seqs)],
        "pooled_cls": [vec(pool(hidden[b], len(s), "cls", False)) for b, s in enumerate(seqs)],
        "pooled_mean": [vec(pool(hidden[b], len(s), "mean", False)) for b, s in enumerate(seqs)],
        "pooling": mode,
        "texts": texts,
    }
    base.dump_golden(os.path.join(outdir, "golden.json"), golden)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(outdir) for f in fs)
    print("%-12s ok  vocab %d  hidden std %.3f  %6.1f KB" % (case["name"], V, float(hidden.std()), size / 1024.0))


def main():
    torch.set_num_threads(1)
    only = set(sys.argv[1:])
    for case in CASES:
        if not only or case["name"] in only:
            gen_case(case)


if __name__ == "__main__":
    main()
