#!/usr/bin/python3
"""PyTorch eager reference for the inference benchmark (Debian python3-torch 1.13).

A plain Llama-architecture decoder (RMSNorm, GQA attention with rotate-half RoPE and a KV cache,
SwiGLU MLP, tied lm_head) with random weights, timed on: prefill of P tokens (logits of the last
position only, as lathe's generate does) and greedy decode of N tokens. Prints one JSON line.
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
p.add_argument("--prompt", type=int, default=512)
p.add_argument("--new", type=int, default=64)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
C, F, L, H, Hkv, V = a.hidden, a.intermediate, a.layers, a.heads, a.kv_heads, a.vocab
D = C // H


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n1 = torch.nn.Parameter(torch.ones(C))
        self.n2 = torch.nn.Parameter(torch.ones(C))
        self.q = torch.nn.Linear(C, H * D, bias=False)
        self.k = torch.nn.Linear(C, Hkv * D, bias=False)
        self.v = torch.nn.Linear(C, Hkv * D, bias=False)
        self.o = torch.nn.Linear(H * D, C, bias=False)
        self.g = torch.nn.Linear(C, F, bias=False)
        self.u = torch.nn.Linear(C, F, bias=False)
        self.d = torch.nn.Linear(F, C, bias=False)


def rms(x, w, eps=1e-5):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rot(x, cos, sin):
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return x * cos + torch.cat((-x2, x1), -1) * sin


embed = torch.nn.Embedding(V, C)
blocks = torch.nn.ModuleList(Block() for _ in range(L))
norm = torch.ones(C)
inv_freq = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))


def forward(ids, pos0, cache):
    T = ids.shape[0]
    pos = torch.arange(pos0, pos0 + T).float()
    ang = torch.outer(pos, inv_freq)
    emb = torch.cat((ang, ang), -1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    h = embed(ids)
    for l, b in enumerate(blocks):
        x = rms(h, b.n1)
        q = rot(b.q(x).view(T, H, D), cos, sin)
        k = rot(b.k(x).view(T, Hkv, D), cos, sin)
        v = b.v(x).view(T, Hkv, D)
        if cache[l] is not None:
            k = torch.cat((cache[l][0], k), 0)
            v = torch.cat((cache[l][1], v), 0)
        cache[l] = (k, v)
        kk = k.repeat_interleave(H // Hkv, 1).transpose(0, 1)  # [H, S, D]
        vv = v.repeat_interleave(H // Hkv, 1).transpose(0, 1)
        s = q.transpose(0, 1) @ kk.transpose(1, 2) / math.sqrt(D)  # [H, T, S]
        S = k.shape[0]
        mask = torch.full((T, S), float("-inf")).triu(S - T + 1)
        att = torch.softmax(s + mask, -1) @ vv
        h = h + b.o(att.transpose(0, 1).reshape(T, H * D))
        x = rms(h, b.n2)
        h = h + b.d(torch.nn.functional.silu(b.g(x)) * b.u(x))
    return rms(h[-1:], norm) @ embed.weight.t()


with torch.no_grad():
    ids = torch.randint(0, V, (a.prompt,))
    forward(ids[:8], 0, [None] * L)  # warm-up
    cache = [None] * L
    t0 = time.perf_counter()
    logits = forward(ids, 0, cache)
    t1 = time.perf_counter()
    nxt = logits.argmax(-1)
    for i in range(a.new - 1):
        logits = forward(nxt, a.prompt + i, cache)
        nxt = logits.argmax(-1)
    t2 = time.perf_counter()

weights = sum(p.numel() for p in blocks.parameters()) + embed.weight.numel() + C
print(json.dumps({
    "impl": f"pytorch {torch.__version__} eager",
    "prefill_tok_s": a.prompt / (t1 - t0),
    "decode_tok_s": (a.new - 1) / (t2 - t1),
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "weight_bytes": weights * 4,
}))
