#!/usr/bin/python3
"""PyTorch eager reference for the preference (DPO) benchmark (Debian python3-torch 1.13).

The Llama-architecture decoder of ref_torch_train.py (random weights, tied embeddings) with LoRA
(PEFT math: y = Wx + (alpha/r) B(A x), frozen base) on all linear layers. One DPO step, as TRL
runs it with a PEFT model and no separate reference model: the reference log-probabilities of the
chosen and rejected sequences with the adapter switched off (no gradient), then the policy's
forward and backward on both, the sigmoid loss on summed completion log-probabilities, AdamW.
Chosen and rejected have the same length, so they form one unpadded batch of 2 x pairs rows.
Times `--steps` optimizer steps after one warm-up step and prints one JSON line; tokens_per_s
counts the policy's tokens (chosen + rejected), as `lathe train` reports them.
"""
import argparse, json, math, resource, time
import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--hidden", type=int, default=576)
p.add_argument("--intermediate", type=int, default=1536)
p.add_argument("--layers", type=int, default=30)
p.add_argument("--heads", type=int, default=9)
p.add_argument("--kv-heads", type=int, default=3)
p.add_argument("--vocab", type=int, default=49152)
p.add_argument("--prompt-len", type=int, default=128)
p.add_argument("--completion-len", type=int, default=128)
p.add_argument("--pairs", type=int, default=1)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--r", type=int, default=16)
p.add_argument("--beta", type=float, default=0.1)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
C, FF, L, H, Hkv, V = a.hidden, a.intermediate, a.layers, a.heads, a.kv_heads, a.vocab
D = C // H
T = a.prompt_len + a.completion_len
lora_on = [True]


class Lin(torch.nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.w = torch.nn.Linear(i, o, bias=False)
        self.w.weight.requires_grad_(False)
        self.A = torch.nn.Parameter(torch.empty(a.r, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i)))
        self.B = torch.nn.Parameter(torch.zeros(o, a.r))

    def forward(self, x):
        y = self.w(x)
        if lora_on[0]:
            y = y + 2.0 * ((x @ self.A.t()) @ self.B.t())
        return y


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n1 = torch.nn.Parameter(torch.ones(C), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(C), requires_grad=False)
        self.q, self.k, self.v, self.o = Lin(C, H * D), Lin(C, Hkv * D), Lin(C, Hkv * D), Lin(H * D, C)
        self.g, self.u, self.d = Lin(C, FF), Lin(C, FF), Lin(FF, C)


def rms(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))


def rot(x, cos, sin):
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return x * cos + torch.cat((-x2, x1), -1) * sin


embed = torch.nn.Embedding(V, C)
embed.weight.requires_grad_(False)
blocks = torch.nn.ModuleList(Block() for _ in range(L))
norm = torch.ones(C)
inv_freq = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
ang = torch.outer(torch.arange(T).float(), inv_freq)
emb = torch.cat((ang, ang), -1)
cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
mask = torch.full((T, T), float("-inf")).triu(1)


def completion_logps(ids):
    """Summed log-probabilities of each row's completion tokens (the last completion_len)."""
    Bn = ids.shape[0]
    h = embed(ids)
    for b in blocks:
        x = rms(h, b.n1)
        q = rot(b.q(x).view(Bn, T, H, D), cos, sin).transpose(1, 2)
        k = rot(b.k(x).view(Bn, T, Hkv, D), cos, sin).repeat_interleave(H // Hkv, 2).transpose(1, 2)
        v = b.v(x).view(Bn, T, Hkv, D).repeat_interleave(H // Hkv, 2).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + mask, -1) @ v
        h = h + b.o(att.transpose(1, 2).reshape(Bn, T, H * D))
        x = rms(h, b.n2)
        h = h + b.d(F.silu(b.g(x)) * b.u(x))
    # Only the rows that score completion tokens need the vocabulary projection.
    hc = rms(h[:, a.prompt_len - 1 : T - 1], norm)
    logp = torch.log_softmax(hc @ embed.weight.t(), -1)
    return logp.gather(-1, ids[:, a.prompt_len :, None])[..., 0].sum(-1)


params = [p for p in blocks.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4)
# Rows 2e (chosen) and 2e+1 (rejected) share their prompt.
prompt = torch.randint(0, V, (a.pairs, 1, a.prompt_len)).expand(a.pairs, 2, a.prompt_len)
ids = torch.cat((prompt, torch.randint(0, V, (a.pairs, 2, a.completion_len))), -1).reshape(2 * a.pairs, T)
times = []
for s in range(a.steps + 1):
    t0 = time.perf_counter()
    opt.zero_grad()
    with torch.no_grad():
        lora_on[0] = False
        ref = completion_logps(ids)
        lora_on[0] = True
    pol = completion_logps(ids)
    z = (pol[0::2] - pol[1::2]) - (ref[0::2] - ref[1::2])
    loss = -F.logsigmoid(a.beta * z).mean()
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t0)
step_s = sum(times[1:]) / a.steps
print(json.dumps({"impl": f"pytorch {torch.__version__} eager", "method": "dpo-lora",
                  "tokens_per_s": 2 * a.pairs * T / step_s, "step_s": step_s,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
