#!/usr/bin/python3
"""PyTorch eager reference for the training benchmark (Debian python3-torch 1.13).

The same Llama-architecture decoder as ref_torch_infer.py, trained with LoRA (PEFT math:
y = Wx + (alpha/r)·B(A x), frozen base), prefix tuning (trainable per-layer key/value prefixes of
--prefix-len rows, unrotated, always visible, frozen base) or fully, AdamW, on random ids of
length T, batch B.
Times `--steps` optimizer steps after one warm-up step and prints one JSON line.
"""
import argparse, json, math, resource, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--hidden", type=int, default=576)
p.add_argument("--intermediate", type=int, default=1536)
p.add_argument("--layers", type=int, default=30)
p.add_argument("--heads", type=int, default=9)
p.add_argument("--kv-heads", type=int, default=3)
p.add_argument("--vocab", type=int, default=49152)
p.add_argument("--seq", type=int, default=512)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--method", default="lora", choices=["lora", "full", "prefix"])
p.add_argument("--prefix-len", type=int, default=20)
p.add_argument("--r", type=int, default=16)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
C, F, L, H, Hkv, V = a.hidden, a.intermediate, a.layers, a.heads, a.kv_heads, a.vocab
D = C // H


class Lin(torch.nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.w = torch.nn.Linear(i, o, bias=False)
        if a.method == "prefix":
            self.w.weight.requires_grad_(False)
        if a.method == "lora":
            self.w.weight.requires_grad_(False)
            self.A = torch.nn.Parameter(torch.empty(a.r, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i)))
            self.B = torch.nn.Parameter(torch.zeros(o, a.r))

    def forward(self, x):
        y = self.w(x)
        if a.method == "lora":
            y = y + 2.0 * ((x @ self.A.t()) @ self.B.t())
        return y


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n1 = torch.nn.Parameter(torch.ones(C))
        self.n2 = torch.nn.Parameter(torch.ones(C))
        self.q, self.k, self.v, self.o = Lin(C, H * D), Lin(C, Hkv * D), Lin(C, Hkv * D), Lin(H * D, C)
        self.g, self.u, self.d = Lin(C, F), Lin(C, F), Lin(F, C)
        if a.method == "prefix":
            self.pk = torch.nn.Parameter(torch.randn(1, a.prefix_len, Hkv, D))
            self.pv = torch.nn.Parameter(torch.randn(1, a.prefix_len, Hkv, D))


def rms(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))


def rot(x, cos, sin):
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return x * cos + torch.cat((-x2, x1), -1) * sin


embed = torch.nn.Embedding(V, C)
blocks = torch.nn.ModuleList(Block() for _ in range(L))
norm = torch.nn.Parameter(torch.ones(C))
if a.method != "full":
    embed.weight.requires_grad_(False)
    for b in blocks:
        b.n1.requires_grad_(False), b.n2.requires_grad_(False)
    norm.requires_grad_(False)
inv_freq = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
ang = torch.outer(torch.arange(a.seq).float(), inv_freq)
emb = torch.cat((ang, ang), -1)
cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
mask = torch.full((a.seq, a.seq), float("-inf")).triu(1)
Pn = a.prefix_len if a.method == "prefix" else 0
mask = torch.cat((torch.zeros(a.seq, Pn), mask), 1)


def loss_fn(ids):
    Bn, T = ids.shape
    h = embed(ids)
    for b in blocks:
        x = rms(h, b.n1)
        q = rot(b.q(x).view(Bn, T, H, D), cos, sin).transpose(1, 2)
        k = rot(b.k(x).view(Bn, T, Hkv, D), cos, sin)
        v = b.v(x).view(Bn, T, Hkv, D)
        if Pn:
            k = torch.cat((b.pk.expand(Bn, -1, -1, -1), k), 1)
            v = torch.cat((b.pv.expand(Bn, -1, -1, -1), v), 1)
        k = k.repeat_interleave(H // Hkv, 2).transpose(1, 2)
        v = v.repeat_interleave(H // Hkv, 2).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + mask, -1) @ v
        h = h + b.o(att.transpose(1, 2).reshape(Bn, T, H * D))
        x = rms(h, b.n2)
        h = h + b.d(torch.nn.functional.silu(b.g(x)) * b.u(x))
    logits = rms(h, norm) @ embed.weight.t()
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))


params = [p for p in list(blocks.parameters()) + list(embed.parameters()) + [norm] if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4)
ids = torch.randint(0, V, (a.batch, a.seq))
times = []
for s in range(a.steps + 1):
    t0 = time.perf_counter()
    opt.zero_grad()
    loss_fn(ids).backward()
    opt.step()
    times.append(time.perf_counter() - t0)
step_s = sum(times[1:]) / a.steps
print(json.dumps({"impl": f"pytorch {torch.__version__} eager", "method": a.method, "tokens_per_s": a.batch * a.seq / step_s,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
