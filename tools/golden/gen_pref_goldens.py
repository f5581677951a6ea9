#!/usr/bin/python3
"""Golden reference values for lathe's PREFERENCE training: DPO (sigmoid, conservative, IPO), KTO, ORPO.

Run with Debian's PyTorch (torch 1.13, numpy):

    /usr/bin/python3 tools/golden/gen_pref_goldens.py            # all cases
    /usr/bin/python3 tools/golden/gen_pref_goldens.py dpo_ipo    # only some (base/adapter are rewritten)

Writes tests/data/pref_golden/:

    base/config.json, base/model.safetensors     tiny random Llama (the llama base of
                                                 gen_train_goldens.py: same seed, same bytes)
    adapter_init/adapter_config.json,            a PEFT LoRA adapter (r 2, alpha 4, all 7 linear
    adapter_init/adapter_model.safetensors       projections, dropout 0) with A and B both non-zero
    <case>/data.jsonl                            pre-tokenized preference records
    <case>/golden.json                           see below

Output is deterministic (fixed seeds, one thread): rerunning gives identical bytes. The model math
(HF Llama + PEFT LoRA) is gen_train_goldens.py's, imported; the preference losses are written here
from TRL's documented formulas (no TRL code). Semantics:

* Records. dpo/orpo: {"prompt_input_ids", "chosen_input_ids", "rejected_input_ids"}; kto:
  {"prompt_input_ids", "completion_input_ids", "label"}. A sequence is prompt + completion ids
  (nothing appended); the completion tokens carry the loss (labels -100 on the prompt). HF shift:
  logits at t score token t+1, so a sequence has exactly len(completion) scored tokens.
* Per-sequence log-prob s = sum over its completion tokens of log_softmax(logits)[next token];
  DPO sigmoid and KTO use s, DPO ipo and ORPO use s / n (n = completion length).
* DPO: z = (pi_c - pi_r) - (ref_c - ref_r); sigmoid: l = -logsigmoid(beta z)(1 - ls)
  - logsigmoid(-beta z) ls; ipo: l = (z - 1/(2 beta))^2; loss = mean over the micro-batch's pairs.
  rewards/chosen = beta (pi_c - ref_c), rewards/rejected likewise, margins, accuracies
  (chosen > rejected), logps/chosen, logps/rejected = the policy's values as used.
* KTO: KL pair e = prompt e + completion e-1 (cyclic within the micro-batch); kl = mean over the
  micro-batch of (policy - reference) KL-pair log-probs, clamped at 0, no gradient. With
  r = pi - ref: desirable l = 1 - sigmoid(beta (r - kl)), undesirable l = 1 - sigmoid(beta (kl - r));
  loss = mean over all completions of (desirable_weight * l or undesirable_weight * l). Metrics:
  rewards/chosen (mean beta r over desirable), rewards/rejected, margins (difference), kl,
  logps/chosen, logps/rejected.
* ORPO (no reference): a, b = averaged chosen / rejected log-probs, log_odds = (a - b)
  - (log1p(-e^a) - log1p(-e^b)); loss = nll - beta mean(logsigmoid(log_odds)), nll = cross-entropy
  averaged over every chosen completion token of the micro-batch. Metrics as TRL names them,
  plus log_odds_ratio, log_odds_chosen, nll_loss.
* Gradient accumulation: each micro-batch's loss is scaled by 1/gradient_accumulation_steps; the
  step's loss is the mean of its micro-batch losses (HF Trainer), its metrics the mean over all of
  its examples (KTO: margins = chosen mean - rejected mean; kl = mean over micro-batches).

golden.json, per case:

  hparams                      method options and the optimizer / schedule of the trajectory
  micro_batch                  the first micro-batch (2 pairs / 4 KTO examples) as lathe's
                               PreferenceBatch: ids, labels (unshifted, -100 = no loss), prompt_len
                               and desirable (kto)
  logps                        its per-sequence sums and counts: policy (base + adapter_init),
                               reference (the base: adapter switched off), kl_policy, kl_reference
  from_logps                   float64 loss, dloss_dsum and metrics computed from those logps
                               (what lathe::preference_loss must give)
  loss, metrics, grads         float32 through the model: d loss / d every LoRA parameter
  trajectory                   `lathe train --method M --init-adapter adapter_init --no-shuffle`:
                               5 AdamW steps (lr 1e-2, betas (0.9, 0.999), eps 1e-8, weight decay
                               0.01, linear schedule with 1 warmup step so step 1 has lr 0,
                               clip 1.0, per_device_train_batch_size 2, the case's accumulation).
                               The reference policy here is base + adapter_init FROZEN (lathe's
                               rule for --init-adapter), so at step 1 policy == reference.
                               losses, lrs, grad_norms (pre-clip), metrics per step, final weights.
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
import gen_train_goldens as gt  # noqa: E402  (model + LoRA math, base weights, adapter config)

gm = gt.gm
OUT_ROOT = os.path.join(gt.REPO_ROOT, "tests", "data", "pref_golden")

LORA = dict(name="pref", kind="lora", seed=5001, r=2, lora_alpha=4, use_rslora=False,
            targets=gt.ALL_LINEAR, weight_decay=0.01)
LR = 1e-2
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.01
WARMUP_STEPS = 1
MAX_STEPS = 5
MAX_GRAD_NORM = 1.0
BATCH = 2  # per_device_train_batch_size of the trajectory

CASES = [
    dict(name="dpo_sigmoid", method="dpo", loss_type="sigmoid", beta=0.1, label_smoothing=0.0,
         grad_accum=1, seed=5101, records=4, grad_examples=2,
         note="DPO, sigmoid loss, beta 0.1, summed log-probs."),
    dict(name="dpo_sigmoid_ls", method="dpo", loss_type="sigmoid", beta=0.1, label_smoothing=0.1,
         grad_accum=2, seed=5102, records=4, grad_examples=2,
         note="Conservative DPO (label_smoothing 0.1); trajectory with gradient_accumulation_steps 2."),
    dict(name="dpo_ipo", method="dpo", loss_type="ipo", beta=0.1, label_smoothing=0.0,
         grad_accum=1, seed=5103, records=4, grad_examples=2,
         note="IPO, beta 0.1: per-token averaged log-probs, target margin 1/(2 beta) = 5."),
    dict(name="kto", method="kto", beta=0.1, desirable_weight=0.8, undesirable_weight=1.2,
         labels=[True, False, True, True], grad_accum=1, seed=5107, records=4, grad_examples=4,
         note="KTO, beta 0.1, weights 0.8 / 1.2; labels T F T T: the gradient micro-batch of 4 is "
              "mixed (its KL estimate is positive, not clamped), the trajectory's second micro-batch "
              "is all desirable."),
    dict(name="orpo", method="orpo", beta=0.1, grad_accum=1, seed=5105, records=4, grad_examples=2,
         note="ORPO, beta (lambda) 0.1, no reference policy."),
]


def spec_of():
    spec = dict(gt.BASES["llama"])
    spec["name"] = "pref"
    return spec


def average_logps(case):
    return case["method"] == "orpo" or (case["method"] == "dpo" and case["loss_type"] == "ipo")


def short(x):
    """A float32 value as the shortest decimal that round-trips (keeps the JSON small)."""
    return float(str(np.float32(float(x))))


def shorts(t):
    return [short(x) for x in t.detach().to(torch.float32).reshape(-1).numpy()]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
def make_records(spec, case):
    g = torch.Generator().manual_seed(case["seed"])

    def toks(lo, hi):
        n = int(torch.randint(lo, hi + 1, (1,), generator=g))
        return torch.randint(3, spec["vocab"], (n,), generator=g).tolist()

    recs = []
    for i in range(case["records"]):
        if case["method"] == "kto":
            recs.append({"prompt_input_ids": toks(2, 5), "completion_input_ids": toks(2, 6),
                         "label": case["labels"][i]})
        else:
            recs.append({"prompt_input_ids": toks(2, 5), "chosen_input_ids": toks(2, 6),
                         "rejected_input_ids": toks(2, 6)})
    return recs


def sequences(case, recs):
    """Policy sequences of a micro-batch as (ids, prompt_len): chosen/rejected interleaved (2e, 2e+1)
    for pairs, one per example for KTO."""
    out = []
    for r in recs:
        p = r["prompt_input_ids"]
        if case["method"] == "kto":
            out.append((p + r["completion_input_ids"], len(p)))
        else:
            out.append((p + r["chosen_input_ids"], len(p)))
            out.append((p + r["rejected_input_ids"], len(p)))
    return out


def kl_sequences(recs):
    n = len(recs)
    return [(recs[e]["prompt_input_ids"] + recs[(e - 1) % n]["completion_input_ids"],
             len(recs[e]["prompt_input_ids"])) for e in range(n)]


def as_batch(case, recs):
    seqs = sequences(case, recs)
    b = {"ids": [s for s, _ in seqs],
         "labels": [[-100] * p + s[p:] for s, p in seqs]}
    if case["method"] == "kto":
        b["prompt_len"] = [p for _, p in seqs]
        b["desirable"] = [bool(r["label"]) for r in recs]
    return b


# ---------------------------------------------------------------------------
# Log-probabilities and losses (dtype-generic: float32 for the goldens, float64 for the checks)
# ---------------------------------------------------------------------------
def seq_logps(spec, base_w, lora, seqs):
    """Summed completion log-probs [N] (differentiable) and the completion token counts."""
    sums, counts = [], []
    for ids, p in seqs:
        assert p >= 1 and len(ids) > p
        logits = gt.forward_train(spec, base_w, torch.tensor([ids]), lora=lora,
                                  lora_scaling=gt.lora_scaling_of(LORA))[0]
        logp = torch.log_softmax(logits[:-1], dim=-1)
        tok = logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        sums.append(tok[p - 1:].sum())  # row t scores token t+1: rows p-1 .. T-2 are the completion
        counts.append(len(ids) - p)
    return torch.stack(sums), counts


def pref_loss(case, desirable, pol, cnt, ref, kl_pol, kl_ref):
    """Micro-batch loss (tensor) and the metric observations {name: [values]} (one value per
    example, or per micro-batch for kl and nll_loss)."""
    beta = case["beta"]
    cnt_t = torch.tensor(cnt, dtype=pol.dtype)
    obs = {}

    def put(name, vals):
        obs[name] = [float(v) for v in torch.as_tensor(vals).detach().reshape(-1)]

    if case["method"] == "dpo":
        v = pol / cnt_t if average_logps(case) else pol
        r = ref / cnt_t if average_logps(case) else ref
        pc, pr, rc, rr = v[0::2], v[1::2], r[0::2], r[1::2]
        z = (pc - pr) - (rc - rr)
        if case["loss_type"] == "ipo":
            losses = (z - 1.0 / (2.0 * beta)) ** 2
        else:
            ls = case["label_smoothing"]
            losses = -F.logsigmoid(beta * z) * (1 - ls) - F.logsigmoid(-beta * z) * ls
        loss = losses.mean()
        rew_c, rew_r = (beta * (pc - rc)).detach(), (beta * (pr - rr)).detach()
        put("rewards/chosen", rew_c)
        put("rewards/rejected", rew_r)
        put("rewards/margins", rew_c - rew_r)
        put("rewards/accuracies", (rew_c > rew_r).to(pol.dtype))
        put("logps/chosen", pc)
        put("logps/rejected", pr)
    elif case["method"] == "kto":
        kl = (kl_pol - kl_ref).mean().clamp(min=0).detach()
        des = torch.tensor(desirable)
        lr = pol - ref
        chosen = 1 - torch.sigmoid(beta * (lr[des] - kl))
        rejected = 1 - torch.sigmoid(beta * (kl - lr[~des]))
        loss = torch.cat((case["desirable_weight"] * chosen, case["undesirable_weight"] * rejected)).mean()
        if bool(des.any()):
            put("rewards/chosen", beta * lr[des])
            put("logps/chosen", pol[des])
        if bool((~des).any()):
            put("rewards/rejected", beta * lr[~des])
            put("logps/rejected", pol[~des])
        put("kl", kl)
    else:  # orpo
        a, b = pol[0::2] / cnt_t[0::2], pol[1::2] / cnt_t[1::2]
        log_odds = (a - b) - (torch.log1p(-torch.exp(a)) - torch.log1p(-torch.exp(b)))
        ratio = F.logsigmoid(log_odds)
        nll = -pol[0::2].sum() / cnt_t[0::2].sum()
        loss = nll - beta * ratio.mean()
        put("rewards/chosen", beta * a)
        put("rewards/rejected", beta * b)
        put("rewards/margins", beta * (a - b))
        put("rewards/accuracies", (a > b).to(pol.dtype))
        put("logps/chosen", a)
        put("logps/rejected", b)
        put("log_odds_ratio", ratio)
        put("log_odds_chosen", log_odds)
        put("nll_loss", nll)
    return loss, obs


def summarize(obs):
    """Means of the observations; KTO's margins from the means (as TRL reports them)."""
    m = {k: sum(v) / len(v) for k, v in obs.items()}
    if "rewards/margins" not in m and "rewards/chosen" in m and "rewards/rejected" in m:
        m["rewards/margins"] = m["rewards/chosen"] - m["rewards/rejected"]
    return m


def lora_of(params):
    return {path: (params[gt.lora_name(path, "A")], params[gt.lora_name(path, "B")])
            for path in gt.lora_modules(spec_of(), LORA)}


def micro_loss(case, spec, base_w, params, ref_params, recs, kl_logps=None):
    """Loss + observations + the logps of one micro-batch. ref_params None: the base (adapter off).
    kl_logps: KTO's (kl_policy, kl_reference) to use instead of computing them (finite differences
    must hold the no-gradient KL estimate fixed)."""
    seqs = sequences(case, recs)
    pol, cnt = seq_logps(spec, base_w, lora_of(params), seqs)
    ref = kl_pol = kl_ref = None
    with torch.no_grad():
        ref_lora = lora_of(ref_params) if ref_params is not None else None
        if case["method"] != "orpo":
            ref, _ = seq_logps(spec, base_w, ref_lora, seqs)
        if case["method"] == "kto":
            kls = kl_sequences(recs)
            kl_cnt = [len(s) - p for s, p in kls]
            if kl_logps is not None:
                kl_pol, kl_ref = kl_logps
            else:
                kl_pol, _ = seq_logps(spec, base_w, lora_of(params), kls)
                kl_ref, _ = seq_logps(spec, base_w, ref_lora, kls)
    desirable = [bool(r["label"]) for r in recs] if case["method"] == "kto" else None
    loss, obs = pref_loss(case, desirable, pol, cnt, ref, kl_pol, kl_ref)
    logps = {"policy": (pol, cnt), "reference": (ref, cnt)}
    if case["method"] == "kto":
        logps["kl_policy"] = (kl_pol, kl_cnt)
        logps["kl_reference"] = (kl_ref, kl_cnt)
    return loss, obs, logps


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------
def check_logps_naive(spec, base_w, params, seqs, pol):
    """Summed log-probs of the training forward == those of gm.naive_forward (float64 loops) on
    the merged weights W + scaling B A."""
    merged = dict(base_w)
    s = gt.lora_scaling_of(LORA)
    for path, (A, Bm) in lora_of(params).items():
        merged[path + ".weight"] = base_w[path + ".weight"] + s * (Bm @ A)
    for i, (ids, p) in enumerate(seqs):
        logits = gm.naive_forward(spec, merged, ids)
        lp = logits - logits.max(-1, keepdims=True)
        lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
        want = sum(lp[t, ids[t + 1]] for t in range(p - 1, len(ids) - 1))
        assert abs(want - float(pol[i])) < 1e-4 * max(1.0, abs(want)), "logps vs naive: %g %g" % (
            want, float(pol[i]))


def from_logps(case, desirable, lp):
    """float64 loss, dloss/dsum (autograd on the policy sums) and metrics from recorded logps,
    with a central-difference check of the derivative."""
    def t(name):
        return torch.tensor(lp[name]["sum"], dtype=torch.float64) if name in lp else None

    cnt = lp["policy"]["count"]
    pol = t("policy").requires_grad_(True)
    loss, obs = pref_loss(case, desirable, pol, cnt, t("reference"), t("kl_policy"), t("kl_reference"))
    (d,) = torch.autograd.grad(loss, pol)
    h = 1e-6
    for i in range(len(cnt)):
        vals = []
        for sgn in (1, -1):
            pp = t("policy")
            pp[i] += sgn * h
            vals.append(float(pref_loss(case, desirable, pp, cnt, t("reference"), t("kl_policy"),
                                        t("kl_reference"))[0]))
        fd = (vals[0] - vals[1]) / (2 * h)
        assert abs(fd - float(d[i])) < 1e-7 + 1e-6 * abs(fd), "dloss/dsum[%d]: fd %g autograd %g" % (
            i, fd, float(d[i]))
    return {"loss": float(loss), "dloss_dsum": [float(x) for x in d], "metrics": summarize(obs)}


def check_grads_f64(case, spec, base_w, init, recs, grads32):
    """The whole pipeline in float64: its gradients vs the float32 goldens, and central differences
    at 3 entries vs float64 autograd."""
    base64 = {k: v.double() for k, v in base_w.items()}
    p64 = {k: v.double().requires_grad_(True) for k, v in init.items()}
    loss, _, lps = micro_loss(case, spec, base64, p64, None, recs)
    kl = (lps["kl_policy"][0], lps["kl_reference"][0]) if "kl_policy" in lps else None
    names = list(p64)
    g64 = dict(zip(names, torch.autograd.grad(loss, [p64[n] for n in names])))
    for n in names:
        scale = max(float(g64[n].abs().max()), 1e-3)
        dd = float((grads32[n].double() - g64[n]).abs().max())
        assert dd < 2e-4 * scale + 1e-7, "%s: f32 grad %s off f64 by %g (scale %g)" % (case["name"], n, dd, scale)
    rng = torch.Generator().manual_seed(case["seed"] + 999)
    h = 1e-6
    for _ in range(3):
        n = names[int(torch.randint(0, len(names), (1,), generator=rng))]
        flat = g64[n].reshape(-1)
        cand = (flat.abs() > 1e-2 * float(flat.abs().max())).nonzero().reshape(-1)
        j = int(cand[int(torch.randint(0, len(cand), (1,), generator=rng))])
        vals = []
        for sgn in (1, -1):
            pp = {k: v.detach().clone() for k, v in p64.items()}
            pp[n].view(-1)[j] += sgn * h
            with torch.no_grad():
                vals.append(float(micro_loss(case, spec, base64, pp, None, recs, kl)[0]))
        fd = (vals[0] - vals[1]) / (2 * h)
        assert abs(fd - float(flat[j])) < 1e-8 + 1e-5 * abs(fd), "%s FD %s[%d]: %g vs %g" % (
            case["name"], n, j, fd, float(flat[j]))


# ---------------------------------------------------------------------------
# Trajectory: what `lathe train --method M --init-adapter adapter_init --no-shuffle` does
# ---------------------------------------------------------------------------
def lr_lambda(s):
    if s < WARMUP_STEPS:
        return float(s) / float(max(1, WARMUP_STEPS))
    return max(0.0, float(MAX_STEPS - s) / float(max(1, MAX_STEPS - WARMUP_STEPS)))


def trajectory(case, spec, base_w, init, recs):
    names = list(init)
    params = {n: init[n].clone().requires_grad_(True) for n in names}
    frozen = {n: init[n].clone() for n in names}  # the reference: base + adapter_init, frozen
    opt = torch.optim.AdamW([params[n] for n in names], lr=LR, betas=BETAS, eps=ADAM_EPS,
                            weight_decay=WEIGHT_DECAY)  # LoRA A/B all decay (HF rule)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    pos = 0  # file order, epochs wrap (lathe's TrainDataset::next_batch)
    losses, lrs, norms, metrics = [], [], [], []
    for _ in range(MAX_STEPS):
        opt.zero_grad()
        step_loss, obs = 0.0, {}
        for _a in range(case["grad_accum"]):
            picks = recs[pos:pos + BATCH]
            pos = (pos + len(picks)) % len(recs)
            lo, o, _ = micro_loss(case, spec, base_w, params, frozen, picks)
            (lo / case["grad_accum"]).backward()
            step_loss += float(lo) / case["grad_accum"]
            for k, v in o.items():
                obs.setdefault(k, []).extend(v)
        norms.append(short(torch.nn.utils.clip_grad_norm_([params[n] for n in names], MAX_GRAD_NORM)))
        lrs.append(opt.param_groups[0]["lr"])
        losses.append(step_loss)
        metrics.append(summarize(obs))
        opt.step()
        sched.step()
    return {"losses": losses, "lrs": lrs, "grad_norms": norms, "metrics": metrics,
            "final": {n: shorts(params[n]) for n in names}}


def check_trajectory(case, traj):
    """Policy == reference at step 1, so the loss there is known in closed form."""
    l0, b = traj["losses"][0], case["beta"]
    if case["method"] == "dpo":
        want = (1 / (2 * b)) ** 2 if case["loss_type"] == "ipo" else math.log(2.0)
        assert abs(l0 - want) < 1e-5 * want, "%s: step-1 loss %g, want %g" % (case["name"], l0, want)
    if case["method"] == "kto":
        lab = case["labels"][:BATCH]
        want = 0.5 * sum(case["desirable_weight"] if x else case["undesirable_weight"] for x in lab) / len(lab)
        assert abs(l0 - want) < 1e-6, "%s: step-1 loss %g, want %g" % (case["name"], l0, want)
    assert traj["lrs"][0] == 0.0 and traj["lrs"][1] == LR
    last = traj["metrics"][-1]
    if "rewards/margins" in last and case["method"] != "orpo":
        assert last["rewards/margins"] > 0, "%s: training did not separate chosen and rejected" % case["name"]


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------
def write_base_and_adapter(spec):
    """The shared base and adapter_init; returns (base weights, initial LoRA params) read back."""
    os.makedirs(os.path.join(OUT_ROOT, "base"), exist_ok=True)
    base_gen = gt.make_base_weights(spec)
    gt.write_json(os.path.join(OUT_ROOT, "base", "config.json"), gm.make_config(spec))
    gm.write_safetensors(os.path.join(OUT_ROOT, "base", "model.safetensors"), list(base_gen.items()), "F32")
    base_w = gm.read_safetensors(os.path.join(OUT_ROOT, "base", "model.safetensors"))
    torch.manual_seed(LORA["seed"])
    init = gt.init_trainable(spec, LORA, base_w)
    adir = os.path.join(OUT_ROOT, "adapter_init")
    os.makedirs(adir, exist_ok=True)
    gt.write_json(os.path.join(adir, "adapter_config.json"), gt.adapter_config(spec, LORA))
    gm.write_safetensors(os.path.join(adir, "adapter_model.safetensors"), list(init.items()), "F32")
    back = gm.read_safetensors(os.path.join(adir, "adapter_model.safetensors"))
    assert list(back) == list(init) and all(torch.equal(back[n], init[n]) for n in init)
    return base_w, back


def gen_case(case, spec, base_w, init):
    outdir = os.path.join(OUT_ROOT, case["name"])
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    recs = make_records(spec, case)
    with open(os.path.join(outdir, "data.jsonl"), "w") as f:
        for r in recs:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")

    # One micro-batch at the initial adapter; the reference is the base (adapter off).
    mb = recs[:case["grad_examples"]]
    names = list(init)
    leaves = {n: init[n].clone().requires_grad_(True) for n in names}
    loss, obs, logps = micro_loss(case, spec, base_w, leaves, None, mb)
    if case["method"] == "kto":  # the seed is chosen so that the KL term is not clamped away
        assert obs["kl"][0] > 0.1, "%s: kl %g" % (case["name"], obs["kl"][0])
    loss.backward()
    grads = {n: leaves[n].grad.detach().clone() for n in names}
    for n in names:
        assert float(grads[n].abs().max()) > 0, "zero gradient for " + n
    check_logps_naive(spec, base_w, init, sequences(case, mb), logps["policy"][0].detach())
    check_grads_f64(case, spec, base_w, init, mb, grads)
    lp = {k: {"sum": [float(x) for x in v.detach()], "count": list(c)} for k, (v, c) in logps.items()
          if v is not None}
    desirable = [bool(r["label"]) for r in mb] if case["method"] == "kto" else None
    fl = from_logps(case, desirable, lp)
    assert abs(fl["loss"] - float(loss)) < 1e-5 * max(1.0, abs(fl["loss"]))

    traj = trajectory(case, spec, base_w, init, recs)
    check_trajectory(case, traj)

    hp = {k: case[k] for k in ("method", "loss_type", "beta", "label_smoothing", "desirable_weight",
                               "undesirable_weight") if k in case}
    hp.update({"average_logps": average_logps(case), "seed": case["seed"], "lr": LR, "betas": list(BETAS),
               "eps": ADAM_EPS, "weight_decay": WEIGHT_DECAY, "schedule": "linear",
               "warmup_steps": WARMUP_STEPS, "max_steps": MAX_STEPS, "max_grad_norm": MAX_GRAD_NORM,
               "per_device_train_batch_size": BATCH, "gradient_accumulation_steps": case["grad_accum"],
               "lora_r": LORA["r"], "lora_alpha": LORA["lora_alpha"], "lora_dropout": 0.0,
               "trajectory_reference": "base + adapter_init, frozen",
               "gradient_reference": "base (adapter off)" if case["method"] != "orpo" else "none"})
    golden = {
        "note": case["note"],
        "hparams": hp,
        "micro_batch": as_batch(case, mb),
        "logps": lp,
        "from_logps": fl,
        "loss": float(loss),
        "metrics": summarize(obs),
        "grads": {n: shorts(grads[n]) for n in names},
        "trajectory": traj,
    }
    gm.dump_golden(os.path.join(outdir, "golden.json"), golden)
    size = sum(os.path.getsize(os.path.join(outdir, f)) for f in os.listdir(outdir))
    print("%-16s ok  loss %.5f  traj %s  |g| %.3f  %5.1f KB" % (
        case["name"], float(loss), " ".join("%.4f" % x for x in traj["losses"]), traj["grad_norms"][1],
        size / 1024.0))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    only = set(sys.argv[1:])
    unknown = only - set(c["name"] for c in CASES)
    assert not unknown, "unknown case(s): %s" % sorted(unknown)
    spec = spec_of()
    base_w, init = write_base_and_adapter(spec)
    for case in CASES:
        if not only or case["name"] in only:
            gen_case(case, spec, base_w, init)


if __name__ == "__main__":
    main()
