#!/usr/bin/python3
"""Generate golden reference outputs for tiny random Llama-family models.

Run with Debian's PyTorch (torch 1.13, numpy):

    /usr/bin/python3 tools/golden/gen_model_goldens.py

For every case in CASES this (re)writes tests/data/golden/<case>/ with
config.json, the weights (model.safetensors, or a two-shard set with
model.safetensors.index.json) and golden.json (input ids, full float32 logits,
a greedy continuation). Output is deterministic: fixed seeds, one thread.

The model below is a plain-torch, float32 re-statement of the Hugging Face
Llama / Mistral / Qwen2 / Qwen3 decoder forward pass; no transformers or
safetensors package is used or needed.
"""

import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_ROOT = os.path.join(REPO_ROOT, "tests", "data", "golden")

SEQ_LEN = 7          # both main sequences have this length
RAGGED_LENS = (4, 7)  # lengths of the two "ragged" sequences
PROMPT_LEN = 4        # greedy prompt length
GREEDY_STEPS = 8

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------
# arch: "llama" | "mistral" | "qwen2" | "qwen3"
# head_dim: None -> omitted from config.json (derived as hidden / heads)
CASES = [
    dict(name="llama", arch="llama", seed=1001, vocab=96, hidden=32, inter=64,
         layers=2, heads=4, kv_heads=2, head_dim=None, theta=10000.0, eps=1e-5,
         tie=False, rope_scaling=None, max_pos=128, dtype="float32", storage="single",
         note="Llama, untied, GQA 4q/2kv, head_dim derived (32/4=8), plain RoPE."),
    dict(name="llama_tied_llama3rope", arch="llama", seed=1002, vocab=128, hidden=48, inter=96,
         layers=2, heads=3, kv_heads=1, head_dim=16, theta=500000.0, eps=1e-5,
         tie=True, max_pos=512, dtype="float32", storage="single",
         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                       "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
         note="Llama, tied embeddings (no lm_head.weight), MQA 3q/1kv, explicit head_dim 16, "
              "llama3 rope scaling hitting all three regimes (kept / smoothed / divided)."),
    dict(name="llama_linear_rope", arch="llama", seed=1003, vocab=64, hidden=32, inter=64,
         layers=2, heads=4, kv_heads=4, head_dim=None, theta=10000.0, eps=1e-5,
         tie=False, max_pos=256, dtype="float32", storage="single",
         rope_scaling={"rope_type": "linear", "factor": 2.0},
         note="Llama, untied, MHA (kv heads == heads), head_dim derived, linear rope scaling "
              "(inv_freq / 2)."),
    dict(name="mistral", arch="mistral", seed=1004, vocab=80, hidden=32, inter=64,
         layers=2, heads=4, kv_heads=1, head_dim=None, theta=1000000.0, eps=1e-5,
         tie=False, rope_scaling=None, max_pos=128, dtype="float32", storage="single",
         note="MistralForCausalLM (same math as Llama), untied, MQA 4q/1kv, sliding_window "
              "4096 > sequence length so it has no effect."),
    dict(name="qwen2", arch="qwen2", seed=1005, vocab=96, hidden=32, inter=80,
         layers=2, heads=4, kv_heads=2, head_dim=None, theta=1000000.0, eps=1e-6,
         tie=True, rope_scaling=None, max_pos=128, dtype="float32", storage="sharded",
         note="Qwen2ForCausalLM: q/k/v biases (no o bias), tied embeddings, GQA 4q/2kv, "
              "stored as two safetensors shards + index."),
    dict(name="qwen3", arch="qwen3", seed=1006, vocab=96, hidden=32, inter=64,
         layers=2, heads=4, kv_heads=2, head_dim=16, theta=1000000.0, eps=1e-6,
         tie=False, rope_scaling=None, max_pos=128, dtype="bfloat16", storage="single",
         note="Qwen3ForCausalLM: per-head q_norm/k_norm before RoPE, head_dim 16 != 32/4, no "
              "bias, untied, BF16 weights; logits computed in float32 from the bf16-rounded "
              "weights."),
]

ARCH_INFO = {
    "llama": ("LlamaForCausalLM", "llama"),
    "mistral": ("MistralForCausalLM", "mistral"),
    "qwen2": ("Qwen2ForCausalLM", "qwen2"),
    "qwen3": ("Qwen3ForCausalLM", "qwen3"),
}


def head_dim_of(case):
    return case["head_dim"] if case["head_dim"] is not None else case["hidden"] // case["heads"]


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------
def make_config(case):
    arch_name, model_type = ARCH_INFO[case["arch"]]
    cfg = {
        "architectures": [arch_name],
        "model_type": model_type,
        "vocab_size": case["vocab"],
        "hidden_size": case["hidden"],
        "intermediate_size": case["inter"],
        "num_hidden_layers": case["layers"],
        "num_attention_heads": case["heads"],
        "num_key_value_heads": case["kv_heads"],
        "hidden_act": "silu",
        "rms_norm_eps": case["eps"],
        "rope_theta": case["theta"],
        "max_position_embeddings": case["max_pos"],
        "tie_word_embeddings": case["tie"],
        "torch_dtype": case["dtype"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "initializer_range": 0.02,
        "use_cache": True,
        "attention_dropout": 0.0,
    }
    if case["head_dim"] is not None:
        cfg["head_dim"] = case["head_dim"]
    if case["rope_scaling"] is not None:
        cfg["rope_scaling"] = dict(case["rope_scaling"])
    # Mirror what the real HF configs carry for bias flags / windows.
    if case["arch"] == "llama":
        cfg["attention_bias"] = False
        cfg["mlp_bias"] = False
        cfg["pretraining_tp"] = 1
    elif case["arch"] == "mistral":
        cfg["sliding_window"] = 4096
    elif case["arch"] == "qwen2":
        # Qwen2 configs carry no attention_bias key: q/k/v bias is always present.
        cfg["use_sliding_window"] = False
        cfg["sliding_window"] = 32768
        cfg["max_window_layers"] = case["layers"]
    elif case["arch"] == "qwen3":
        cfg["attention_bias"] = False
        cfg["use_sliding_window"] = False
        cfg["sliding_window"] = None
        cfg["max_window_layers"] = case["layers"]
    return cfg


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------
def make_weights(case):
    """Returns an ordered dict name -> float32 tensor (already bf16-rounded for bf16 cases)."""
    g = torch.Generator().manual_seed(case["seed"])
    V, C, I = case["vocab"], case["hidden"], case["inter"]
    H, Hkv, D = case["heads"], case["kv_heads"], head_dim_of(case)

    def mat(rows, cols, std=0.2):
        return torch.randn(rows, cols, generator=g, dtype=torch.float32) * std

    def vec(n, std=0.2):
        return torch.randn(n, generator=g, dtype=torch.float32) * std

    def norm(n):
        return 1.0 + 0.1 * torch.randn(n, generator=g, dtype=torch.float32)

    w = {}
    w["model.embed_tokens.weight"] = mat(V, C, 0.5)
    for l in range(case["layers"]):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = norm(C)
        w[p + "self_attn.q_proj.weight"] = mat(H * D, C)
        w[p + "self_attn.k_proj.weight"] = mat(Hkv * D, C)
        w[p + "self_attn.v_proj.weight"] = mat(Hkv * D, C)
        if case["arch"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = vec(H * D)
            w[p + "self_attn.k_proj.bias"] = vec(Hkv * D)
            w[p + "self_attn.v_proj.bias"] = vec(Hkv * D)
        w[p + "self_attn.o_proj.weight"] = mat(C, H * D)
        if case["arch"] == "qwen3":
            w[p + "self_attn.q_norm.weight"] = norm(D)
            w[p + "self_attn.k_norm.weight"] = norm(D)
        w[p + "post_attention_layernorm.weight"] = norm(C)
        w[p + "mlp.gate_proj.weight"] = mat(I, C)
        w[p + "mlp.up_proj.weight"] = mat(I, C)
        w[p + "mlp.down_proj.weight"] = mat(C, I)
    w["model.norm.weight"] = norm(C)
    if not case["tie"]:
        w["lm_head.weight"] = mat(V, C, 0.3)
    if case["dtype"] == "bfloat16":
        w = {k: v.to(torch.bfloat16).to(torch.float32) for k, v in w.items()}
    return w


# ---------------------------------------------------------------------------
# safetensors writer / reader (hand-rolled)
# ---------------------------------------------------------------------------
def tensor_bytes(t, dtype):
    t = t.contiguous()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "BF16":
        bits = t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2")
        return bits.tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, tensor). Writes the file; returns total data bytes."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name, t in tensors:
        b = tensor_bytes(t, dtype)
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
    return off


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out = {}
    expect = 0
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                     key=lambda kv: kv[1]["data_offsets"][0])
    for name, info in entries:
        b, e = info["data_offsets"]
        assert b == expect, "hole or overlap in %s at %s" % (path, name)
        expect = e
        raw = body[b:e]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            t = torch.from_numpy(arr.copy())
        elif info["dtype"] == "BF16":
            arr = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            t = torch.from_numpy(arr.view(np.float32).copy())
        else:
            raise ValueError(info["dtype"])
        out[name] = t.reshape(info["shape"])
    assert expect == len(body), "trailing bytes in %s" % path
    return out


def write_weights(case, outdir, weights):
    dtype = "BF16" if case["dtype"] == "bfloat16" else "F32"
    items = list(weights.items())
    if case["storage"] == "single":
        write_safetensors(os.path.join(outdir, "model.safetensors"), items, dtype)
        return
    assert case["storage"] == "sharded"
    # Shard 1: embeddings + layer 0; shard 2: everything else.
    first = [(k, v) for k, v in items
             if k.startswith("model.embed_tokens.") or k.startswith("model.layers.0.")]
    first_names = set(k for k, _ in first)
    second = [(k, v) for k, v in items if k not in first_names]
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    total = 0
    weight_map = {}
    for fname, part in zip(names, [first, second]):
        total += write_safetensors(os.path.join(outdir, fname), part, dtype)
        for k, _ in part:
            weight_map[k] = fname
    index = {"metadata": {"total_size": total},
             "weight_map": {k: weight_map[k] for k in sorted(weight_map)}}
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def load_weights(outdir):
    idx = os.path.join(outdir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            index = json.load(f)
        out = {}
        for fname in sorted(set(index["weight_map"].values())):
            part = read_safetensors(os.path.join(outdir, fname))
            for k, v in part.items():
                assert index["weight_map"][k] == fname
                out[k] = v
        assert set(out) == set(index["weight_map"])
        return out
    return read_safetensors(os.path.join(outdir, "model.safetensors"))


# ---------------------------------------------------------------------------
# The model (float32, HF semantics)
# ---------------------------------------------------------------------------
def rmsnorm(x, w, eps):
    x = x.to(torch.float32)
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope_inv_freq(D, theta, scaling):
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).to(torch.float32) / D))
    if scaling is None:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        factor = scaling["factor"]
        low = scaling["low_freq_factor"]
        high = scaling["high_freq_factor"]
        orig = scaling["original_max_position_embeddings"]
        low_freq_wavelen = orig / low
        high_freq_wavelen = orig / high
        wavelen = 2 * math.pi / inv_freq
        out = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth = (orig / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * out / factor + smooth * out
        is_medium = (~(wavelen < high_freq_wavelen)) & (~(wavelen > low_freq_wavelen))
        return torch.where(is_medium, smoothed, out)
    raise ValueError("unsupported rope scaling %r" % (scaling,))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin):
    # x: [T, heads, D]; cos/sin: [T, D]
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def forward(case, w, ids):
    """ids: list[int] (one sequence, no padding). Returns logits [T, V] float32."""
    C, H, Hkv, D = case["hidden"], case["heads"], case["kv_heads"], head_dim_of(case)
    eps = case["eps"]
    T = len(ids)
    h = w["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.long)]

    inv_freq = rope_inv_freq(D, case["theta"], case["rope_scaling"])
    pos = torch.arange(T, dtype=torch.float32)
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((T, T), float("-inf")).triu(1)

    def lin(x, name):
        y = x @ w[name + ".weight"].t()
        if name + ".bias" in w:
            y = y + w[name + ".bias"]
        return y

    for l in range(case["layers"]):
        p = "model.layers.%d." % l
        x = rmsnorm(h, w[p + "input_layernorm.weight"], eps)
        q = lin(x, p + "self_attn.q_proj").view(T, H, D)
        k = lin(x, p + "self_attn.k_proj").view(T, Hkv, D)
        v = lin(x, p + "self_attn.v_proj").view(T, Hkv, D)
        if case["arch"] == "qwen3":
            q = rmsnorm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        group = H // Hkv
        k = k.repeat_interleave(group, dim=1)  # query head j uses kv head j // group
        v = v.repeat_interleave(group, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(D) + mask
        probs = torch.softmax(scores.to(torch.float32), dim=-1)
        attn = torch.einsum("hts,shd->thd", probs, v).reshape(T, H * D)
        h = h + lin(attn, p + "self_attn.o_proj")
        x = rmsnorm(h, w[p + "post_attention_layernorm.weight"], eps)
        mlp = lin(torch.nn.functional.silu(lin(x, p + "mlp.gate_proj")) * lin(x, p + "mlp.up_proj"),
                  p + "mlp.down_proj")
        h = h + mlp
    h = rmsnorm(h, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if case["tie"] else w["lm_head.weight"]
    return h @ head.t()


def naive_forward(case, w, ids):
    """Independent float64 numpy re-implementation with explicit loops and pairwise rotation;
    used only to cross-check forward()."""
    C, H, Hkv, D = case["hidden"], case["heads"], case["kv_heads"], head_dim_of(case)
    eps, half, T = case["eps"], head_dim_of(case) // 2, len(ids)
    W = {k: v.double().numpy() for k, v in w.items()}
    inv = rope_inv_freq(D, case["theta"], case["rope_scaling"]).double().numpy()

    def norm(x, g):
        return g * x / np.sqrt(np.mean(x * x) + eps)

    def rot(vec, t):
        out = vec.copy()
        for i in range(half):
            c, s = math.cos(t * inv[i]), math.sin(t * inv[i])
            a, b = vec[i], vec[i + half]
            out[i] = a * c - b * s
            out[i + half] = b * c + a * s
        return out

    def proj(name, x):
        y = W[name + ".weight"] @ x
        return y + W[name + ".bias"] if name + ".bias" in W else y

    hs = [W["model.embed_tokens.weight"][i].copy() for i in ids]
    for l in range(case["layers"]):
        p = "model.layers.%d.self_attn." % l
        qs, ks, vs = [], [], []
        for t in range(T):
            x = norm(hs[t], W["model.layers.%d.input_layernorm.weight" % l])
            q = proj(p + "q_proj", x).reshape(H, D)
            k = proj(p + "k_proj", x).reshape(Hkv, D)
            v = proj(p + "v_proj", x).reshape(Hkv, D)
            if case["arch"] == "qwen3":
                q = np.stack([norm(q[j], W[p + "q_norm.weight"]) for j in range(H)])
                k = np.stack([norm(k[j], W[p + "k_norm.weight"]) for j in range(Hkv)])
            qs.append(np.stack([rot(q[j], t) for j in range(H)]))
            ks.append(np.stack([rot(k[j], t) for j in range(Hkv)]))
            vs.append(v)
        new = []
        for t in range(T):
            heads = []
            for j in range(H):
                kvh = j // (H // Hkv)
                sc = np.array([qs[t][j] @ ks[s][kvh] / math.sqrt(D) for s in range(t + 1)])
                e = np.exp(sc - sc.max())
                pr = e / e.sum()
                heads.append(sum(pr[s] * vs[s][kvh] for s in range(t + 1)))
            h = hs[t] + proj(p + "o_proj", np.concatenate(heads))
            m = "model.layers.%d.mlp." % l
            x = norm(h, W["model.layers.%d.post_attention_layernorm.weight" % l])
            g = proj(m + "gate_proj", x)
            act = g / (1.0 + np.exp(-g)) * proj(m + "up_proj", x)
            new.append(h + proj(m + "down_proj", act))
        hs = new
    head = W["model.embed_tokens.weight"] if case["tie"] else W["lm_head.weight"]
    return np.stack([head @ norm(h, W["model.norm.weight"]) for h in hs])


def greedy(case, w, prompt, steps):
    ids = list(prompt)
    out = []
    min_margin = float("inf")
    for _ in range(steps):
        logits = forward(case, w, ids)[-1]
        top2 = torch.topk(logits, 2).values
        min_margin = min(min_margin, float(top2[0] - top2[1]))
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        ids.append(nxt)
    return out, min_margin


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------
def check_causality(case, w, ids, full):
    for k in range(1, len(ids) + 1):
        pre = forward(case, w, ids[:k])
        diff = float((pre - full[:k]).abs().max())
        assert diff < 1e-4, "%s: causality check failed at prefix %d (diff %g)" % (case["name"], k, diff)


def check_rope_scaling(case, w, ids, full):
    sc = case["rope_scaling"]
    if sc is None:
        return
    D = head_dim_of(case)
    plain = rope_inv_freq(D, case["theta"], None)
    scaled = rope_inv_freq(D, case["theta"], sc)
    if sc["rope_type"] == "llama3":
        ratio = (plain / scaled).tolist()
        kept = sum(1 for r in ratio if abs(r - 1.0) < 1e-6)
        divided = sum(1 for r in ratio if abs(r - sc["factor"]) < 1e-4)
        smoothed = len(ratio) - kept - divided
        assert kept > 0 and divided > 0 and smoothed > 0, \
            "%s: llama3 scaling does not hit all regimes: %r" % (case["name"], ratio)
    unscaled_case = dict(case, rope_scaling=None)
    diff = float((forward(unscaled_case, w, ids) - full).abs().max())
    assert diff > 1e-2, "%s: rope scaling barely changes logits (%g)" % (case["name"], diff)


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def f32_list(t):
    """Nested lists of Python floats holding the exact float32 values."""
    arr = t.detach().to(torch.float32).numpy()
    return [[float(x) for x in row] for row in arr]


def dump_golden(path, obj):
    # One logits row per line keeps the file diffable without bloating it.
    def enc(o, indent):
        pad = "  " * indent
        if isinstance(o, dict):
            items = ['%s  %s: %s' % (pad, json.dumps(k), enc(v, indent + 1)) for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and o and isinstance(o[0], list):
            return "[\n" + ",\n".join(pad + "  " + enc(x, indent + 1) for x in o) + "\n" + pad + "]"
        if isinstance(o, list):
            return "[" + ",".join(enc(x, indent) for x in o) + "]"
        if isinstance(o, float):
            assert math.isfinite(o)
            return repr(o)
        return json.dumps(o)
    text = enc(obj, 0) + "\n"
    json.loads(text)  # sanity
    with open(path, "w") as f:
        f.write(text)


def gen_case(case):
    outdir = os.path.join(OUT_ROOT, case["name"])
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)

    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(make_config(case), f, indent=2)
        f.write("\n")

    weights = make_weights(case)
    write_weights(case, outdir, weights)
    # Compute everything from what was written, which also checks the writer.
    w = load_weights(outdir)
    assert list(sorted(w)) == list(sorted(weights))
    for k in weights:
        assert torch.equal(w[k], weights[k]), "safetensors round trip mismatch: " + k

    g = torch.Generator().manual_seed(case["seed"] + 50000)
    V = case["vocab"]

    def rand_ids(n):
        return torch.randint(0, V, (n,), generator=g).tolist()

    input_ids = [rand_ids(SEQ_LEN), rand_ids(SEQ_LEN)]
    assert input_ids[0] != input_ids[1]
    ragged = [rand_ids(n) for n in RAGGED_LENS]
    prompt = rand_ids(PROMPT_LEN)

    logits = [forward(case, w, s) for s in input_ids]
    logits_ragged = [forward(case, w, s) for s in ragged]
    for s, lg in zip(input_ids, logits):
        check_causality(case, w, s, lg)
        std = float(lg.std())
        assert std > 0.5, "%s: logits too flat (std %g)" % (case["name"], std)
    check_rope_scaling(case, w, input_ids[0], logits[0])
    for s, lg in zip(input_ids + ragged, logits + logits_ragged):
        ref = naive_forward(case, w, s)
        diff = float(np.abs(ref - lg.double().numpy()).max())
        assert diff < 1e-4 * max(1.0, float(np.abs(ref).max())), \
            "%s: float32 forward vs float64 naive differ by %g" % (case["name"], diff)
    ids, margin = greedy(case, w, prompt, GREEDY_STEPS)
    assert margin > 1e-3, "%s: greedy argmax too close to a tie (%g)" % (case["name"], margin)

    golden = {
        "note": case["note"],
        "input_ids": input_ids,
        "logits": [f32_list(lg) for lg in logits],
        "input_ids_ragged": ragged,
        "logits_ragged": [f32_list(lg) for lg in logits_ragged],
        "greedy": {"prompt": prompt, "ids": ids, "min_top2_margin": float(np.float32(margin))},
    }
    dump_golden(os.path.join(outdir, "golden.json"), golden)
    size = sum(os.path.getsize(os.path.join(outdir, f)) for f in os.listdir(outdir))
    print("%-24s ok  greedy margin %.4f  logits std %.3f  %6.1f KB"
          % (case["name"], margin, float(logits[0].std()), size / 1024.0))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_ROOT, exist_ok=True)
    only = set(sys.argv[1:])
    for case in CASES:
        if only and case["name"] not in only:
            continue
        gen_case(case)


if __name__ == "__main__":
    main()
