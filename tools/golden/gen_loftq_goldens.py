#!/usr/bin/python3
"""Golden reference values for lathe's LoftQ initialisation (init_lora_weights "loftq", method qlora).

Run with Debian's PyTorch (python3-torch, numpy); no peft or bitsandbytes package is used:

    /usr/bin/python3 tools/golden/gen_loftq_goldens.py                  # all cases
    /usr/bin/python3 tools/golden/gen_loftq_goldens.py loftq_llama_t1   # only some

LoftQ as PEFT's loftq_init (peft/utils/loftq_utils.py) does it with loftq_bits = 4, written out:

    res = W
    repeat loftq_iter times:
        Q = dequantize(NF4(res))             bitsandbytes' NF4, blocks of 64, plain f32 absmax
                                             (PEFT passes compress_statistics=False: no double quant)
        U, S, Vh = svd(W - Q)                torch.linalg.svd, full_matrices=False
        L = U[:, :r] sqrt(S[:r]);  R = sqrt(S[:r]) Vh[:r]
        res = W - L R
    lora_A = R, lora_B = L, the base weight becomes Q (the NF4 of the last res)

PEFT does not divide L and R by the LoRA scaling s = lora_alpha / r, so the model at step 0 is
Q + s·L R (≈ W only for s = 1). The NF4 quantizer is gen_nf4_goldens.py's (bitsandbytes' torch
reference kernel, which lathe matches bit for bit). Every linear projection is targeted, so the whole
QLoRA base is LoftQ's Q; the trajectory is 5 AdamW steps as gen_train_goldens.py's, from (A, B) on Q.

Singular vectors have a sign freedom, so golden.json holds the sign-free B A and |A|, |B|, plus the
base Q as NF4 codes and absmax, per module. For loftq_iter > 1 the second quantization sees W - L R, whose last
bits depend on the SVD implementation; an element that close to an NF4 decision boundary may round
the other way in lathe (LAPACK), so the golden records how near each module's nearest one is.
"""

import json
import os
import shutil
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_goldens as gm  # noqa: E402
import gen_nf4_goldens as nf  # noqa: E402
import gen_train_goldens as gt  # noqa: E402

CASES = [
    dict(name="loftq_llama_t1", base="llama", seed=4201, r=4, lora_alpha=4, loftq_iter=1, weight_decay=0.01,
         note="LoftQ 4 bits, loftq_iter 1, r=4 alpha=4 (scaling 1) on all 7 projections: Q = NF4(W)."),
    dict(name="loftq_llama_t2", base="llama", seed=4202, r=4, lora_alpha=8, loftq_iter=2, weight_decay=0.01,
         note="LoftQ 4 bits, loftq_iter 2, r=4 alpha=8 (scaling 2, not divided out, as PEFT) on all 7 "
              "projections: Q = NF4(W - L1 R1)."),
]


def nf4_plain(x):
    """dequantize(NF4(x)) with blocks of 64 and f32 absmax (no double quantization), and the distance
    of the nearest scaled value to an NF4 decision boundary (midpoint of two codes)."""
    flat = x.reshape(-1).float()
    absmax, scaled = nf.blockwise_scale(flat, 64)
    q = nf.nearest(scaled, nf.NF4).to(torch.int64)
    blk = torch.arange(flat.numel()) // 64
    mids = (nf.NF4[1:] + nf.NF4[:-1]) / 2
    margin = float(torch.abs(scaled.view(-1, 1) - mids.view(1, -1)).min())
    return (nf.NF4[q] * absmax[blk]).reshape(x.shape), margin, q, absmax


def loftq(W, r, iters):
    res = W.clone()
    margins = []
    for _ in range(iters):
        Q, margin, codes, absmax = nf4_plain(res)
        margins.append(margin)
        U, S, Vh = torch.linalg.svd(W - Q, full_matrices=False)
        L = U[:, :r] @ torch.diag(torch.sqrt(S[:r]))
        R = torch.diag(torch.sqrt(S[:r])) @ Vh[:r]
        res = W - L @ R
    return Q, R, L, margins, codes, absmax


def gen_case(case):
    spec = dict(gt.BASES[case["base"]])
    spec["name"] = case["name"]
    case = dict(case, targets=gt.ALL_LINEAR, use_rslora=False)
    outdir = os.path.join(gt.OUT_ROOT, case["name"])
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(os.path.join(outdir, "base"))
    gt.write_json(os.path.join(outdir, "base", "config.json"), gm.make_config(spec))
    gm.write_safetensors(os.path.join(outdir, "base", "model.safetensors"), list(gt.make_base_weights(spec).items()),
                         "F32")
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
    s = case["lora_alpha"] / case["r"]
    mods = gt.lora_modules(spec, case)
    init, qbase, margins, qcodes, err_loftq, err_plain = {}, dict(base_w), {}, {}, 0.0, 0.0
    for p in mods:
        W = base_w[p + ".weight"]
        Q, R, L, mg, codes, absmax = loftq(W, case["r"], case["loftq_iter"])
        qcodes[p + ".weight"] = {"codes": "".join("%x" % c for c in codes.tolist()),
                                    "absmax_bits": nf.f32_bits(absmax)}
        init[gt.lora_name(p, "A")], init[gt.lora_name(p, "B")] = R.contiguous(), L.contiguous()
        qbase[p + ".weight"] = Q
        margins[p] = mg
        err_loftq += float(((W - Q - s * (L @ R)) ** 2).sum())
        err_plain += float(((W - nf4_plain(W)[0]) ** 2).sum())
    names = list(init)
    tparams = {n: init[n].clone().requires_grad_(True) for n in names}

    def logits(params):
        w = dict(qbase)
        for p in mods:
            w[p + ".weight"] = qbase[p + ".weight"] + s * (params[gt.lora_name(p, "B")] @ params[gt.lora_name(p, "A")])
        return gt.forward_train(spec, w, ids)

    opt = torch.optim.AdamW([{"params": [tparams[n] for n in names], "weight_decay": case["weight_decay"]}],
                            lr=gt.LR, betas=gt.BETAS, eps=gt.ADAM_EPS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, gt.lr_lambda)
    losses, norms = [], []
    for _ in range(gt.MAX_STEPS):
        opt.zero_grad()
        lo = gt.causal_lm_loss(logits(tparams), labels)
        lo.backward()
        norms.append(gt.f32(torch.nn.utils.clip_grad_norm_([tparams[n] for n in names], gt.MAX_GRAD_NORM)))
        losses.append(gt.f32(lo))
        opt.step()
        sched.step()
    assert losses[-1] < losses[0], "training does not reduce the loss"
    golden = {
        "note": case["note"],
        "hparams": {"init_lora_weights": "loftq", "loftq_iter": case["loftq_iter"], "r": case["r"],
                    "lora_alpha": case["lora_alpha"], "scaling": s, "target_modules": list(case["targets"]),
                    "lr": gt.LR, "weight_decay": case["weight_decay"]},
        "input_ids": ids.tolist(), "labels": labels.tolist(),
        "boundary_margins": margins,
        "frobenius_error": {"loftq": err_loftq ** 0.5, "plain_nf4": err_plain ** 0.5},
        # B A (sign-free) of layer 0's modules; |A| and |B| of all; the NF4 base as codes (one hex digit
        # per element) and the f32 bits of absmax per block of 64: it dequantizes to NF4[code] * absmax.
        "init_products": {p: gt.flat(init[gt.lora_name(p, "B")] @ init[gt.lora_name(p, "A")])
                          for p in mods if p.startswith("model.layers.0.")},
        "init_abs": {n: gt.flat(init[n].abs()) for n in names},
        "base_nf4": qcodes,
        "trajectory": {"losses": losses, "grad_norms": norms},
    }
    gm.dump_golden(os.path.join(outdir, "golden.json"), golden)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(outdir) for f in fs)
    print("%-16s ok  loss %.4f -> %.4f  ||W - Q - sBA|| %.4g (plain NF4 %.4g)  min margin %.1e  %6.1f KB"
          % (case["name"], losses[0], losses[-1], err_loftq ** 0.5, err_plain ** 0.5,
             min(min(v) for v in margins.values()), size / 1024.0))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    only = set(sys.argv[1:])
    unknown = only - set(c["name"] for c in CASES)
    assert not unknown, "unknown case(s): %s" % sorted(unknown)
    for case in CASES:
        if not only or case["name"] in only:
            gen_case(case)


if __name__ == "__main__":
    main()
