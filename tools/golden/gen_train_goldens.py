#!/usr/bin/python3
"""Golden reference values for lathe's TRAINING paths: LoRA, prefix tuning, full fine-tuning.

Run with Debian's PyTorch (torch 1.13, numpy):

    /usr/bin/python3 tools/golden/gen_train_goldens.py            # all cases
    /usr/bin/python3 tools/golden/gen_train_goldens.py lora_llama # only some

For every case in CASES this (re)writes tests/data/train_golden/<case>/:

    base/config.json, base/model.safetensors   tiny random HF checkpoint (F32)
    data.jsonl                                 the training batch (2 sequences x 8 tokens)
    adapter_init/adapter_config.json,          the INITIAL adapter in PEFT's layout
    adapter_init/adapter_model.safetensors     (LoRA and prefix cases only)
    golden.json                                loss, gradients, logits, 5-step AdamW trajectory

Output is deterministic (fixed seeds, one thread, deterministic algorithms): rerunning gives
identical bytes. No transformers / peft / safetensors package is used; the model math, the
safetensors writer/reader and the JSON writer are imported from gen_model_goldens.py (which this
script does not modify), the training-specific parts (LoRA, prefix K/V, loss, optimizer loop)
are below.

Semantics (all math in torch.float32):

* Model: Hugging Face Llama / Qwen2 decoder math, as in gen_model_goldens.py (RMSNorm in f32,
  rotate_half RoPE, GQA where query head j uses kv head j // (H/Hkv), SiLU MLP, causal softmax
  attention scaled by 1/sqrt(head_dim)). Qwen2 has q/k/v biases and tied embeddings.
* Loss: Hugging Face causal-LM loss. logits[:, :-1] are scored against labels[:, 1:] with natural
  log cross-entropy; the result is the SUM of the token losses over all positions whose label
  is not -100, in the whole batch, divided by the COUNT of such positions (one global mean, not a
  mean of per-sequence means).
* LoRA (PEFT): y = x W^T (+ b) + scaling * ((x A^T) B^T), A [r, in], B [out, r],
  scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora; dropout 0; base bias
  frozen (bias "none"). For the goldens A ~ U(-1/sqrt(in), 1/sqrt(in)) and B ~ N(0, 0.1) so that
  neither factor is zero (PEFT itself starts with B = 0).
* Prefix tuning (PEFT PrefixTuningConfig): token_dim = head_dim * num_key_value_heads. The prefix
  matrix M [P, L*2*token_dim] is either trained directly (`prompt_embeddings`, init N(0, 0.5)) or,
  with prefix_projection, produced by
      E [P, token_dim] -> Linear(token_dim, enc) -> tanh -> Linear(enc, L*2*token_dim)
  (params prompt_encoder.embedding.weight, prompt_encoder.transform.{0,2}.{weight,bias}; torch's
  default nn.Embedding / nn.Linear init under the case seed). M is viewed as [P, L*2, Hkv, D];
  like PEFT's permute([2,0,3,1,4]) + split, layer l takes index 2l as its KEY prefix and 2l+1 as
  its VALUE prefix, each [Hkv, P, D]. Prefix keys are NOT rotated (they are past key/values);
  the real tokens sit at positions P .. P+T-1 (HF derives cache_position from the past length)
  and their queries/keys are rotated there; every query sees all P prefix slots (never masked)
  plus the causal real keys. The saved adapter (`prompt_embeddings`) is the post-MLP M.
* Full fine-tuning: every base parameter is trainable under its HF name; untied model.
* Trajectory: torch.optim.AdamW(lr 1e-2, betas (0.9, 0.999), eps 1e-8). Weight decay follows the
  HF Trainer rule everywhere: parameters whose name contains "bias" and RMSNorm weights get 0,
  all others get the case's weight_decay (0.01 for LoRA / prefix, 0.1 for full FT); the per-param
  value is recorded in hparams.weight_decay_by_param. Schedule: HF linear with warmup,
  lr = base_lr * lambda(s), lambda(s) = s / warmup if s < warmup else
  max(0, (max_steps - s) / (max_steps - warmup)), s = number of optimizer steps already taken
  (so step 1 uses lr 0). Before every step: torch.nn.utils.clip_grad_norm_(all trainable, 1.0)
  (global L2 norm; the pre-clip norm is recorded). Every step uses the same full batch.
  trajectory.losses[i] is the loss of step i's forward, i.e. before step i's update.
"""

import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # importing the sibling script must not leave __pycache__ behind
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_goldens as gm  # noqa: E402  (shared model math, safetensors + JSON writers)

REPO_ROOT = gm.REPO_ROOT
OUT_ROOT = os.path.join(REPO_ROOT, "tests", "data", "train_golden")

BATCH = 2
SEQ_LEN = 8
PROMPT_MASK = (3, 2)  # labels[i][:PROMPT_MASK[i]] = -100

LR = 1e-2
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
WARMUP_STEPS = 2
MAX_STEPS = 5
MAX_GRAD_NORM = 1.0

# Tiny base models. Every llama case uses the same base weights (same base_seed).
BASES = {
    "llama": dict(arch="llama", base_seed=3001, vocab=64, hidden=32, inter=48, layers=2, heads=4,
                  kv_heads=2, head_dim=8, theta=10000.0, eps=1e-5, tie=False, rope_scaling=None,
                  max_pos=128, dtype="float32"),
    "qwen2": dict(arch="qwen2", base_seed=3002, vocab=64, hidden=32, inter=48, layers=2, heads=4,
                  kv_heads=2, head_dim=8, theta=10000.0, eps=1e-5, tie=True, rope_scaling=None,
                  max_pos=128, dtype="float32"),
}

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

CASES = [
    dict(name="lora_llama", base="llama", seed=4001, kind="lora", r=4, lora_alpha=8,
         use_rslora=False, targets=ALL_LINEAR, weight_decay=0.01,
         note="LoRA r=4 alpha=8 (scaling 2) on all 7 linear projections of an untied "
              "LlamaForCausalLM (GQA 4q/2kv)."),
    dict(name="lora_qwen2", base="qwen2", seed=4002, kind="lora", r=4, lora_alpha=16,
         use_rslora=True, targets=["q_proj", "v_proj"], weight_decay=0.01,
         note="rsLoRA r=4 alpha=16 (scaling 16/sqrt(4)=8) on q_proj, v_proj of a Qwen2ForCausalLM "
              "(q/k/v bias, frozen; tied embeddings)."),
    dict(name="prefix_llama", base="llama", seed=4003, kind="prefix", num_virtual_tokens=3,
         prefix_projection=False, encoder_hidden_size=16, weight_decay=0.01,
         note="Prefix tuning, 3 virtual tokens, no projection: prompt_embeddings [3, 2*2*16] "
              "trained directly."),
    dict(name="prefix_llama_proj", base="llama", seed=4004, kind="prefix", num_virtual_tokens=3,
         prefix_projection=True, encoder_hidden_size=16, weight_decay=0.01,
         note="Prefix tuning, 3 virtual tokens, prefix_projection with encoder_hidden_size 16: "
              "the MLP params are trained; adapter_init holds the post-MLP prompt_embeddings."),
    dict(name="full_llama", base="llama", seed=4005, kind="full", weight_decay=0.1,
         note="Full fine-tuning of every parameter of the untied llama base; weight decay 0.1 "
              "except RMSNorm weights."),
]


# ---------------------------------------------------------------------------
# Base model
# ---------------------------------------------------------------------------
def make_base_weights(spec):
    """HF-ordered dict of float32 tensors: matrices N(0, 0.3), biases N(0, 0.1), norms 1+0.1 N."""
    g = torch.Generator().manual_seed(spec["base_seed"])
    V, C, I = spec["vocab"], spec["hidden"], spec["inter"]
    H, Hkv, D = spec["heads"], spec["kv_heads"], spec["head_dim"]

    def mat(rows, cols):
        return torch.randn(rows, cols, generator=g, dtype=torch.float32) * 0.3

    def vec(n):
        return torch.randn(n, generator=g, dtype=torch.float32) * 0.1

    def norm(n):
        return 1.0 + 0.1 * torch.randn(n, generator=g, dtype=torch.float32)

    w = {"model.embed_tokens.weight": mat(V, C)}
    for l in range(spec["layers"]):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = norm(C)
        w[p + "self_attn.q_proj.weight"] = mat(H * D, C)
        w[p + "self_attn.k_proj.weight"] = mat(Hkv * D, C)
        w[p + "self_attn.v_proj.weight"] = mat(Hkv * D, C)
        if spec["arch"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = vec(H * D)
            w[p + "self_attn.k_proj.bias"] = vec(Hkv * D)
            w[p + "self_attn.v_proj.bias"] = vec(Hkv * D)
        w[p + "self_attn.o_proj.weight"] = mat(C, H * D)
        w[p + "post_attention_layernorm.weight"] = norm(C)
        w[p + "mlp.gate_proj.weight"] = mat(I, C)
        w[p + "mlp.up_proj.weight"] = mat(I, C)
        w[p + "mlp.down_proj.weight"] = mat(C, I)
    w["model.norm.weight"] = norm(C)
    if not spec["tie"]:
        w["lm_head.weight"] = mat(V, C)
    return w


def is_norm_weight(name):
    return name.endswith("layernorm.weight") or name == "model.norm.weight"


def module_in_features(spec, proj):
    return spec["inter"] if proj == "down_proj" else spec["hidden"]


def module_out_features(spec, proj):
    H, Hkv, D = spec["heads"], spec["kv_heads"], spec["head_dim"]
    return {"q_proj": H * D, "k_proj": Hkv * D, "v_proj": Hkv * D, "o_proj": spec["hidden"],
            "gate_proj": spec["inter"], "up_proj": spec["inter"],
            "down_proj": spec["hidden"]}[proj]


def module_path(l, proj):
    sub = "self_attn" if proj in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
    return "model.layers.%d.%s.%s" % (l, sub, proj)


# ---------------------------------------------------------------------------
# Training forward (dtype-generic so the finite-difference check can run it in float64)
# ---------------------------------------------------------------------------
def rmsnorm(x, w, eps):
    # Same as gm.rmsnorm for float32 input; no forced f32 cast so a float64 copy stays float64.
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def forward_train(spec, w, ids, lora=None, lora_scaling=1.0, prefix=None, collect=None):
    """ids: LongTensor [B, T]. w: HF name -> tensor. lora: HF module path -> (A, B).
    prefix: [P, L*2*Hkv*D] prefix matrix or None. collect: list receiving per-layer (k_rot, v),
    each [B, T, Hkv, D] (real tokens only). Returns logits [B, T, V]."""
    H, Hkv, D, L = spec["heads"], spec["kv_heads"], spec["head_dim"], spec["layers"]
    eps = spec["eps"]
    B, T = ids.shape
    emb_w = w["model.embed_tokens.weight"]
    dt = emb_w.dtype
    h = emb_w[ids]

    P = 0
    if prefix is not None:
        P = prefix.shape[0]
        # [P, L*2, Hkv, D] -> [L*2, Hkv, P, D]  (PEFT: view + permute([2,0,3,1,4]) + split)
        pkv = prefix.view(P, L * 2, Hkv, D).permute(1, 2, 0, 3)

    # RoPE for the real tokens at positions P .. P+T-1 (computed in f32 as HF does, then cast).
    inv_freq = gm.rope_inv_freq(D, spec["theta"], spec["rope_scaling"])
    pos = torch.arange(P, P + T, dtype=torch.float32)
    freqs = pos[:, None] * inv_freq[None, :]
    embf = torch.cat((freqs, freqs), dim=-1)
    cos, sin = embf.cos().to(dt), embf.sin().to(dt)

    # allowed[t, s]: s < P (prefix slot, always visible) or s - P <= t (causal).
    s_idx = torch.arange(P + T)[None, :]
    t_idx = torch.arange(T)[:, None]
    allowed = (s_idx < P) | ((s_idx - P) <= t_idx)

    def lin(x, path):
        y = x @ w[path + ".weight"].t()
        if path + ".bias" in w:
            y = y + w[path + ".bias"]
        if lora is not None and path in lora:
            A, Bm = lora[path]
            y = y + ((x @ A.t()) @ Bm.t()) * lora_scaling  # PEFT: lora_B(lora_A(x)) * scaling
        return y

    group = H // Hkv
    for l in range(L):
        p = "model.layers.%d." % l
        x = rmsnorm(h, w[p + "input_layernorm.weight"], eps)
        q = lin(x, p + "self_attn.q_proj").view(B, T, H, D)
        k = lin(x, p + "self_attn.k_proj").view(B, T, Hkv, D)
        v = lin(x, p + "self_attn.v_proj").view(B, T, Hkv, D)
        q = gm.apply_rope(q, cos, sin)
        k = gm.apply_rope(k, cos, sin)
        if collect is not None:
            collect.append((k, v))
        if prefix is not None:
            kp = pkv[2 * l].permute(1, 0, 2)[None].expand(B, P, Hkv, D)      # not rotated
            vp = pkv[2 * l + 1].permute(1, 0, 2)[None].expand(B, P, Hkv, D)
            k = torch.cat((kp, k), dim=1)
            v = torch.cat((vp, v), dim=1)
        k = k.repeat_interleave(group, dim=2)
        v = v.repeat_interleave(group, dim=2)
        scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D)
        scores = scores.masked_fill(~allowed, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        attn = torch.einsum("bhts,bshd->bthd", probs, v).reshape(B, T, H * D)
        h = h + lin(attn, p + "self_attn.o_proj")
        x = rmsnorm(h, w[p + "post_attention_layernorm.weight"], eps)
        h = h + lin(F.silu(lin(x, p + "mlp.gate_proj")) * lin(x, p + "mlp.up_proj"),
                    p + "mlp.down_proj")
    h = rmsnorm(h, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if spec["tie"] else w["lm_head.weight"]
    return h @ head.t()


def causal_lm_loss(logits, labels):
    """HF causal-LM loss: shift by one, CE summed over label != -100, divided by their count."""
    V = logits.shape[-1]
    shift_logits = logits[:, :-1, :].reshape(-1, V)
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="mean")


# ---------------------------------------------------------------------------
# Trainable parameters per case
# ---------------------------------------------------------------------------
def lora_name(path, which):
    return "base_model.model.%s.lora_%s.weight" % (path, which)


def lora_modules(spec, case):
    return [module_path(l, proj) for l in range(spec["layers"])
            for proj in ALL_LINEAR if proj in case["targets"]]


def lora_scaling_of(case):
    if case["use_rslora"]:
        return case["lora_alpha"] / math.sqrt(case["r"])
    return case["lora_alpha"] / case["r"]


def token_dim_of(spec):
    return spec["head_dim"] * spec["kv_heads"]


def init_trainable(spec, case, base_w):
    """Ordered dict name -> float32 tensor of the initial trainable values.
    torch.manual_seed(case seed) has been called just before."""
    params = {}
    if case["kind"] == "lora":
        r = case["r"]
        for path in lora_modules(spec, case):
            proj = path.rsplit(".", 1)[1]
            fin, fout = module_in_features(spec, proj), module_out_features(spec, proj)
            bound = 1.0 / math.sqrt(fin)
            params[lora_name(path, "A")] = torch.empty(r, fin).uniform_(-bound, bound)
            params[lora_name(path, "B")] = torch.randn(fout, r) * 0.1
    elif case["kind"] == "prefix":
        P, td = case["num_virtual_tokens"], token_dim_of(spec)
        out_dim = spec["layers"] * 2 * td
        if not case["prefix_projection"]:
            params["prompt_embeddings"] = torch.randn(P, out_dim) * 0.5
        else:
            enc = case["encoder_hidden_size"]
            emb = torch.nn.Embedding(P, td)          # default init N(0, 1)
            l0 = torch.nn.Linear(td, enc)            # default kaiming-uniform init
            l2 = torch.nn.Linear(enc, out_dim)
            params["prompt_encoder.embedding.weight"] = emb.weight.detach().clone()
            params["prompt_encoder.transform.0.weight"] = l0.weight.detach().clone()
            params["prompt_encoder.transform.0.bias"] = l0.bias.detach().clone()
            params["prompt_encoder.transform.2.weight"] = l2.weight.detach().clone()
            params["prompt_encoder.transform.2.bias"] = l2.bias.detach().clone()
    elif case["kind"] == "full":
        for k, v in base_w.items():
            params[k] = v.clone()
    else:
        raise ValueError(case["kind"])
    return params


def prefix_matrix(case, params):
    if not case["prefix_projection"]:
        return params["prompt_embeddings"]
    E = params["prompt_encoder.embedding.weight"]  # embedding(arange(P)) is the whole table
    hid = torch.tanh(E @ params["prompt_encoder.transform.0.weight"].t()
                     + params["prompt_encoder.transform.0.bias"])
    return hid @ params["prompt_encoder.transform.2.weight"].t() + params["prompt_encoder.transform.2.bias"]


def case_logits(spec, case, base_w, params, ids):
    if case["kind"] == "full":
        return forward_train(spec, params, ids)
    if case["kind"] == "lora":
        lora = {path: (params[lora_name(path, "A")], params[lora_name(path, "B")])
                for path in lora_modules(spec, case)}
        return forward_train(spec, base_w, ids, lora=lora, lora_scaling=lora_scaling_of(case))
    return forward_train(spec, base_w, ids, prefix=prefix_matrix(case, params))


def weight_decay_of(case, name):
    # HF Trainer: no decay for biases and (RMS)norm weights.
    if "bias" in name or is_norm_weight(name):
        return 0.0
    return case["weight_decay"]


def lr_lambda(s):
    if s < WARMUP_STEPS:
        return float(s) / float(max(1, WARMUP_STEPS))
    return max(0.0, float(MAX_STEPS - s) / float(max(1, MAX_STEPS - WARMUP_STEPS)))


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------
def check_plain_forward(spec, base_w, ids):
    """Training forward without adapters == gm.forward (and gm's float64 loop version)."""
    with torch.no_grad():
        got = forward_train(spec, base_w, ids)
    for b in range(ids.shape[0]):
        seq = ids[b].tolist()
        ref = gm.forward(spec, base_w, seq)
        d = float((got[b] - ref).abs().max())
        assert d < 1e-4, "plain forward differs from gen_model_goldens.forward by %g" % d
        ref64 = gm.naive_forward(spec, base_w, seq)
        d = float(np.abs(ref64 - got[b].double().numpy()).max())
        assert d < 1e-4 * max(1.0, float(np.abs(ref64).max())), "vs float64 naive: %g" % d


def check_lora_merged(spec, case, base_w, params, ids, logits):
    """LoRA forward == plain forward of merged weights W + scaling * B @ A."""
    merged = dict(base_w)
    s = lora_scaling_of(case)
    for path in lora_modules(spec, case):
        A, Bm = params[lora_name(path, "A")], params[lora_name(path, "B")]
        merged[path + ".weight"] = base_w[path + ".weight"] + s * (Bm @ A)
    for b in range(ids.shape[0]):
        ref = gm.forward(spec, merged, ids[b].tolist())
        d = float((logits[b] - ref).abs().max())
        assert d < 1e-4, "%s: LoRA vs merged forward differ by %g" % (case["name"], d)
    base = forward_train(spec, base_w, ids)
    assert float((base - logits).abs().max()) > 1e-2, "LoRA has no visible effect"


def check_prefix_semantics(spec, case, base_w, ids):
    """If the prefix K/V are exactly the (rotated) keys / values that P real tokens would leave in
    the cache, prefix-tuned logits of a sequence == the last T rows of the plain forward over the
    P tokens followed by the sequence. Checks positions P.., unrotated prefix keys, no prefix
    masking and the [P, L*2, Hkv, D] layout (2l = key, 2l+1 = value)."""
    P, L = case["num_virtual_tokens"], spec["layers"]
    Hkv, D = spec["kv_heads"], spec["head_dim"]
    g = torch.Generator().manual_seed(case["seed"] + 777)
    pre = torch.randint(0, spec["vocab"], (P,), generator=g).tolist()
    for b in range(ids.shape[0]):
        seq = ids[b].tolist()
        full = gm.forward(spec, base_w, pre + seq)
        kv = []
        with torch.no_grad():
            forward_train(spec, base_w, torch.tensor([pre]), collect=kv)
        M = torch.zeros(P, L * 2, Hkv, D)
        for l in range(L):
            M[:, 2 * l] = kv[l][0][0]
            M[:, 2 * l + 1] = kv[l][1][0]
        with torch.no_grad():
            got = forward_train(spec, base_w, torch.tensor([seq]), prefix=M.reshape(P, -1))[0]
        d = float((got - full[P:]).abs().max())
        assert d < 1e-4, "%s: prefix semantics check failed (%g)" % (case["name"], d)


def finite_difference_check(spec, case, base_w, params, ids, labels, grads32):
    """Central differences in float64 at 3 random entries vs float64 autograd, and the float32
    golden gradients vs the float64 ones."""
    base64 = {k: v.double() for k, v in base_w.items()}
    p64 = {k: v.double().requires_grad_(True) for k, v in params.items()}

    def loss64(pp):
        bw = base64 if case["kind"] != "full" else None
        return causal_lm_loss(case_logits(spec, case, bw, pp, ids), labels)

    loss = loss64(p64)
    names = list(p64)
    g64 = torch.autograd.grad(loss, [p64[n] for n in names])
    g64 = dict(zip(names, g64))
    # Whole-gradient agreement float32 vs float64.
    for n in names:
        scale = max(float(g64[n].abs().max()), 1e-3)
        d = float((grads32[n].double() - g64[n]).abs().max())
        assert d < 2e-4 * scale + 1e-6, "%s: f32 grad %s off f64 by %g (scale %g)" % (
            case["name"], n, d, scale)
    rng = torch.Generator().manual_seed(case["seed"] + 999)
    h = 1e-6
    worst = 0.0
    for i in range(3):
        n = names[int(torch.randint(0, len(names), (1,), generator=rng))]
        gflat = g64[n].reshape(-1)
        cand = (gflat.abs() > 1e-3 * float(gflat.abs().max())).nonzero().reshape(-1)
        j = int(cand[int(torch.randint(0, len(cand), (1,), generator=rng))])
        vals = {}
        for sgn in (1, -1):
            pp = {k: v.detach().clone() for k, v in p64.items()}
            pp[n].view(-1)[j] += sgn * h
            with torch.no_grad():
                vals[sgn] = float(loss64(pp))
        fd = (vals[1] - vals[-1]) / (2 * h)
        ad = float(gflat[j])
        g32 = float(grads32[n].reshape(-1)[j])
        assert abs(fd - ad) < 1e-7 + 1e-5 * abs(ad), "%s: FD %s[%d]: fd %.10g autograd %.10g" % (
            case["name"], n, j, fd, ad)
        assert abs(g32 - fd) < 1e-6 + 1e-3 * abs(fd), "%s: FD %s[%d]: fd %.10g f32 %.10g" % (
            case["name"], n, j, fd, g32)
        worst = max(worst, abs(fd - ad) / max(abs(ad), 1e-12))
    return worst


# ---------------------------------------------------------------------------
# Output helpers
# ---------------------------------------------------------------------------
def flat(t):
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).numpy()]


def f32(x):
    return float(np.float32(float(x)))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def adapter_config(spec, case):
    if case["kind"] == "lora":
        return {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": "../base",
            "revision": None,
            "inference_mode": True,
            "r": case["r"],
            "lora_alpha": case["lora_alpha"],
            "lora_dropout": 0.0,
            "target_modules": list(case["targets"]),
            "use_rslora": case["use_rslora"],
            "use_dora": False,
            "bias": "none",
            "fan_in_fan_out": False,
            "init_lora_weights": True,
            "modules_to_save": None,
            "layers_to_transform": None,
            "layers_pattern": None,
            "rank_pattern": {},
            "alpha_pattern": {},
        }
    td = token_dim_of(spec)
    return {
        "peft_type": "PREFIX_TUNING",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "../base",
        "revision": None,
        "inference_mode": True,
        "num_virtual_tokens": case["num_virtual_tokens"],
        "token_dim": td,
        "num_transformer_submodules": 1,
        "num_attention_heads": spec["kv_heads"],
        "num_layers": spec["layers"],
        "encoder_hidden_size": case["encoder_hidden_size"],
        "prefix_projection": case["prefix_projection"],
    }


# ---------------------------------------------------------------------------
# Case generation
# ---------------------------------------------------------------------------
def gen_case(case):
    spec = dict(BASES[case["base"]])
    spec["name"] = case["name"]
    outdir = os.path.join(OUT_ROOT, case["name"])
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(os.path.join(outdir, "base"))

    # --- base checkpoint (written, then read back and used from the file) ---
    base_gen = make_base_weights(spec)
    write_json(os.path.join(outdir, "base", "config.json"), gm.make_config(spec))
    gm.write_safetensors(os.path.join(outdir, "base", "model.safetensors"),
                         list(base_gen.items()), "F32")
    base_w = gm.read_safetensors(os.path.join(outdir, "base", "model.safetensors"))
    assert list(base_w) == list(base_gen)
    for k in base_gen:
        assert torch.equal(base_w[k], base_gen[k]), "base round trip: " + k

    # --- data ---
    torch.manual_seed(case["seed"])
    ids = torch.randint(0, spec["vocab"], (BATCH, SEQ_LEN))
    labels = ids.clone()
    for b, m in enumerate(PROMPT_MASK):
        labels[b, :m] = -100
    with open(os.path.join(outdir, "data.jsonl"), "w") as f:
        for b in range(BATCH):
            f.write(json.dumps({"input_ids": ids[b].tolist(), "labels": labels[b].tolist()},
                               separators=(",", ":")) + "\n")
    n_counted = int((labels[:, 1:] != -100).sum())

    # --- initial trainable params ---
    init = init_trainable(spec, case, base_w)
    names = list(init)

    check_plain_forward(spec, base_w, ids)
    if case["kind"] == "prefix":
        check_prefix_semantics(spec, case, base_w, ids)

    # --- adapter_init (PEFT layout) ---
    if case["kind"] in ("lora", "prefix"):
        adir = os.path.join(outdir, "adapter_init")
        os.makedirs(adir)
        write_json(os.path.join(adir, "adapter_config.json"), adapter_config(spec, case))
        if case["kind"] == "lora":
            saved = [(n, init[n]) for n in names]
        else:
            with torch.no_grad():
                saved = [("prompt_embeddings", prefix_matrix(case, init).contiguous())]
        gm.write_safetensors(os.path.join(adir, "adapter_model.safetensors"), saved, "F32")
        back = gm.read_safetensors(os.path.join(adir, "adapter_model.safetensors"))
        assert list(back) == [n for n, _ in saved]
        for n, t in saved:
            assert torch.equal(back[n], t), "adapter round trip: " + n

    # --- loss, grads, logits at the initial params ---
    leaves = {n: init[n].clone().requires_grad_(True) for n in names}
    logits = case_logits(spec, case, base_w, leaves, ids)
    loss = causal_lm_loss(logits, labels)
    # independent sum/count restatement of the loss
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    tot, cnt = 0.0, 0
    for b in range(BATCH):
        for t in range(SEQ_LEN - 1):
            y = int(labels[b, t + 1])
            if y != -100:
                tot -= float(logp[b, t, y])
                cnt += 1
    assert cnt == n_counted and abs(tot / cnt - float(loss)) < 1e-5
    loss.backward()
    grads = {n: leaves[n].grad.detach().clone() for n in names}
    logits = logits.detach()
    if case["kind"] == "lora":
        check_lora_merged(spec, case, base_w, init, ids, logits)
    if case["kind"] == "prefix":
        with torch.no_grad():
            plain = forward_train(spec, base_w, ids)
        assert float((plain - logits).abs().max()) > 1e-2, "prefix has no visible effect"
    for n in names:
        assert float(grads[n].abs().max()) > 0, "zero gradient for " + n
    fd_worst = finite_difference_check(spec, case, base_w, init, ids, labels, grads)

    aux = {}
    if case["kind"] == "prefix" and case["prefix_projection"]:
        # d loss / d (post-MLP prefix matrix), for staged testing of the reparameterization.
        pp = {n: init[n].clone().requires_grad_(True) for n in names}
        M = prefix_matrix(case, pp).detach().requires_grad_(True)
        l2 = causal_lm_loss(forward_train(spec, base_w, ids, prefix=M), labels)
        l2.backward()
        assert float(l2) == float(loss)
        aux["prompt_embeddings_grad"] = flat(M.grad)

    # --- trajectory ---
    tparams = {n: init[n].clone().requires_grad_(True) for n in names}
    decay = [tparams[n] for n in names if weight_decay_of(case, n) > 0]
    no_decay = [tparams[n] for n in names if weight_decay_of(case, n) == 0]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": case["weight_decay"]})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=ADAM_EPS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    losses, lrs, norms = [], [], []
    for step in range(MAX_STEPS):
        opt.zero_grad()
        lo = causal_lm_loss(case_logits(spec, case, base_w, tparams, ids), labels)
        lo.backward()
        gn = torch.nn.utils.clip_grad_norm_([tparams[n] for n in names], MAX_GRAD_NORM)
        lrs.append(opt.param_groups[0]["lr"])
        assert all(g["lr"] == lrs[-1] for g in opt.param_groups)
        losses.append(f32(lo))
        norms.append(f32(gn))
        opt.step()
        sched.step()
    assert losses[0] == f32(loss)
    assert losses[1] == losses[0], "lr 0 first step must not move the params"
    assert losses[-1] < losses[0], "training does not reduce the loss"
    final = {n: flat(tparams[n]) for n in names}
    if case["kind"] == "prefix" and case["prefix_projection"]:
        with torch.no_grad():
            aux["final_prompt_embeddings"] = flat(prefix_matrix(case, tparams))

    hparams = {
        "kind": case["kind"],
        "arch": spec["arch"],
        "seed": case["seed"],
        "base_seed": spec["base_seed"],
        "batch": BATCH,
        "seq_len": SEQ_LEN,
        "prompt_mask": list(PROMPT_MASK),
        "counted_label_tokens": n_counted,
        "loss": "HF causal LM: logits[:, :-1] vs labels[:, 1:], CE summed over label != -100 "
                "in the whole batch / count",
        "optimizer": "adamw",
        "lr": LR,
        "betas": list(BETAS),
        "eps": ADAM_EPS,
        "weight_decay": case["weight_decay"],
        "weight_decay_by_param": {n: weight_decay_of(case, n) for n in names},
        "schedule": "linear",
        "warmup_steps": WARMUP_STEPS,
        "max_steps": MAX_STEPS,
        "max_grad_norm": MAX_GRAD_NORM,
        "trainable": names,
    }
    if case["kind"] == "lora":
        hparams.update({"r": case["r"], "lora_alpha": case["lora_alpha"],
                        "use_rslora": case["use_rslora"], "scaling": lora_scaling_of(case),
                        "lora_dropout": 0.0, "target_modules": list(case["targets"]),
                        "init": "A ~ U(-1/sqrt(in), 1/sqrt(in)), B ~ N(0, 0.1)"})
    if case["kind"] == "prefix":
        hparams.update({"num_virtual_tokens": case["num_virtual_tokens"],
                        "token_dim": token_dim_of(spec),
                        "prefix_projection": case["prefix_projection"],
                        "encoder_hidden_size": case["encoder_hidden_size"],
                        "init": ("torch default nn.Embedding N(0,1) / nn.Linear init"
                                 if case["prefix_projection"] else "prompt_embeddings ~ N(0, 0.5)")})

    golden = {
        "note": case["note"],
        "hparams": hparams,
        "input_ids": ids.tolist(),
        "labels": labels.tolist(),
        "loss": f32(loss),
        "shapes": {n: list(init[n].shape) for n in names},
        "init": {n: flat(init[n]) for n in names},
        "grads": {n: flat(grads[n]) for n in names},
        "logits": [[[float(x) for x in row] for row in logits[b].numpy()] for b in range(BATCH)],
        "trajectory": {"losses": losses, "lrs": lrs, "grad_norms": norms, "final": final},
    }
    if aux:
        golden["aux"] = aux
    gm.dump_golden(os.path.join(outdir, "golden.json"), golden)

    size = 0
    for root, _, files in os.walk(outdir):
        size += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print("%-18s ok  loss %.4f -> %.4f  |g| %.3f  n_params %6d  fd rel err %.1e  %7.1f KB"
          % (case["name"], losses[0], losses[-1], norms[0],
             sum(init[n].numel() for n in names), fd_worst, size / 1024.0))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_ROOT, exist_ok=True)
    only = set(sys.argv[1:])
    unknown = only - set(c["name"] for c in CASES)
    assert not unknown, "unknown case(s): %s" % sorted(unknown)
    for case in CASES:
        if only and case["name"] not in only:
            continue
        gen_case(case)


if __name__ == "__main__":
    main()
