#!/usr/bin/python3
"""Golden reference values for lathe's LoRA-family methods: DoRA, LoRA+, PiSSA / OLoRA init.

Run with Debian's PyTorch (python3-torch 1.13, numpy):

    /usr/bin/python3 tools/golden/gen_dora_goldens.py              # all cases
    /usr/bin/python3 tools/golden/gen_dora_goldens.py dora_llama   # only some

Writes tests/data/train_golden/<case>/ exactly as gen_train_goldens.py does (base/, data.jsonl,
adapter_init/ in PEFT's layout, golden.json with loss, gradients, logits and a 5-step AdamW
trajectory), reusing that script's base models, data, model math, loss, schedule and writers. No
peft package is used: the formulas below are PEFT's, from its documentation and REFERENCE.md §2.1.

DoRA (PEFT use_dora, peft/tuners/lora/dora.py): per adapted Linear with base W [out, in], bias b,
A [r, in], B [out, r], scaling s and magnitude m [out] (`lora_magnitude_vector`):

    n = ||W + s·B A||_2 over the input dimension of each row, DETACHED (no gradient through n)
    y = (m / n) ⊙ (W x + s·B A x) + b

PEFT computes this as the base output plus (m/n - 1) ⊙ W x + (m/n) ⊙ s·B A x; the effective weight
(m / n)[:, None] * (W + s·B A) is the same function (check_dora_forms checks the two forms agree),
so the model is run with those effective weights and autograd gives PEFT's gradients (n detached).
Merging writes exactly that effective weight. PEFT initialises m = n with B = 0 (the model is
unchanged); here A ~ U(-1/sqrt(in), 1/sqrt(in)), B ~ N(0, 0.1) and m = n · (1 + 0.2·N(0, 1)) so
that every term matters.

LoRA+ (loraplus_lr_ratio R, PEFT's create_loraplus_optimizer): parameter groups A (every other
trainable tensor) at lr, B (names containing "lora_B" and every 1-D tensor, i.e. DoRA magnitudes)
at lr·R; weight decay as the HF Trainer applies it (none on biases / norms: not trained here). The
linear schedule scales every group's lr by the same factor.

PiSSA / OLoRA (init_lora_weights, PEFT's pissa_init / olora_init): W = U S Vh, A = sqrt(S_r/s) Vh_r,
B = U_r sqrt(S_r/s); or W = Q R, A = R[:r], B = Q[:, :r]; the base becomes W_res = W - s·B A. Singular
and QR vectors have a sign freedom, so the goldens hold s·B A, W_res and |A|, |B|; the training
trajectory is the same for either sign (Adam is elementwise).

Finite differences (float64) check dL/dm against autograd, and dL/dA, dL/dB with the norms held at
their unperturbed values (the norm is detached, so a plain finite difference would differ).
"""

import json
import math
import os
import shutil
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_goldens as gm  # noqa: E402
import gen_train_goldens as gt  # noqa: E402

ALL_LINEAR = gt.ALL_LINEAR

CASES = [
    dict(name="dora_llama", base="llama", seed=4101, r=4, lora_alpha=8, use_rslora=False, targets=ALL_LINEAR,
         use_dora=True, loraplus_lr_ratio=0.0, weight_decay=0.01,
         note="DoRA r=4 alpha=8 (scaling 2) on all 7 linear projections of the untied llama base."),
    dict(name="dora_qwen2", base="qwen2", seed=4102, r=4, lora_alpha=16, use_rslora=True,
         targets=["q_proj", "v_proj"], use_dora=True, loraplus_lr_ratio=0.0, weight_decay=0.01,
         note="DoRA + rsLoRA r=4 alpha=16 on q_proj, v_proj of the Qwen2 base (q/k/v biases: the "
              "bias is added after the magnitude scaling, as PEFT does)."),
    dict(name="loraplus_llama", base="llama", seed=4103, r=4, lora_alpha=8, use_rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "up_proj"], use_dora=False, loraplus_lr_ratio=16.0, weight_decay=0.01,
         note="LoRA+ ratio 16: lora_B at 16x the learning rate of lora_A."),
    dict(name="dora_loraplus_llama", base="llama", seed=4104, r=4, lora_alpha=8, use_rslora=False,
         targets=["q_proj", "v_proj", "down_proj"], use_dora=True, loraplus_lr_ratio=4.0, weight_decay=0.01,
         note="DoRA + LoRA+ ratio 4: lora_B and the 1-D magnitude vectors at 4x the lr of lora_A."),
    dict(name="pissa_llama", base="llama", seed=4105, r=4, lora_alpha=8, use_rslora=False,
         targets=["q_proj", "v_proj", "down_proj"], use_dora=False, loraplus_lr_ratio=0.0, weight_decay=0.01,
         init="pissa", note="PiSSA r=4 alpha=8: A, B from the SVD of W, W_res = W - s B A."),
    dict(name="olora_llama", base="llama", seed=4106, r=4, lora_alpha=8, use_rslora=True,
         targets=["q_proj", "v_proj", "down_proj"], use_dora=False, loraplus_lr_ratio=0.0, weight_decay=0.01,
         init="olora", note="OLoRA r=4 alpha=8 rsLoRA: A = R[:r], B = Q[:, :r] of W = QR, W_res = W - s B A."),
]


def init_from_base(spec, case, base_w):
    """PEFT's pissa_init / olora_init: (params, residual base weights)."""
    params, res = {}, dict(base_w)
    s, r = scaling_of(case), case["r"]
    for path in gt.lora_modules(spec, case):
        W = base_w[path + ".weight"]
        if case["init"] == "pissa":
            V, S, Uh = torch.linalg.svd(W, full_matrices=False)
            Sr = S[:r] / s
            A = torch.diag(torch.sqrt(Sr)) @ Uh[:r]
            B = V[:, :r] @ torch.diag(torch.sqrt(Sr))
        else:
            Q, R = torch.linalg.qr(W)
            A, B = R[:r].contiguous(), Q[:, :r].contiguous()
        params[gt.lora_name(path, "A")] = A
        params[gt.lora_name(path, "B")] = B
        res[path + ".weight"] = W - s * (B @ A)
        d = float((res[path + ".weight"] + s * (B @ A) - W).abs().max())
        assert d < 1e-5, "%s %s: W_res + sBA != W (%g)" % (case["name"], path, d)
    return params, res


def gen_init_case(case):
    """PiSSA / OLoRA: init values (sign-free: s·B A and W_res), a 5-step trajectory from them on W_res
    (losses are the same for either sign of each singular / QR vector) and the final logits."""
    spec = dict(gt.BASES[case["base"]])
    spec["name"] = case["name"]
    outdir = os.path.join(gt.OUT_ROOT, case["name"])
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
    init, res = init_from_base(spec, case, base_w)
    names = list(init)
    s = scaling_of(case)
    with torch.no_grad():
        l0 = case_logits(spec, case, res, init, ids)
        plain = gt.forward_train(spec, base_w, ids)
    assert float((l0 - plain).abs().max()) < 1e-3, "base + adapter at init is not the base model"
    tparams = {n: init[n].clone().requires_grad_(True) for n in names}
    opt = torch.optim.AdamW([{"params": [tparams[n] for n in names], "weight_decay": case["weight_decay"]}],
                            lr=gt.LR, betas=gt.BETAS, eps=gt.ADAM_EPS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, gt.lr_lambda)
    losses, norms = [], []
    for _ in range(gt.MAX_STEPS):
        opt.zero_grad()
        lo = gt.causal_lm_loss(case_logits(spec, case, res, tparams, ids), labels)
        lo.backward()
        norms.append(gt.f32(torch.nn.utils.clip_grad_norm_([tparams[n] for n in names], gt.MAX_GRAD_NORM)))
        losses.append(gt.f32(lo))
        opt.step()
        sched.step()
    assert losses[-1] < losses[0], "training does not reduce the loss"
    with torch.no_grad():
        final_logits = case_logits(spec, case, res, tparams, ids)
    mods = gt.lora_modules(spec, case)
    golden = {
        "note": case["note"],
        "hparams": {"init_lora_weights": case["init"], "r": case["r"], "lora_alpha": case["lora_alpha"],
                    "use_rslora": case["use_rslora"], "scaling": s, "target_modules": list(case["targets"]),
                    "lr": gt.LR, "weight_decay": case["weight_decay"]},
        "input_ids": ids.tolist(), "labels": labels.tolist(),
        "init_products": {p: gt.flat(s * (init[gt.lora_name(p, "B")] @ init[gt.lora_name(p, "A")])) for p in mods},
        "residual_weights": {p + ".weight": gt.flat(res[p + ".weight"]) for p in mods},
        "init_abs": {n: gt.flat(init[n].abs()) for n in names},
        "trajectory": {"losses": losses, "grad_norms": norms},
        "final_logits": [[[float(x) for x in row] for row in final_logits[b].numpy()] for b in range(gt.BATCH)],
    }
    gm.dump_golden(os.path.join(outdir, "golden.json"), golden)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(outdir) for f in fs)
    print("%-20s ok  loss %.4f -> %.4f  %7.1f KB" % (case["name"], losses[0], losses[-1], size / 1024.0))


def mag_name(path):
    return "base_model.model.%s.lora_magnitude_vector" % path


def scaling_of(case):
    return case["lora_alpha"] / (math.sqrt(case["r"]) if case["use_rslora"] else case["r"])


def init_params(spec, case, base_w):
    """torch.manual_seed(case seed) has been called (after the data)."""
    params = {}
    s = scaling_of(case)
    for path in gt.lora_modules(spec, case):
        proj = path.rsplit(".", 1)[1]
        fin, fout = gt.module_in_features(spec, proj), gt.module_out_features(spec, proj)
        bound = 1.0 / math.sqrt(fin)
        A = torch.empty(case["r"], fin).uniform_(-bound, bound)
        B = torch.randn(fout, case["r"]) * 0.1
        params[gt.lora_name(path, "A")] = A
        params[gt.lora_name(path, "B")] = B
        if case["use_dora"]:
            n = (base_w[path + ".weight"] + s * (B @ A)).norm(dim=1)
            params[mag_name(path)] = n * (1.0 + 0.2 * torch.randn(fout))
    return params


def effective_weights(spec, case, base_w, params, norms=None):
    """HF weights with every adapted W replaced by its adapted weight (LoRA: W + s·B A; DoRA:
    (m / n)[:, None] (W + s·B A), n detached, or the given `norms` per module path)."""
    w = dict(base_w)
    s = scaling_of(case)
    for path in gt.lora_modules(spec, case):
        A, B = params[gt.lora_name(path, "A")], params[gt.lora_name(path, "B")]
        W = base_w[path + ".weight"].to(A.dtype)
        V = W + s * (B @ A)
        if case["use_dora"]:
            n = norms[path] if norms is not None else V.norm(dim=1).detach()
            V = (params[mag_name(path)] / n)[:, None] * V
        w[path + ".weight"] = V
    return w


def case_logits(spec, case, base_w, params, ids, norms=None):
    return gt.forward_train(spec, effective_weights(spec, case, base_w, params, norms), ids)


def check_dora_forms(spec, case, base_w, params):
    """PEFT's delta form (base output + (g - 1) W x + g s B A x) equals the effective-weight form."""
    g = torch.Generator().manual_seed(case["seed"] + 5)
    s = scaling_of(case)
    for path in gt.lora_modules(spec, case):
        A, B, m = params[gt.lora_name(path, "A")], params[gt.lora_name(path, "B")], params[mag_name(path)]
        W = base_w[path + ".weight"]
        b = base_w.get(path + ".bias", torch.zeros(W.shape[0]))
        x = torch.randn(5, W.shape[1], generator=g)
        base = x @ W.t() + b
        gscale = m / (W + s * (B @ A)).norm(dim=1)
        peft = base + (gscale - 1) * (base - b) + gscale * s * ((x @ A.t()) @ B.t())
        eff = x @ (gscale[:, None] * (W + s * (B @ A))).t() + b
        d = float((peft - eff).abs().max())
        assert d < 1e-4, "%s %s: PEFT form vs effective weight differ by %g" % (case["name"], path, d)


def finite_differences(spec, case, base_w, params, ids, labels, grads32):
    base64 = {k: v.double() for k, v in base_w.items()}
    p64 = {k: v.double().requires_grad_(True) for k, v in params.items()}
    s = scaling_of(case)
    norms = {}
    if case["use_dora"]:
        for path in gt.lora_modules(spec, case):
            V = base64[path + ".weight"] + s * (p64[gt.lora_name(path, "B")] @ p64[gt.lora_name(path, "A")])
            norms[path] = V.norm(dim=1).detach()

    def loss64(pp):
        return gt.causal_lm_loss(case_logits(spec, case, base64, pp, ids, norms or None), labels)

    names = list(p64)
    g64 = dict(zip(names, torch.autograd.grad(loss64(p64), [p64[n] for n in names])))
    for n in names:
        scale = max(float(g64[n].abs().max()), 1e-3)
        d = float((grads32[n].double() - g64[n]).abs().max())
        assert d < 2e-4 * scale + 1e-6, "%s: f32 grad %s off f64 by %g" % (case["name"], n, d)
    rng = torch.Generator().manual_seed(case["seed"] + 999)
    worst = 0.0
    picks = [n for n in names if n.endswith("lora_magnitude_vector")][:2] + names[:2]
    for n in picks:
        gflat = g64[n].reshape(-1)
        j = int(torch.randint(0, gflat.numel(), (1,), generator=rng))
        vals = {}
        for sgn in (1, -1):
            pp = {k: v.detach().clone() for k, v in p64.items()}
            pp[n].view(-1)[j] += sgn * 1e-6
            with torch.no_grad():
                vals[sgn] = float(loss64(pp))
        fd = (vals[1] - vals[-1]) / 2e-6
        ad = float(gflat[j])
        assert abs(fd - ad) < 1e-7 + 1e-5 * abs(ad), "%s: FD %s[%d] %.10g vs %.10g" % (case["name"], n, j, fd, ad)
        worst = max(worst, abs(fd - ad) / max(abs(ad), 1e-12))
    return worst


def adapter_config(case):
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "../base", "revision": None,
        "inference_mode": True, "r": case["r"], "lora_alpha": case["lora_alpha"], "lora_dropout": 0.0,
        "target_modules": list(case["targets"]), "use_rslora": case["use_rslora"], "use_dora": case["use_dora"],
        "bias": "none", "fan_in_fan_out": False, "init_lora_weights": True, "modules_to_save": None,
        "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
    }


def gen_case(case):
    spec = dict(gt.BASES[case["base"]])
    spec["name"] = case["name"]
    outdir = os.path.join(gt.OUT_ROOT, case["name"])
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

    init = init_params(spec, case, base_w)
    names = list(init)
    if case["use_dora"]:
        check_dora_forms(spec, case, base_w, init)

    adir = os.path.join(outdir, "adapter_init")
    os.makedirs(adir)
    gt.write_json(os.path.join(adir, "adapter_config.json"), adapter_config(case))
    gm.write_safetensors(os.path.join(adir, "adapter_model.safetensors"), [(n, init[n]) for n in names], "F32")

    leaves = {n: init[n].clone().requires_grad_(True) for n in names}
    logits = case_logits(spec, case, base_w, leaves, ids)
    loss = gt.causal_lm_loss(logits, labels)
    loss.backward()
    grads = {n: leaves[n].grad.detach().clone() for n in names}
    logits = logits.detach()
    for n in names:
        assert float(grads[n].abs().max()) > 0, "zero gradient for " + n
    with torch.no_grad():
        lora_only = dict(case, use_dora=False)
        plain = case_logits(spec, lora_only, base_w, init, ids)
    if case["use_dora"]:
        assert float((plain - logits).abs().max()) > 1e-2, "the magnitude has no visible effect"
    fd_worst = finite_differences(spec, case, base_w, init, ids, labels, grads)
    with torch.no_grad():
        merged = {k: v for k, v in effective_weights(spec, case, base_w, init).items()
                  if k.endswith("_proj.weight") and k.rsplit(".", 1)[0] in gt.lora_modules(spec, case)}

    # Trajectory: AdamW with LoRA+ groups (every group with the same weight decay).
    tparams = {n: init[n].clone().requires_grad_(True) for n in names}
    ratio = case["loraplus_lr_ratio"]
    fast = [n for n in names if ratio > 0 and ("lora_B" in n or tparams[n].dim() == 1)]
    groups = [{"params": [tparams[n] for n in names if n not in fast], "lr": gt.LR,
               "weight_decay": case["weight_decay"]}]
    if fast:
        groups.append({"params": [tparams[n] for n in fast], "lr": gt.LR * ratio, "weight_decay": case["weight_decay"]})
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

    hparams = {
        "kind": "lora", "arch": spec["arch"], "seed": case["seed"], "batch": gt.BATCH, "seq_len": gt.SEQ_LEN,
        "counted_label_tokens": n_counted, "optimizer": "adamw", "lr": gt.LR, "betas": list(gt.BETAS),
        "eps": gt.ADAM_EPS, "weight_decay": case["weight_decay"], "schedule": "linear",
        "warmup_steps": gt.WARMUP_STEPS, "max_steps": gt.MAX_STEPS, "max_grad_norm": gt.MAX_GRAD_NORM,
        "trainable": names, "r": case["r"], "lora_alpha": case["lora_alpha"], "use_rslora": case["use_rslora"],
        "use_dora": case["use_dora"], "scaling": scaling_of(case), "target_modules": list(case["targets"]),
        "loraplus_lr_ratio": ratio, "loraplus_fast_params": fast,
        "init": "A ~ U(-1/sqrt(in), 1/sqrt(in)), B ~ N(0, 0.1), m = ||W + sBA||_row (1 + 0.2 N(0,1))",
    }
    golden = {
        "note": case["note"], "hparams": hparams, "input_ids": ids.tolist(), "labels": labels.tolist(),
        "loss": gt.f32(loss), "shapes": {n: list(init[n].shape) for n in names},
        "init": {n: gt.flat(init[n]) for n in names}, "grads": {n: gt.flat(grads[n]) for n in names},
        "logits": [[[float(x) for x in row] for row in logits[b].numpy()] for b in range(gt.BATCH)],
        "merged_weights": {k: gt.flat(v) for k, v in merged.items()},
        "trajectory": {"losses": losses, "lrs": lrs, "grad_norms": norms,
                       "final": {n: gt.flat(tparams[n]) for n in names}},
    }
    gm.dump_golden(os.path.join(outdir, "golden.json"), golden)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(outdir) for f in fs)
    print("%-20s ok  loss %.4f -> %.4f  |g| %.3f  fd rel err %.1e  %7.1f KB"
          % (case["name"], losses[0], losses[-1], norms[0], fd_worst, size / 1024.0))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    only = set(sys.argv[1:])
    unknown = only - set(c["name"] for c in CASES)
    assert not unknown, "unknown case(s): %s" % sorted(unknown)
    for case in CASES:
        if not only or case["name"] in only:
            (gen_init_case if "init" in case else gen_case)(case)


if __name__ == "__main__":
    main()
