#!/usr/bin/python3
"""Golden values for lathe's NF4 quantizer (QLoRA storage, REFERENCE.md §2.3).

Run with Debian's PyTorch (torch 1.13, numpy):

    /usr/bin/python3 tools/golden/gen_nf4_goldens.py

It writes tests/data/nf4/golden.json, which tests/kernels/nf4_unit.cpp replays bit for bit.

What is restated here (our own code, written from bitsandbytes' published rules):
  * NF4 quantize as bitsandbytes' torch reference kernel does it (backends/default/ops.py,
    quantize_4bit): flatten row-major; per block of `blocksize` absmax = max|x|; a trailing partial
    block gets its own absmax; scaled = clamp(x * (1 / absmax), -1, 1); code = argmin |scaled - c|
    over the 16 NF4 values (first index wins a tie); an odd count is padded with 0.0 (code 7);
    two codes per byte, first element in the HIGH nibble.  absmax == 0 gives 0 * inf = NaN, and
    torch.argmin returns the first NaN, so an all-zero block encodes as code 0 (dequant -1 * 0 = -0).
  * The 8-bit dynamic map (functional.py create_dynamic_map(signed=True)), built with torch the way
    bitsandbytes builds it, so its bits carry torch.linspace's rounding (see dynamic_map()).
  * Double quantization (functional.py quantize_4bit, compress_statistics=True): offset =
    mean(absmax); absmax - offset quantized blockwise (block 256) on the dynamic map with the same
    absmax / clamp / argmin rule; dequant absmax = map[q] * absmax2[block] + offset, in f32 steps.
    bitsandbytes takes the mean with torch's f32 reduction, whose summation order depends on the
    build; we pin it to a sequential double sum rounded once to f32, which lathe reproduces exactly.
    `offset_equals_torch_mean` records whether torch's f32 mean happened to agree.

Every float is stored as its IEEE-754 bit pattern (uint32) so that nothing is lost in JSON.

golden.json:
{
  "nf4_code_bits": [16 x uint32], "dynamic_map_bits": [256 x uint32],
  "cases": [{ "name", "rows", "cols", "blocksize", "double_quant",
              "x_bits": [rows*cols], "packed": [ceil(n/2) bytes],
              "absmax_bits": [blocks]               # f32 absmax (before double quant)
              "nested_codes": [blocks], "nested_scale_bits": [ceil(blocks/256)],
              "offset_bits": uint32, "offset_equals_torch_mean": bool,   # double_quant only
              "absmax_deq_bits": [blocks],                               # double_quant only
              "deq_bits": [rows*cols] }]                  # only when rows*cols <= MAX_DEQ_STORED
}
"""

import json
import os
import struct

import numpy as np
import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_PATH = os.path.join(REPO_ROOT, "tests", "data", "nf4", "golden.json")

# bitsandbytes' NF4 code book, index = 4-bit code (REFERENCE.md §2.3).
NF4 = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=torch.float32)

NESTED_BLOCK = 256
# Larger cases store no per-element dequant (the file stays small); the test checks them through
# absmax_deq_bits, the same f32 product being pinned by the smaller cases.
MAX_DEQ_STORED = 8192


def dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), step by step.

    For exponent e = 0..6 it takes 2**e + 1 evenly spaced boundaries on [0.1, 1] (torch.linspace,
    float32), the midpoints of neighbouring boundaries, scaled by 10**(e-6), both signs; then 0 and
    1.0; 127 + 127 + 2 = 256 values, sorted. The float32 linspace is what makes the bits
    build-dependent, which is why we call torch rather than numpy here.
    """
    data = []
    for e in range(7):
        bounds = torch.linspace(0.1, 1, 2 ** e + 1)
        mids = (bounds[:-1] + bounds[1:]) / 2.0
        data += ((10 ** (e - 6)) * mids).tolist()
        data += (-(10 ** (e - 6)) * mids).tolist()
    data += [0.0, 1.0]
    assert len(data) == 256
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


def f32_bits(t):
    a = np.ascontiguousarray(t.detach().numpy().astype(np.float32).reshape(-1))
    return a.view(np.uint32).tolist()


def one_bits(v):
    return struct.unpack("<I", struct.pack("<f", float(v)))[0]


def blockwise_scale(flat, bs):
    """Per-block absmax and clamp(x * (1 / absmax), -1, 1), as bitsandbytes' reference kernel."""
    n = flat.numel()
    nblocks = (n + bs - 1) // bs
    absmax = torch.zeros(nblocks, dtype=torch.float32)
    scaled = torch.empty(n, dtype=torch.float32)
    for b in range(nblocks):
        seg = flat[b * bs:(b + 1) * bs]
        absmax[b] = seg.abs().max()
        scaled[b * bs:(b + 1) * bs] = torch.clamp(seg * (1 / absmax[b]), -1, 1)
    return absmax, scaled


def nearest(scaled, code):
    # argmin returns the first minimum, so a tie goes to the lower (more negative) code, and a NaN
    # (from an all-zero block) to index 0.
    return torch.argmin(torch.abs(scaled.view(-1, 1) - code.view(1, -1)), dim=-1).to(torch.uint8)


def quantize(x, bs, double_quant, dmap):
    flat = x.reshape(-1).float()
    n = flat.numel()
    absmax, scaled = blockwise_scale(flat, bs)
    if n % 2:
        scaled = torch.cat([scaled, torch.zeros(1)])
    q = nearest(scaled, NF4).to(torch.int64)
    packed = ((q[0::2] << 4) | q[1::2]).to(torch.uint8)
    case = {"packed": packed.tolist(), "absmax_bits": f32_bits(absmax)}

    if double_quant:
        total = 0.0
        for v in absmax.tolist():  # sequential double sum, see the module docstring
            total += v
        offset = torch.tensor(total / absmax.numel(), dtype=torch.float32)
        case["offset_equals_torch_mean"] = bool(absmax.mean().item() == offset.item())
        centered = absmax - offset
        absmax2, scaled2 = blockwise_scale(centered, NESTED_BLOCK)
        q2 = nearest(scaled2, dmap).to(torch.int64)
        blk2 = torch.arange(absmax.numel()) // NESTED_BLOCK
        absmax_deq = (dmap[q2] * absmax2[blk2]) + offset  # two f32 roundings, as bnb
        case.update(nested_codes=q2.tolist(), nested_scale_bits=f32_bits(absmax2),
                    offset_bits=one_bits(offset.item()), absmax_deq_bits=f32_bits(absmax_deq))
    else:
        absmax_deq = absmax

    q = q[:n]
    blk = torch.arange(n) // bs
    deq = NF4[q] * absmax_deq[blk]
    if n <= MAX_DEQ_STORED:
        case["deq_bits"] = f32_bits(deq)
    return case


def tie_tensor():
    """One 64-block holding every code value, every f32 midpoint and its two f32 neighbours.

    absmax is exactly 1 (the block holds 1.0 and -1.0) so scaled == x and the midpoints are real
    ties for argmin: |m - c_i| and |c_{i+1} - m| round to the same float32 in several cases.
    """
    c = NF4.numpy()
    vals = list(c)
    for i in range(15):
        m = np.float32((c[i] + c[i + 1]) / np.float32(2))
        vals += [m, np.nextafter(m, np.float32(-2)), np.nextafter(m, np.float32(2))]
    vals = vals[:64] + [np.float32(0.5)] * max(0, 64 - len(vals))
    # A second block with absmax 2: the scaled values are again the code values and midpoints.
    vals2 = [np.float32(2) * v for v in vals]
    return torch.tensor(np.array(vals + vals2, dtype=np.float32)).reshape(2, 64)


def main():
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    dmap = dynamic_map()
    g = torch.Generator().manual_seed(20240601)

    def randn(r, c, scale=0.02):
        return torch.randn(r, c, generator=g) * scale

    zero_block = randn(4, 64)
    zero_block[1].zero_()  # block 1 is all zeros
    outliers = randn(5, 100)
    outliers[2, 17] = 3.5  # one large value: its block's other codes collapse toward 0
    cases = [
        ("1x7", randn(1, 7), 64, True),
        ("3x64", randn(3, 64), 64, True),
        ("5x100_partial", outliers, 64, True),
        ("5x100_plain", outliers, 64, False),
        ("64x96", randn(64, 96), 64, True),
        ("16x96_bs128", randn(16, 96, 1.0), 128, True),
        ("7x33_bs32", randn(7, 33), 32, False),
        ("zero_block", zero_block, 64, True),
        ("ties", tie_tensor(), 64, False),
        ("ties_dq", tie_tensor(), 64, True),
        # 8250 elements = 257 full 32-blocks + a partial one: two nested blocks, the second partial.
        ("33x250_nested2", randn(33, 250), 32, True),
    ]
    out = {"nf4_code_bits": f32_bits(NF4), "dynamic_map_bits": f32_bits(dmap), "cases": []}
    for name, x, bs, dq in cases:
        case = {"name": name, "rows": x.shape[0], "cols": x.shape[1], "blocksize": bs,
                "double_quant": dq, "x_bits": f32_bits(x)}
        case.update(quantize(x, bs, dq, dmap))
        out["cases"].append(case)
        print(f"{name}: {x.shape[0]}x{x.shape[1]} bs={bs} dq={dq}"
              + (f" offset==torch.mean: {case['offset_equals_torch_mean']}" if dq else ""))
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT_PATH, os.path.getsize(OUT_PATH), "bytes")


if __name__ == "__main__":
    main()
