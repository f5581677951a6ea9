#!/usr/bin/python3
"""Golden logits for tiny random models of the families beyond Llama: Gemma 2, Gemma 3, Phi-3,
SmolLM3, EXAONE 3 and EXAONE 4.

Run with Debian's PyTorch (torch 1.13, numpy):

    /usr/bin/python3 tools/golden/gen_family_goldens.py [CASE ...]

Each case (re)writes tests/data/golden/<case>/ (config.json, model.safetensors, golden.json) in
the same layout as gen_model_goldens.py, so tests/model/model_golden.cpp checks them with the
others. The reference below is a float64 re-statement of each family's Hugging Face decoder (the
modeling_*.py conventions: Gemma's (1 + w) norms, sandwich norms, GeGLU, embedding scale,
query_pre_attn_scalar, soft-capping, sliding windows with their own RoPE base; Phi-3's fused
projections, partial rotary and longrope; SmolLM3's layers without RoPE; EXAONE's names and
EXAONE 4's post-norms and global layers without RoPE). No transformers package is used; shapes
are odd on purpose (head_dim != hidden / heads, GQA, windows shorter than the sequence).
"""

import json
import math
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_goldens as base  # noqa: E402  (safetensors writer/reader, golden dumper)

OUT_ROOT = base.OUT_ROOT
SEQ_LEN = 9
RAGGED_LENS = (4, 9)
GREEDY_STEPS = 8

CASES = [
    dict(name="gemma2", arch="gemma2", seed=2001, vocab=96, hidden=48, inter=80, layers=3, heads=4, kv_heads=2,
         head_dim=16, theta=10000.0, eps=1e-6, dtype="float32", tie=True, prompt_len=4,
         extra=dict(query_pre_attn_scalar=24, attn_logit_softcapping=1.5, final_logit_softcapping=4.0,
                    sliding_window=3, layer_types=["sliding_attention", "full_attention", "sliding_attention"]),
         note="Gemma2ForCausalLM: (1+w) RMSNorms, sandwich norms, GeGLU (tanh GELU), embeddings x sqrt(48), "
              "query_pre_attn_scalar 24 != head_dim 16, attention soft-cap 1.5 and final soft-cap 4.0 (both "
              "active), sliding window 3 < 9 tokens on layers 0 and 2, GQA 4q/2kv, tied embeddings."),
    dict(name="gemma3", arch="gemma3", seed=2002, vocab=96, hidden=40, inter=72, layers=4, heads=2, kv_heads=1,
         head_dim=24, theta=1000000.0, eps=1e-6, dtype="bfloat16", tie=True, prompt_len=4,
         rope_scaling={"rope_type": "linear", "factor": 4.0},
         extra=dict(query_pre_attn_scalar=20, sliding_window=4, sliding_window_pattern=3,
                    rope_local_base_freq=10000.0),
         note="Gemma3ForCausalLM (text): Gemma 2's block plus per-head q/k (1+w) norms, no soft-capping, "
              "sliding window 4 on layers 0, 1, 3 (pattern 3), local RoPE base 1e4 unscaled and global base 1e6 "
              "with linear scaling x4, MQA 2q/1kv, head_dim 24, BF16 weights (embedding scale rounded to bf16)."),
    dict(name="phi3", arch="phi3", seed=2003, vocab=80, hidden=48, inter=64, layers=2, heads=4, kv_heads=2,
         head_dim=12, theta=10000.0, eps=1e-5, dtype="float32", tie=False, prompt_len=6, max_pos=20,
         rope_scaling={"rope_type": "longrope", "short_factor": [1.0, 1.5, 2.5], "long_factor": [1.2, 3.0, 7.0]},
         extra=dict(partial_rotary_factor=0.5, original_max_position_embeddings=5),
         note="Phi3ForCausalLM: fused qkv_proj and gate_up_proj, partial rotary 0.5 (6 of 12 channels), longrope "
              "with original context 5 of 20 (attention factor sqrt(1 + ln 4 / ln 5)); sequences of 9 use the "
              "long factors, the ragged one of 4 the short ones, GQA 4q/2kv, untied."),
    dict(name="smollm3", arch="smollm3", seed=2004, vocab=96, hidden=32, inter=64, layers=4, heads=4, kv_heads=1,
         head_dim=8, theta=50000.0, eps=1e-6, dtype="float32", tie=True, prompt_len=4,
         extra=dict(no_rope_layers=[1, 0, 1, 1]),
         note="SmolLM3ForCausalLM: Llama block, layer 1 without RoPE (no_rope_layers), MQA 4q/1kv, tied."),
    dict(name="exaone", arch="exaone", seed=2005, vocab=96, hidden=32, inter=48, layers=2, heads=4, kv_heads=2,
         head_dim=8, theta=500000.0, eps=1e-5, dtype="float32", tie=False, prompt_len=4, max_pos=512,
         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 64},
         note="ExaoneForCausalLM (EXAONE 3.x remote code): transformer.h.N.attn.attention.*_proj, mlp.c_fc_0/1, "
              "c_proj, ln_1/ln_2/ln_f names, num_layers / layer_norm_epsilon keys, llama3 rope scaling, untied."),
    dict(name="exaone4", arch="exaone4", seed=2006, vocab=96, hidden=32, inter=64, layers=4, heads=4, kv_heads=2,
         head_dim=8, theta=1000000.0, eps=1e-5, dtype="float32", tie=False, prompt_len=4,
         extra=dict(sliding_window=3, sliding_window_pattern="LLLG"),
         note="Exaone4ForCausalLM: no pre-norms, post-attention and post-feedforward norms, q/k norm, sliding "
              "window 3 on layers 0-2 (LLLG) with RoPE, global layer 3 without RoPE, GQA 4q/2kv, untied."),
]

HF_ARCH = {"gemma2": ("Gemma2ForCausalLM", "gemma2"), "gemma3": ("Gemma3ForCausalLM", "gemma3_text"),
           "phi3": ("Phi3ForCausalLM", "phi3"), "smollm3": ("SmolLM3ForCausalLM", "smollm3"),
           "exaone": ("ExaoneForCausalLM", "exaone"), "exaone4": ("Exaone4ForCausalLM", "exaone4")}


def is_gemma(case):
    return case["arch"] in ("gemma2", "gemma3")


# ---------------------------------------------------------------------------
# Per-layer structure, as each family's config class derives it
# ---------------------------------------------------------------------------
def layer_sliding(case):
    L, x, a = case["layers"], case.get("extra", {}), case["arch"]
    if "layer_types" in x:
        return [t == "sliding_attention" for t in x["layer_types"]]
    if a == "gemma3":
        p = x.get("sliding_window_pattern", 6)
        return [(i + 1) % p != 0 for i in range(L)]
    if a == "exaone4" and x.get("sliding_window"):
        pat = x["sliding_window_pattern"]
        return [pat[i % len(pat)] == "L" for i in range(L)]
    return [False] * L


def layer_rope(case):
    L, x, a = case["layers"], case.get("extra", {}), case["arch"]
    if a == "smollm3":
        return [bool(v) for v in x["no_rope_layers"]]
    if a == "exaone4" and x.get("sliding_window"):
        return layer_sliding(case)  # global layers use no RoPE
    return [True] * L


# ---------------------------------------------------------------------------
# Config and weights
# ---------------------------------------------------------------------------
def make_config(case):
    hf, model_type = HF_ARCH[case["arch"]]
    exaone = case["arch"] == "exaone"
    cfg = {"architectures": [hf], "model_type": model_type, "vocab_size": case["vocab"],
           "hidden_size": case["hidden"], "intermediate_size": case["inter"],
           ("num_layers" if exaone else "num_hidden_layers"): case["layers"],
           "num_attention_heads": case["heads"], "num_key_value_heads": case["kv_heads"],
           "head_dim": case["head_dim"], ("layer_norm_epsilon" if exaone else "rms_norm_eps"): case["eps"],
           "rope_theta": case["theta"], "max_position_embeddings": case.get("max_pos", 128),
           "tie_word_embeddings": case["tie"], "torch_dtype": case["dtype"], "bos_token_id": 1, "eos_token_id": 2,
           "initializer_range": 0.02, "attention_dropout": 0.0,
           "rope_scaling": case.get("rope_scaling")}
    if is_gemma(case):
        cfg["hidden_activation"] = "gelu_pytorch_tanh"
    elif exaone:
        cfg["activation_function"] = "silu"
    else:
        cfg["hidden_act"] = "silu"
    for k, v in case.get("extra", {}).items():
        cfg[k] = v
    if case["arch"] == "gemma3":
        cfg.setdefault("final_logit_softcapping", None)
        cfg.setdefault("attn_logit_softcapping", None)
    return cfg


def tensor_names(case):
    """(name, shape, kind) in checkpoint order; kind: 'mat', 'norm', 'embed'."""
    a, L = case["arch"], case["layers"]
    V, C, F, H, Hkv, D = case["vocab"], case["hidden"], case["inter"], case["heads"], case["kv_heads"], case["head_dim"]
    out = []
    if a == "exaone":
        out.append(("transformer.wte.weight", (V, C), "embed"))
        for l in range(L):
            p = "transformer.h.%d." % l
            out += [(p + "ln_1.weight", (C,), "norm"),
                    (p + "attn.attention.q_proj.weight", (H * D, C), "mat"),
                    (p + "attn.attention.k_proj.weight", (Hkv * D, C), "mat"),
                    (p + "attn.attention.v_proj.weight", (Hkv * D, C), "mat"),
                    (p + "attn.attention.out_proj.weight", (C, H * D), "mat"),
                    (p + "ln_2.weight", (C,), "norm"),
                    (p + "mlp.c_fc_0.weight", (F, C), "mat"), (p + "mlp.c_fc_1.weight", (F, C), "mat"),
                    (p + "mlp.c_proj.weight", (C, F), "mat")]
        out.append(("transformer.ln_f.weight", (C,), "norm"))
    else:
        out.append(("model.embed_tokens.weight", (V, C), "embed"))
        for l in range(L):
            p = "model.layers.%d." % l
            if a != "exaone4":
                out.append((p + "input_layernorm.weight", (C,), "norm"))
            if a == "phi3":
                out.append((p + "self_attn.qkv_proj.weight", ((H + 2 * Hkv) * D, C), "mat"))
            else:
                out += [(p + "self_attn.q_proj.weight", (H * D, C), "mat"),
                        (p + "self_attn.k_proj.weight", (Hkv * D, C), "mat"),
                        (p + "self_attn.v_proj.weight", (Hkv * D, C), "mat")]
            out.append((p + "self_attn.o_proj.weight", (C, H * D), "mat"))
            if a in ("gemma3", "exaone4"):
                out += [(p + "self_attn.q_norm.weight", (D,), "norm"), (p + "self_attn.k_norm.weight", (D,), "norm")]
            out.append((p + "post_attention_layernorm.weight", (C,), "norm"))
            if is_gemma(case):
                out.append((p + "pre_feedforward_layernorm.weight", (C,), "norm"))
            if a == "phi3":
                out.append((p + "mlp.gate_up_proj.weight", (2 * F, C), "mat"))
            else:
                out += [(p + "mlp.gate_proj.weight", (F, C), "mat"), (p + "mlp.up_proj.weight", (F, C), "mat")]
            out.append((p + "mlp.down_proj.weight", (C, F), "mat"))
            if is_gemma(case) or a == "exaone4":
                out.append((p + "post_feedforward_layernorm.weight", (C,), "norm"))
        out.append(("model.norm.weight", (C,), "norm"))
    if not case["tie"]:
        out.append(("lm_head.weight", (V, C), "mat"))
    return out


def make_weights(case):
    g = torch.Generator().manual_seed(case["seed"])
    w = {}
    for name, shape, kind in tensor_names(case):
        if kind == "norm":  # a scale near 1: Gemma stores it as 1 + w
            t = 0.1 * torch.randn(*shape, generator=g) + (0.0 if is_gemma(case) else 1.0)
        elif kind == "embed":
            t = torch.randn(*shape, generator=g) * (0.3 if is_gemma(case) else 0.5)
        else:
            t = torch.randn(*shape, generator=g) * 0.2
        w[name] = t.to(torch.float32)
    if case["dtype"] == "bfloat16":
        w = {k: v.to(torch.bfloat16).to(torch.float32) for k, v in w.items()}
    return w


# ---------------------------------------------------------------------------
# The reference forward, float64
# ---------------------------------------------------------------------------
def rmsnorm(x, w, eps, plus_one):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * ((1.0 + w) if plus_one else w)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def inv_freq_of(case, local, T):
    """float32 inverse frequencies as HF computes them, and the cos/sin multiplier."""
    x = case.get("extra", {})
    R = int(case["head_dim"] * x.get("partial_rotary_factor", 1.0))
    theta = x["rope_local_base_freq"] if local else case["theta"]
    expo = torch.arange(0, R, 2, dtype=torch.int64).to(torch.float32) / R
    sc = None if local else case.get("rope_scaling")
    if sc is not None and sc["rope_type"] == "longrope":
        orig = x["original_max_position_embeddings"]
        ext = torch.tensor(sc["long_factor"] if T > orig else sc["short_factor"], dtype=torch.float32)
        factor = case.get("max_pos", 128) / orig
        mscale = math.sqrt(1 + math.log(factor) / math.log(orig)) if factor > 1 else 1.0
        return 1.0 / (ext * theta ** expo), mscale, R
    inv = base.rope_inv_freq(R, theta, sc)  # default / linear / llama3, shared with the Llama goldens
    return inv, 1.0, R


def rope(x, pos, inv, mscale, R):
    """HF rotate-half RoPE on the first R channels of x [T, heads, D], float64 angles from float32 ones."""
    ang = (pos[:, None].to(torch.float32) * inv[None, :]).double()
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos() * mscale, emb.sin() * mscale
    xr, xp = x[..., :R], x[..., R:]
    xr = xr * cos[:, None, :] + base.rotate_half(xr) * sin[:, None, :]
    return torch.cat((xr, xp), dim=-1)


def forward(case, w, ids, lora=None, lora_scaling=1.0):
    """ids: one sequence; returns float64 logits [T, V]. `w` may hold float64 tensors that require
    grad; `lora` maps a module path ("model.layers.0.self_attn.q_proj") to its (A [r, in], B [out, r])."""
    a, x_ = case["arch"], case.get("extra", {})
    C, H, Hkv, D, F, eps = case["hidden"], case["heads"], case["kv_heads"], case["head_dim"], case["inter"], case["eps"]
    gem = is_gemma(case)
    W = {k: v.double() for k, v in w.items()}

    def lin(x, name):  # PEFT LoRA: y = x W^T + scaling (x A^T) B^T
        y = x @ W[name + ".weight"].t()
        if lora and name in lora:
            A, B = lora[name]
            y = y + lora_scaling * ((x @ A.t()) @ B.t())
        return y

    T = len(ids)
    pos = torch.arange(T)
    exa = a == "exaone"
    P = "transformer.h.%d." if exa else "model.layers.%d."
    emb_name = "transformer.wte.weight" if exa else "model.embed_tokens.weight"
    h = W[emb_name][torch.tensor(ids)]
    if gem:
        s = torch.tensor(C ** 0.5, dtype=torch.float32)
        if case["dtype"] == "bfloat16":
            s = s.to(torch.bfloat16).to(torch.float32)
        h = h * float(s)
    norm = lambda v, n: rmsnorm(v, W[n], eps, gem)  # noqa: E731
    sliding, use_rope = layer_sliding(case), layer_rope(case)
    window = x_.get("sliding_window") or 0
    qpas = x_.get("query_pre_attn_scalar", D)
    scale = qpas ** -0.5
    cap = x_.get("attn_logit_softcapping") or 0.0
    for l in range(case["layers"]):
        p = P % l
        ap = p + ("attn.attention." if exa else "self_attn.")
        mp = p + "mlp."
        res = h
        xin = h if a == "exaone4" else norm(h, p + ("ln_1.weight" if exa else "input_layernorm.weight"))
        if a == "phi3":
            qkv = lin(xin, ap + "qkv_proj")
            q, k, v = qkv.split([H * D, Hkv * D, Hkv * D], dim=-1)
        else:
            q, k, v = (lin(xin, ap + n + "_proj") for n in "qkv")
        q, k, v = q.view(T, H, D), k.view(T, Hkv, D), v.view(T, Hkv, D)
        if a in ("gemma3", "exaone4"):
            q, k = norm(q, ap + "q_norm.weight"), norm(k, ap + "k_norm.weight")
        if use_rope[l]:
            local = a == "gemma3" and sliding[l]
            inv, mscale, R = inv_freq_of(case, local, T)
            q, k = rope(q, pos, inv, mscale, R), rope(k, pos, inv, mscale, R)
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        sc = torch.einsum("thd,shd->hts", q, k) * scale
        if cap:
            sc = cap * torch.tanh(sc / cap)
        i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
        masked = j > i
        if sliding[l] and window:
            masked = masked | (j <= i - window)
        sc = sc.masked_fill(masked[None], float("-inf"))
        att = torch.einsum("hts,shd->thd", torch.softmax(sc, dim=-1), v).reshape(T, H * D)
        o = lin(att, ap + ("out_proj" if exa else "o_proj"))
        if gem or a == "exaone4":
            o = norm(o, p + "post_attention_layernorm.weight")
        h = res + o
        res = h
        if a == "exaone4":
            m = h
        elif gem:
            m = norm(h, p + "pre_feedforward_layernorm.weight")
        else:
            m = norm(h, p + ("ln_2.weight" if exa else "post_attention_layernorm.weight"))
        if a == "phi3":
            gate, up = lin(m, mp + "gate_up_proj").split([F, F], dim=-1)
        elif exa:
            gate, up = lin(m, mp + "c_fc_0"), lin(m, mp + "c_fc_1")
        else:
            gate, up = lin(m, mp + "gate_proj"), lin(m, mp + "up_proj")
        act = (gelu_tanh(gate) if gem else torch.nn.functional.silu(gate)) * up
        y = lin(act, mp + ("c_proj" if exa else "down_proj"))
        if gem or a == "exaone4":
            y = norm(y, p + "post_feedforward_layernorm.weight")
        h = res + y
    h = norm(h, "transformer.ln_f.weight" if exa else "model.norm.weight")
    head = W[emb_name] if case["tie"] else W["lm_head.weight"]
    logits = h @ head.t()
    fcap = x_.get("final_logit_softcapping") or 0.0
    if fcap:
        logits = fcap * torch.tanh(logits / fcap)
    return logits


LORA_R, LORA_ALPHA = 2, 3.0


def causal_lm_loss(logits, ids):
    """Hugging Face's causal-LM loss: mean cross-entropy of token t+1 given 0..t."""
    return torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]))


def make_lora(case, w, seed):
    """A PEFT LoRA adapter on every projection (r=2, alpha=3), A and B both random so both get gradients."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape, kind in tensor_names(case):
        if kind != "mat" or name == "lm_head.weight":
            continue
        path = name[: -len(".weight")]
        rows, cols = shape
        out[path] = (torch.randn(LORA_R, cols, generator=g) * 0.3, torch.randn(rows, LORA_R, generator=g) * 0.3)
    return out


def gradients(case, w, ids, lora):
    """d(loss)/d(LoRA A, B) with the base frozen, and d(loss)/d(every base tensor) for full fine-tuning."""
    lw = {p: (A.double().requires_grad_(), B.double().requires_grad_()) for p, (A, B) in lora.items()}
    loss = causal_lm_loss(forward(case, w, ids, lw, LORA_ALPHA / LORA_R), ids)
    loss.backward()
    lora_grads = {}
    for p, (A, B) in lw.items():
        lora_grads["base_model.model." + p + ".lora_A.weight"] = A.grad.float()
        lora_grads["base_model.model." + p + ".lora_B.weight"] = B.grad.float()
    fw = {k: v.double().requires_grad_() for k, v in w.items()}
    full_loss = causal_lm_loss(forward(case, fw, ids), ids)
    full_loss.backward()
    full_grads = {k: v.grad.float() for k, v in fw.items()}
    return float(loss), lora_grads, float(full_loss), full_grads


def greedy(case, w, prompt, steps):
    ids, out, margin = list(prompt), [], float("inf")
    for _ in range(steps):
        logits = forward(case, w, ids)[-1]
        top2 = torch.topk(logits, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        ids.append(nxt)
    return out, margin


def check_features(case, w, ids, full):
    """Each feature the case claims must change the logits (so a lathe that ignores it fails)."""
    x = case.get("extra", {})
    def differs(mod, what):
        diff = float((forward(mod, w, ids) - full).abs().max())
        assert diff > 1e-3, "%s: %s barely changes logits (%g)" % (case["name"], what, diff)
    if x.get("sliding_window"):
        differs(dict(case, extra=dict(x, sliding_window=0)), "the sliding window")
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if x.get(key):
            differs(dict(case, extra=dict(x, **{key: 0})), key)
    if "query_pre_attn_scalar" in x:
        differs(dict(case, extra=dict(x, query_pre_attn_scalar=case["head_dim"])), "query_pre_attn_scalar")
    if case.get("rope_scaling"):
        differs(dict(case, rope_scaling=None, extra=dict(x)) if case["rope_scaling"]["rope_type"] != "longrope"
                else dict(case, rope_scaling=dict(case["rope_scaling"], long_factor=case["rope_scaling"]["short_factor"])),
                "rope scaling")


def gen_case(case):
    outdir = os.path.join(OUT_ROOT, case["name"])
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(make_config(case), f, indent=2)
        f.write("\n")
    weights = make_weights(case)
    dtype = "BF16" if case["dtype"] == "bfloat16" else "F32"
    base.write_safetensors(os.path.join(outdir, "model.safetensors"), list(weights.items()), dtype)
    w = base.read_safetensors(os.path.join(outdir, "model.safetensors"))
    for k in weights:
        assert torch.equal(w[k], weights[k]), "safetensors round trip mismatch: " + k

    g = torch.Generator().manual_seed(case["seed"] + 50000)
    rand_ids = lambda n: torch.randint(0, case["vocab"], (n,), generator=g).tolist()  # noqa: E731
    input_ids = [rand_ids(SEQ_LEN), rand_ids(SEQ_LEN)]
    ragged = [rand_ids(n) for n in RAGGED_LENS]
    prompt = rand_ids(case["prompt_len"])
    logits = [forward(case, w, s) for s in input_ids]
    logits_ragged = [forward(case, w, s) for s in ragged]
    for s, lg in zip(input_ids, logits):
        assert float(lg.std()) > 0.5, "%s: logits too flat (std %g)" % (case["name"], float(lg.std()))
    check_features(case, w, input_ids[0], logits[0])
    ids, margin = greedy(case, w, prompt, GREEDY_STEPS)
    assert margin > 1e-3, "%s: greedy argmax too close to a tie (%g)" % (case["name"], margin)
    # Training: the loss and its gradients for LoRA (adapter saved in PEFT's layout) and full fine-tuning.
    lora = make_lora(case, w, case["seed"] + 7)
    adir = os.path.join(outdir, "lora")
    os.makedirs(adir)
    tensors = []
    for p, (A, B) in lora.items():
        tensors += [("base_model.model." + p + ".lora_A.weight", A), ("base_model.model." + p + ".lora_B.weight", B)]
    base.write_safetensors(os.path.join(adir, "adapter_model.safetensors"), tensors, "F32")
    modules = sorted(set(p.rsplit(".", 1)[-1] for p in lora))
    with open(os.path.join(adir, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": LORA_R, "lora_alpha": LORA_ALPHA,
                   "lora_dropout": 0.0, "target_modules": modules, "bias": "none", "use_rslora": False,
                   "use_dora": False}, f, indent=2)
        f.write("\n")
    lora_loss, lora_grads, full_loss, full_grads = gradients(case, w, input_ids[0], lora)
    # Full fine-tuning: layer 0 and the tensors outside the layers cover every kind of tensor.
    layer0 = lambda k: not any(k.startswith(p) for p in ("model.layers.", "transformer.h.")) or \
        k.startswith("model.layers.0.") or k.startswith("transformer.h.0.")  # noqa: E731
    short = lambda t: [float("%.8g" % x) for x in t.reshape(-1).tolist()]  # noqa: E731
    grads = {"ids": input_ids[0], "lora_loss": lora_loss, "full_loss": full_loss,
             "lora": {k: short(v) for k, v in lora_grads.items()},
             "full": {k: short(v) for k, v in full_grads.items() if layer0(k)}}
    with open(os.path.join(outdir, "grads.json"), "w") as f:
        json.dump(grads, f, separators=(",", ":"))
        f.write("\n")
    golden = {"note": case["note"], "input_ids": input_ids,
              "logits": [base.f32_list(lg) for lg in logits],
              "input_ids_ragged": ragged, "logits_ragged": [base.f32_list(lg) for lg in logits_ragged],
              "greedy": {"prompt": prompt, "ids": ids, "min_top2_margin": float(np.float32(margin))}}
    base.dump_golden(os.path.join(outdir, "golden.json"), golden)
    print("%-10s ok  greedy margin %.4f  logits std %.3f" % (case["name"], margin, float(logits[0].std())))


def main():
    torch.set_num_threads(1)
    only = set(sys.argv[1:])
    for case in CASES:
        if not only or case["name"] in only:
            gen_case(case)


if __name__ == "__main__":
    main()
