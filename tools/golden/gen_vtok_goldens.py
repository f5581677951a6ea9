#!/usr/bin/python3
"""Golden reference values for IA3, prompt tuning and P-tuning (issue #19).

    /usr/bin/python3 tools/golden/gen_vtok_goldens.py            # all cases
    /usr/bin/python3 tools/golden/gen_vtok_goldens.py ia3_llama  # only some

Writes tests/data/train_golden/<case>/ in the layout of gen_train_goldens.py (base/, data.jsonl,
adapter_init/ in PEFT's layout, golden.json with loss, gradients, logits and a 5-step AdamW
trajectory), reusing its tiny bases, data, loss, schedule and writers. peft is NOT imported: the
formulas below are PEFT's, restated from its documentation:

* IA3 (peft IA3Config / IA3 Linear): a learned vector ia3_l per targeted projection. A module in
  feedforward_modules scales its INPUT: y = W (x * l) (+ b), ia3_l shape [1, in]; any other
  module scales its OUTPUT, bias included: y = (W x + b) * l, ia3_l shape [out, 1]. PEFT starts
  from ones; the goldens start from 1 + 0.3 N(0,1) so every gradient is informative. Merge: W
  columns *= l (feed-forward) or W rows and bias *= l; merged logits are checked here to equal
  the adapter's and are the same numbers as `logits`.
* Prompt tuning (PROMPT_TUNING): a table prompt_embeddings [P, hidden] prepended to the token
  embeddings (inputs_embeds = cat(prompt, embed(ids))); the attention mask gets P ones, the
  labels P times -100 (so the LAST virtual row predicts the first real token when its label is
  not -100); positions run 0 .. P+T-1 over the whole sequence; logits are compared on the real
  rows (the last T). Init here N(0, 0.5) (PEFT RANDOM: nn.Embedding's N(0, 1)).
* P-tuning (P_TUNING, encoder_reparameterization_type MLP): the virtual embeddings are
  mlp_head(embedding.weight) with mlp_head = Linear(C, E) ReLU Linear(E, E) ReLU Linear(E, C)
  (param names prompt_encoder.embedding.weight, prompt_encoder.mlp_head.{0,2,4}.{weight,bias};
  torch default inits). LSTM: mlp_head(lstm_head(embedding.weight)) with lstm_head =
  torch.nn.LSTM(C, E, encoder_num_layers, bidirectional=True, batch_first=True) (PyTorch's own
  module is the reference, params prompt_encoder.lstm_head.<nn.LSTM names>) and mlp_head =
  Linear(2E, 2E) ReLU Linear(2E, C) (mlp_head.{0,2}). PEFT saves the encoder OUTPUT as prompt_embeddings and loads it as a
  plain prompt table (inference_mode), so adapter_init holds that output and aux holds the final
  one after the trajectory.
"""

import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_goldens as gm  # noqa: E402
import gen_train_goldens as gt  # noqa: E402

OUT_ROOT = gt.OUT_ROOT

CASES = [
    dict(name="ia3_llama", base="llama", seed=4101, kind="ia3", targets=["k_proj", "v_proj", "down_proj"],
         feedforward=["down_proj"], weight_decay=0.01,
         note="IA3 with PEFT's Llama defaults: k_proj, v_proj scale their outputs, down_proj its input."),
    dict(name="ia3_qwen2", base="qwen2", seed=4102, kind="ia3", targets=["q_proj", "v_proj", "up_proj"],
         feedforward=["up_proj"], weight_decay=0.0,
         note="IA3 on a Qwen2 (q/v biases are scaled with the output; tied embeddings); up_proj is "
              "feed-forward."),
    dict(name="prompt_llama", base="llama", seed=4103, kind="prompt", num_virtual_tokens=3, weight_decay=0.01,
         note="Prompt tuning, 3 virtual tokens: prompt_embeddings [3, hidden] trained directly."),
    dict(name="ptuning_llama", base="llama", seed=4104, kind="ptuning", num_virtual_tokens=3,
         encoder_hidden_size=16, weight_decay=0.01,
         note="P-tuning, 3 virtual tokens, MLP encoder with hidden 16; adapter_init holds its output."),
    dict(name="ptuning_lstm_llama", base="llama", seed=4105, kind="ptuning", encoder="LSTM", num_virtual_tokens=4,
         encoder_hidden_size=6, encoder_num_layers=2, weight_decay=0.01,
         note="P-tuning, 4 virtual tokens, LSTM encoder: torch.nn.LSTM(32, 6, 2 layers, bidirectional) then "
              "Linear(12, 12) ReLU Linear(12, 32); adapter_init holds its output."),
]


def forward_vt(spec, w, ids, ia3=None, ff=(), prompt=None):
    """ids [B, T]; ia3: module path -> l (flat); ff: feed-forward module paths; prompt: [P, C] or None.
    Returns logits of the real rows [B, T, V]."""
    H, Hkv, D, L = spec["heads"], spec["kv_heads"], spec["head_dim"], spec["layers"]
    eps = spec["eps"]
    B, T = ids.shape
    emb_w = w["model.embed_tokens.weight"]
    dt = emb_w.dtype
    h = emb_w[ids]
    P = 0
    if prompt is not None:
        P = prompt.shape[0]
        h = torch.cat((prompt[None].expand(B, P, prompt.shape[1]).to(dt), h), dim=1)
    S = P + T
    inv_freq = gm.rope_inv_freq(D, spec["theta"], spec["rope_scaling"])
    pos = torch.arange(0, S, dtype=torch.float32)
    freqs = pos[:, None] * inv_freq[None, :]
    embf = torch.cat((freqs, freqs), dim=-1)
    cos, sin = embf.cos().to(dt), embf.sin().to(dt)
    allowed = torch.arange(S)[None, :] <= torch.arange(S)[:, None]

    def lin(x, path):
        l = ia3.get(path) if ia3 else None
        if l is not None and path in ff:
            x = x * l.reshape(-1)
        y = x @ w[path + ".weight"].t()
        if path + ".bias" in w:
            y = y + w[path + ".bias"]
        if l is not None and path not in ff:
            y = y * l.reshape(-1)
        return y

    group = H // Hkv
    for li in range(L):
        p = "model.layers.%d." % li
        x = gt.rmsnorm(h, w[p + "input_layernorm.weight"], eps)
        q = gm.apply_rope(lin(x, p + "self_attn.q_proj").view(B, S, H, D), cos, sin)
        k = gm.apply_rope(lin(x, p + "self_attn.k_proj").view(B, S, Hkv, D), cos, sin)
        v = lin(x, p + "self_attn.v_proj").view(B, S, Hkv, D)
        k = k.repeat_interleave(group, dim=2)
        v = v.repeat_interleave(group, dim=2)
        scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D)
        scores = scores.masked_fill(~allowed, float("-inf"))
        attn = torch.einsum("bhts,bshd->bthd", torch.softmax(scores, dim=-1), v).reshape(B, S, H * D)
        h = h + lin(attn, p + "self_attn.o_proj")
        x = gt.rmsnorm(h, w[p + "post_attention_layernorm.weight"], eps)
        h = h + lin(F.silu(lin(x, p + "mlp.gate_proj")) * lin(x, p + "mlp.up_proj"), p + "mlp.down_proj")
    h = gt.rmsnorm(h, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if spec["tie"] else w["lm_head.weight"]
    return (h @ head.t())[:, P:]


def ia3_name(path):
    return "base_model.model.%s.ia3_l" % path


def ia3_modules(spec, case):
    return [gt.module_path(l, proj) for l in range(spec["layers"]) for proj in gt.ALL_LINEAR
            if proj in case["targets"]]


def init_trainable(spec, case):
    params = {}
    C = spec["hidden"]
    if case["kind"] == "ia3":
        for path in ia3_modules(spec, case):
            proj = path.rsplit(".", 1)[1]
            if proj in case["feedforward"]:
                shape = (1, gt.module_in_features(spec, proj))
            else:
                shape = (gt.module_out_features(spec, proj), 1)
            params[ia3_name(path)] = 1.0 + 0.3 * torch.randn(*shape)
    elif case["kind"] == "prompt":
        params["prompt_embeddings"] = torch.randn(case["num_virtual_tokens"], C) * 0.5
    elif case["kind"] == "ptuning" and case.get("encoder") == "LSTM":
        E = case["encoder_hidden_size"]
        emb = torch.nn.Embedding(case["num_virtual_tokens"], C)
        lstm = torch.nn.LSTM(C, E, num_layers=case["encoder_num_layers"], bidirectional=True, batch_first=True)
        l0, l2 = torch.nn.Linear(2 * E, 2 * E), torch.nn.Linear(2 * E, C)
        params["prompt_encoder.embedding.weight"] = emb.weight.detach().clone()
        for n, t in lstm.named_parameters():
            params["prompt_encoder.lstm_head." + n] = t.detach().clone()
        for i, m in ((0, l0), (2, l2)):
            params["prompt_encoder.mlp_head.%d.weight" % i] = m.weight.detach().clone()
            params["prompt_encoder.mlp_head.%d.bias" % i] = m.bias.detach().clone()
    elif case["kind"] == "ptuning":
        E = case["encoder_hidden_size"]
        emb = torch.nn.Embedding(case["num_virtual_tokens"], C)
        l0, l2, l4 = torch.nn.Linear(C, E), torch.nn.Linear(E, E), torch.nn.Linear(E, C)
        params["prompt_encoder.embedding.weight"] = emb.weight.detach().clone()
        for i, m in ((0, l0), (2, l2), (4, l4)):
            params["prompt_encoder.mlp_head.%d.weight" % i] = m.weight.detach().clone()
            params["prompt_encoder.mlp_head.%d.bias" % i] = m.bias.detach().clone()
    return params


def prompt_of(case, params):
    if case["kind"] == "prompt":
        return params["prompt_embeddings"]
    x = params["prompt_encoder.embedding.weight"]
    layers = (0, 2, 4)
    if case.get("encoder") == "LSTM":
        E = case["encoder_hidden_size"]
        x = bilstm(x, {n[len("prompt_encoder.lstm_head."):]: t for n, t in params.items()
                       if n.startswith("prompt_encoder.lstm_head.")}, case["encoder_num_layers"])
        layers = (0, 2)
    for i in layers:
        x = x @ params["prompt_encoder.mlp_head.%d.weight" % i].t() + params["prompt_encoder.mlp_head.%d.bias" % i]
        if i != layers[-1]:
            x = torch.relu(x)
    return x


def bilstm(x, p, layers):
    """torch.nn.LSTM(bidirectional=True) over one sequence x [T, in], written out (gate order i, f,
    g, o; zero initial state) so autograd reaches every parameter; check_lstm compares it with
    nn.LSTM itself."""
    T = x.shape[0]
    for l in range(layers):
        outs = []
        for sfx in ("", "_reverse"):
            k = "_l%d%s" % (l, sfx)
            Wih, Whh, bih, bhh = p["weight_ih" + k], p["weight_hh" + k], p["bias_ih" + k], p["bias_hh" + k]
            H = Whh.shape[1]
            h = x.new_zeros(H)
            c = x.new_zeros(H)
            hs = [None] * T
            for t in (range(T - 1, -1, -1) if sfx else range(T)):
                z = Wih @ x[t] + bih + Whh @ h + bhh
                i, f, g, o = torch.sigmoid(z[:H]), torch.sigmoid(z[H:2 * H]), torch.tanh(z[2 * H:3 * H]), torch.sigmoid(z[3 * H:])
                c = f * c + i * g
                h = o * torch.tanh(c)
                hs[t] = h
            outs.append(torch.stack(hs))
        x = torch.cat(outs, dim=1)
    return x


def check_lstm(case, params):
    E, C = case["encoder_hidden_size"], params["prompt_encoder.embedding.weight"].shape[1]
    lstm = torch.nn.LSTM(C, E, num_layers=case["encoder_num_layers"], bidirectional=True, batch_first=True)
    with torch.no_grad():
        for n, t in lstm.named_parameters():
            t.copy_(params["prompt_encoder.lstm_head." + n])
        x = params["prompt_encoder.embedding.weight"]
        ref = lstm(x[None])[0][0]
        got = bilstm(x, {n: t for n, t in lstm.named_parameters()}, case["encoder_num_layers"])
    d = float((ref - got).abs().max())
    assert d < 1e-6, "bilstm differs from torch.nn.LSTM by %g" % d


def case_logits(spec, case, base_w, params, ids):
    if case["kind"] == "ia3":
        ia3 = {path: params[ia3_name(path)] for path in ia3_modules(spec, case)}
        ff = {p for p in ia3 if p.rsplit(".", 1)[1] in case["feedforward"]}
        return forward_vt(spec, base_w, ids, ia3=ia3, ff=ff)
    return forward_vt(spec, base_w, ids, prompt=prompt_of(case, params))


def merged_weights(spec, case, base_w, params):
    m = dict(base_w)
    for path in ia3_modules(spec, case):
        l = params[ia3_name(path)]
        if path.rsplit(".", 1)[1] in case["feedforward"]:
            m[path + ".weight"] = base_w[path + ".weight"] * l.reshape(1, -1)
        else:
            m[path + ".weight"] = base_w[path + ".weight"] * l.reshape(-1, 1)
            if path + ".bias" in base_w:
                m[path + ".bias"] = base_w[path + ".bias"] * l.reshape(-1)
    return m


def adapter_config(spec, case):
    if case["kind"] == "ia3":
        return {"peft_type": "IA3", "task_type": "CAUSAL_LM", "base_model_name_or_path": "../base",
                "revision": None, "inference_mode": True, "target_modules": list(case["targets"]),
                "feedforward_modules": list(case["feedforward"]), "fan_in_fan_out": False,
                "init_ia3_weights": True, "modules_to_save": None}
    cfg = {"peft_type": "PROMPT_TUNING" if case["kind"] == "prompt" else "P_TUNING", "task_type": "CAUSAL_LM",
           "base_model_name_or_path": "../base", "revision": None, "inference_mode": True,
           "num_virtual_tokens": case["num_virtual_tokens"], "token_dim": spec["hidden"],
           "num_transformer_submodules": 1, "num_attention_heads": spec["heads"], "num_layers": spec["layers"]}
    if case["kind"] == "prompt":
        cfg.update({"prompt_tuning_init": "RANDOM", "prompt_tuning_init_text": None, "tokenizer_name_or_path": None})
    else:
        cfg.update({"encoder_reparameterization_type": case.get("encoder", "MLP"),
                    "encoder_hidden_size": case["encoder_hidden_size"],
                    "encoder_num_layers": case.get("encoder_num_layers", 2), "encoder_dropout": 0.0})
    return cfg


def check_prompt_semantics(spec, case, base_w, ids):
    """Virtual rows equal to real token embeddings == the plain forward over those tokens + ids."""
    g = torch.Generator().manual_seed(case["seed"] + 777)
    pre = torch.randint(0, spec["vocab"], (case["num_virtual_tokens"],), generator=g)
    with torch.no_grad():
        got = forward_vt(spec, base_w, ids, prompt=base_w["model.embed_tokens.weight"][pre])
    for b in range(ids.shape[0]):
        full = gm.forward(spec, base_w, pre.tolist() + ids[b].tolist())
        d = float((got[b] - full[len(pre):]).abs().max())
        assert d < 1e-4, "%s: prompt semantics check failed (%g)" % (case["name"], d)


def fd_check(spec, case, base_w, params, ids, labels, grads32):
    base64 = {k: v.double() for k, v in base_w.items()}
    p64 = {k: v.double().requires_grad_(True) for k, v in params.items()}
    loss = gt.causal_lm_loss(case_logits(spec, case, base64, p64, ids), labels)
    names = list(p64)
    g64 = dict(zip(names, torch.autograd.grad(loss, [p64[n] for n in names])))
    for n in names:
        scale = max(float(g64[n].abs().max()), 1e-3)
        d = float((grads32[n].double() - g64[n]).abs().max())
        assert d < 2e-4 * scale + 1e-6, "%s: f32 grad %s off f64 by %g" % (case["name"], n, d)
    rng = torch.Generator().manual_seed(case["seed"] + 999)
    worst, h = 0.0, 1e-6
    for _ in range(4):
        n = names[int(torch.randint(0, len(names), (1,), generator=rng))]
        gflat = g64[n].reshape(-1)
        cand = (gflat.abs() > 1e-3 * float(gflat.abs().max())).nonzero().reshape(-1)
        j = int(cand[int(torch.randint(0, len(cand), (1,), generator=rng))])
        vals = {}
        for sgn in (1, -1):
            pp = {k: v.detach().clone() for k, v in p64.items()}
            pp[n].view(-1)[j] += sgn * h
            with torch.no_grad():
                vals[sgn] = float(gt.causal_lm_loss(case_logits(spec, case, base64, pp, ids), labels))
        fd = (vals[1] - vals[-1]) / (2 * h)
        ad = float(gflat[j])
        assert abs(fd - ad) < 1e-7 + 1e-5 * abs(ad), "%s: FD %s[%d] %g vs %g" % (case["name"], n, j, fd, ad)
        worst = max(worst, abs(fd - ad) / max(abs(ad), 1e-12))
    return worst


def gen_case(case):
    spec = dict(gt.BASES[case["base"]])
    spec["name"] = case["name"]
    outdir = os.path.join(OUT_ROOT, case["name"])
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(os.path.join(outdir, "base"))
    base_gen = gt.make_base_weights(spec)
    gt.write_json(os.path.join(outdir, "base", "config.json"), gm.make_config(spec))
    gm.write_safetensors(os.path.join(outdir, "base", "model.safetensors"), list(base_gen.items()), "F32")
    base_w = gm.read_safetensors(os.path.join(outdir, "base", "model.safetensors"))

    torch.manual_seed(case["seed"])
    ids = torch.randint(0, spec["vocab"], (gt.BATCH, gt.SEQ_LEN))
    labels = ids.clone()
    for b, m in enumerate(gt.PROMPT_MASK):
        labels[b, :m] = -100
    with open(os.path.join(outdir, "data.jsonl"), "w") as f:
        for b in range(gt.BATCH):
            f.write(json.dumps({"input_ids": ids[b].tolist(), "labels": labels[b].tolist()},
                               separators=(",", ":")) + "\n")
    n_counted = int((labels[:, 1:] != -100).sum())
    init = init_trainable(spec, case)
    names = list(init)

    with torch.no_grad():  # no adapter: the same model as gen_train_goldens' forward
        d = float((forward_vt(spec, base_w, ids) - gt.forward_train(spec, base_w, ids)).abs().max())
    assert d < 1e-5, d
    if case["kind"] != "ia3":
        check_prompt_semantics(spec, case, base_w, ids)
    if case.get("encoder") == "LSTM":
        check_lstm(case, init)

    adir = os.path.join(outdir, "adapter_init")
    os.makedirs(adir)
    gt.write_json(os.path.join(adir, "adapter_config.json"), adapter_config(spec, case))
    if case["kind"] == "ia3":
        saved = [(n, init[n]) for n in names]
    else:
        with torch.no_grad():
            saved = [("prompt_embeddings", prompt_of(case, init).contiguous())]
    gm.write_safetensors(os.path.join(adir, "adapter_model.safetensors"), saved, "F32")

    leaves = {n: init[n].clone().requires_grad_(True) for n in names}
    logits = case_logits(spec, case, base_w, leaves, ids)
    loss = gt.causal_lm_loss(logits, labels)
    loss.backward()
    grads = {n: leaves[n].grad.detach().clone() for n in names}
    logits = logits.detach()
    with torch.no_grad():
        plain = forward_vt(spec, base_w, ids)
    assert float((plain - logits).abs().max()) > 1e-2, "adapter has no visible effect"
    if case["kind"] == "ia3":
        with torch.no_grad():
            merged = forward_vt(spec, merged_weights(spec, case, base_w, init), ids)
        d = float((merged - logits).abs().max())
        assert d < 1e-4, "%s: merged forward differs by %g" % (case["name"], d)
    for n in names:
        assert float(grads[n].abs().max()) > 0, "zero gradient for " + n
    fd_worst = fd_check(spec, case, base_w, init, ids, labels, grads)

    tparams = {n: init[n].clone().requires_grad_(True) for n in names}
    decay = [tparams[n] for n in names if gt.weight_decay_of(case, n) > 0]
    no_decay = [tparams[n] for n in names if gt.weight_decay_of(case, n) == 0]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": case["weight_decay"]})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=gt.LR, betas=gt.BETAS, eps=gt.ADAM_EPS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, gt.lr_lambda)
    losses, lrs, norms = [], [], []
    for _ in range(gt.MAX_STEPS):
        opt.zero_grad()
        lo = gt.causal_lm_loss(case_logits(spec, case, base_w, tparams, ids), labels)
        lo.backward()
        gn = torch.nn.utils.clip_grad_norm_([tparams[n] for n in names], gt.MAX_GRAD_NORM)
        lrs.append(opt.param_groups[0]["lr"])
        losses.append(gt.f32(lo))
        norms.append(gt.f32(gn))
        opt.step()
        sched.step()
    assert losses[-1] < losses[0], "training does not reduce the loss"
    aux = {}
    if case["kind"] == "ptuning":
        with torch.no_grad():
            aux["init_prompt_embeddings"] = gt.flat(prompt_of(case, init))
            aux["final_prompt_embeddings"] = gt.flat(prompt_of(case, tparams))

    hparams = {"kind": case["kind"], "arch": spec["arch"], "seed": case["seed"], "batch": gt.BATCH,
               "seq_len": gt.SEQ_LEN, "counted_label_tokens": n_counted, "lr": gt.LR,
               "weight_decay": case["weight_decay"], "warmup_steps": gt.WARMUP_STEPS, "max_steps": gt.MAX_STEPS,
               "max_grad_norm": gt.MAX_GRAD_NORM, "trainable": names}
    for k in ("targets", "feedforward", "num_virtual_tokens", "encoder_hidden_size", "encoder", "encoder_num_layers"):
        if k in case:
            hparams[k] = case[k]
    golden = {"note": case["note"], "hparams": hparams, "input_ids": ids.tolist(), "labels": labels.tolist(),
              "loss": gt.f32(loss), "shapes": {n: list(init[n].shape) for n in names},
              "init": {n: gt.flat(init[n]) for n in names}, "grads": {n: gt.flat(grads[n]) for n in names},
              "logits": [[[float(x) for x in row] for row in logits[b].numpy()] for b in range(gt.BATCH)],
              "trajectory": {"losses": losses, "lrs": lrs, "grad_norms": norms,
                             "final": {n: gt.flat(tparams[n]) for n in names}}}
    if aux:
        golden["aux"] = aux
    gm.dump_golden(os.path.join(outdir, "golden.json"), golden)
    print("%-14s ok  loss %.4f -> %.4f  fd rel err %.1e" % (case["name"], losses[0], losses[-1], fd_worst))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    only = set(sys.argv[1:])
    for case in CASES:
        if not only or case["name"] in only:
            gen_case(case)


if __name__ == "__main__":
    main()
