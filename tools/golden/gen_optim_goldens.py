#!/usr/bin/python3
"""Golden values for lathe's AdamW, learning-rate schedules and gradient clipping.

Run with Debian's PyTorch (torch 1.13):

    /usr/bin/python3 tools/golden/gen_optim_goldens.py

It writes tests/data/optim/golden.json, which tests/train/optim_unit.cpp replays: for each case it
runs torch.optim.AdamW (two param groups: weight decay on / off, as the HF Trainer splits them), a
LambdaLR with Hugging Face's schedule lambdas (restated below from transformers/optimization.py),
and torch.nn.utils.clip_grad_norm_, feeding given gradients for a few steps, and records the lr used
by each step, the pre-clip gradient norm, and every parameter after each step, plus the final AdamW
moments. Output is deterministic (fixed seeds, one thread).

golden.json:
{
  "cases": [{
    "name": str, "lr": f, "betas": [f, f], "eps": f, "weight_decay": f,
    "schedule": str, "warmup_steps": int, "max_steps": int, "max_grad_norm": f (0 = no clipping),
    "params": [{"name": str, "shape": [int], "weight_decay": bool, "init": [f]}],
    "steps": [{"grads": {name: [f]}, "lr": f, "grad_norm": f, "params": {name: [f]}}],
    "exp_avg": {name: [f]}, "exp_avg_sq": {name: [f]}
  }]
}
Tensors are flattened row-major; floats are float32 values written exactly (repr of the double).
"""

import json
import math
import os

import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO_ROOT, "tests", "data", "optim", "golden.json")


# Hugging Face schedule multipliers (transformers.optimization), step = optimizer steps taken so far.
def hf_lambda(kind, warmup, total):
    def constant(step):
        return 1.0

    def constant_with_warmup(step):
        if step < warmup:
            return float(step) / float(max(1.0, warmup))
        return 1.0

    def linear(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        return max(0.0, float(total - step) / float(max(1, total - warmup)))

    def cosine(step, num_cycles=0.5):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))

    return {"constant": constant, "constant_with_warmup": constant_with_warmup, "linear": linear,
            "cosine": cosine}[kind]


# name, shape, weight decay applies
PARAMS = [("layer.weight", [3, 5], True), ("layer.bias", [5], False), ("lora_A.weight", [2, 7], True)]

CASES = [
    # grad_scales per step: large scales trigger clipping, small ones do not.
    dict(name="linear_warmup_clip", lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1,
         schedule="linear", warmup_steps=2, max_steps=8, max_grad_norm=1.0,
         grad_scales=[1.0, 0.05, 2.0, 0.1, 0.02, 3.0, 0.1, 0.5], seed=1),
    # eps matters when grads are tiny (1e-5): sqrt(v) is then comparable to eps.
    dict(name="cosine_betas_noclip", lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.01,
         schedule="cosine", warmup_steps=1, max_steps=6, max_grad_norm=0.0,
         grad_scales=[1.0, 1e-5, 0.3, 2.0, 1e-5, 0.7], seed=2),
    dict(name="constant_with_warmup", lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
         schedule="constant_with_warmup", warmup_steps=3, max_steps=5, max_grad_norm=0.5,
         grad_scales=[0.2, 0.4, 0.1, 1.0, 0.05], seed=3),
    # constant ignores warmup_steps in HF; the golden pins that.
    dict(name="constant_ignores_warmup", lr=5e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05,
         schedule="constant", warmup_steps=2, max_steps=4, max_grad_norm=10.0,
         grad_scales=[1.0, 0.5, 0.25, 4.0], seed=4),
]


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def run_case(c):
    gen = torch.Generator().manual_seed(c["seed"])
    params = {name: torch.randn(shape, generator=gen, dtype=torch.float32).requires_grad_(True)
              for name, shape, _ in PARAMS}
    out = dict(name=c["name"], lr=c["lr"], betas=list(c["betas"]), eps=c["eps"],
               weight_decay=c["weight_decay"], schedule=c["schedule"], warmup_steps=c["warmup_steps"],
               max_steps=c["max_steps"], max_grad_norm=c["max_grad_norm"],
               params=[dict(name=n, shape=s, weight_decay=wd, init=flat(params[n])) for n, s, wd in PARAMS],
               steps=[])
    groups = [
        {"params": [params[n] for n, _, wd in PARAMS if wd], "weight_decay": c["weight_decay"]},
        {"params": [params[n] for n, _, wd in PARAMS if not wd], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=c["lr"], betas=c["betas"], eps=c["eps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, hf_lambda(c["schedule"], c["warmup_steps"], c["max_steps"]))
    plist = [params[n] for n, _, _ in PARAMS]
    for scale in c["grad_scales"]:
        grads = {n: torch.randn(s, generator=gen, dtype=torch.float32) * scale for n, s, _ in PARAMS}
        for n, _, _ in PARAMS:
            params[n].grad = grads[n].clone()
        lr = opt.param_groups[0]["lr"]
        if c["max_grad_norm"] > 0:
            norm = torch.nn.utils.clip_grad_norm_(plist, c["max_grad_norm"])
        else:
            norm = torch.norm(torch.stack([torch.norm(p.grad, 2.0) for p in plist]), 2.0)
        opt.step()
        sched.step()
        out["steps"].append(dict(grads={n: flat(g) for n, g in grads.items()}, lr=lr, grad_norm=float(norm),
                                 params={n: flat(p) for n, p in params.items()}))
    out["exp_avg"] = {n: flat(opt.state[params[n]]["exp_avg"]) for n, _, _ in PARAMS}
    out["exp_avg_sq"] = {n: flat(opt.state[params[n]]["exp_avg_sq"]) for n, _, _ in PARAMS}
    return out


def main():
    torch.set_num_threads(1)
    data = {"note": "generated by tools/golden/gen_optim_goldens.py (torch %s)" % torch.__version__.split("a")[0],
            "cases": [run_case(c) for c in CASES]}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
