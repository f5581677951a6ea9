#!/usr/bin/python3
"""Golden blocks for lathe's Q8_0 / Q4_0 weight quantizers (src/lathe/kernels/cpu/qblock.h).

The reference is ggml itself: quantize_row_q8_0_ref and quantize_row_q4_0_ref, the functions that
llama-quantize uses without an importance matrix, called through ctypes in the libggml-base.so that
the npm package @node-llama-cpp/linux-x64 ships (the same llama.cpp build issue #20 benchmarks against):

    mkdir -p /tmp/nlc && cd /tmp/nlc && npm pack @node-llama-cpp/linux-x64@3.21.1 && tar xzf *.tgz
    /usr/bin/python3 tools/golden/gen_qblock_goldens.py /tmp/nlc/package/bins/linux-x64/libggml-base.so

It writes tests/data/qblock/golden.json, which tests/kernels/qblock_unit.cpp replays byte for byte,
and tests/data/qblock/golden_kquant.json (quantize_row_q4_K_ref / quantize_row_q6_K_ref on super-blocks
of 256, plus ggml's dequantize_row_q4_K / _q6_K of its own blocks), replayed by
tests/kernels/qblock_kquant_unit.cpp.
Nothing of ggml is copied: the library is only called.

Inputs (f32, every value stored as its IEEE-754 bit pattern): blocks of N(0, 1) noise at several
scales (1e-6 .. 1e4, so the f16 scale goes subnormal and large), and blocks built to hit the rounding
rules: exact ties of x*id at k + 0.5 (Q8_0 rounds them away from zero, Q4_0 up), a block whose largest
magnitude is negative / positive / both with the same magnitude (the first wins), an all-zero block,
a block with one non-zero value, and values one ulp either side of a tie.

golden.json: {"library": str, "x_bits": [uint32 ...] (a multiple of 32), "q8_0": hex, "q4_0": hex}
golden_kquant.json: {"library": str, "x_bits": [uint32 ...] (a multiple of 256), "q4_k": hex, "q6_k": hex,
                     "q4_k_deq": hex, "q6_k_deq": hex (f32 little-endian)}
K-quant inputs: noise super-blocks at scales 1e-6 .. 1e4, sub-blocks of very different scales side by
side, all-positive / all-negative / constant / zero sub-blocks and super-blocks, one outlier, a
sub-block whose fit keeps a zero min, a zero super-block next to tiny values (Q6_K's "all zero" branch),
and values of the few-levels kind (small integers) whose grids hit exact ties.
"""
import ctypes
import json
import os
import random
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "qblock", "golden.json")


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def bits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def next_after(v, up):
    b = bits(v)
    if v == 0:
        return struct.unpack("<f", struct.pack("<I", 1 if up else 0x80000001))[0]
    b = b + 1 if (v > 0) == up else b - 1
    return struct.unpack("<f", struct.pack("<I", b))[0]


def blocks():
    rng = random.Random(20)
    out = []
    for scale in (1e-6, 1e-3, 0.02, 1.0, 30.0, 1e4):
        for _ in range(4):
            out.append([f32(rng.gauss(0, 1) * scale) for _ in range(32)])
    # Q8_0 ties: amax 127 gives d = 1, id = 1, so x*id = x and k + 0.5 is an exact tie.
    out.append([127.0] + [f32((k % 120) - 60 + 0.5) for k in range(31)])
    out.append([-127.0] + [f32(-((k % 50) + 0.5)) for k in range(31)])
    # Q4_0 ties: max magnitude -8 gives d = 1, id = 1; x + 8.5 truncates, so x = k + 0.5 rounds up.
    out.append([-8.0] + [f32(-7.5 + 0.5 * k) for k in range(31)])   # up to 7.5 (and 8 clips to 15)
    out.append([8.0] + [f32(7.5 - 0.5 * k) for k in range(31)])     # positive max: d = -1
    out.append([8.0, -8.0] + [f32(0.25 * k - 3) for k in range(30)])  # equal magnitudes: the first wins
    out.append([-8.0, 8.0] + [f32(0.25 * k - 3) for k in range(30)])
    out.append([0.0] * 32)
    out.append([0.0] * 31 + [f32(-3.5)])
    # One ulp either side of ties, both types.
    row = [-8.0]
    for k in range(31):
        t = -7.5 + k * 0.5
        row.append(next_after(f32(t), k % 2 == 0))
    out.append(row)
    row = [127.0]
    for k in range(31):
        t = -15.5 + k
        row.append(next_after(f32(t), k % 2 == 1))
    out.append(row)
    return out


def kquant_blocks():
    rng = random.Random(2012)
    out = []
    for scale in (1e-6, 1e-3, 0.02, 1.0, 30.0, 1e4):
        for _ in range(3):
            out.append([f32(rng.gauss(0, 1) * scale) for _ in range(256)])
    # Sub-blocks of 32 (and groups of 16) at scales 1e-4 .. 1e2 side by side: the 6-bit / int8 scales of
    # the small ones round to 0 or 1 against the super-block's largest.
    out.append([f32(rng.gauss(0, 1) * 10.0 ** ((i // 32) - 4)) for i in range(256)])
    out.append([f32(rng.gauss(0, 1) * 10.0 ** (2 - (i // 16) % 7)) for i in range(256)])
    out.append([f32(abs(rng.gauss(0, 1)) + 0.5) for _ in range(256)])      # all positive: min = 0
    out.append([f32(-abs(rng.gauss(0, 1)) - 0.5) for _ in range(256)])     # all negative
    out.append([f32(1.25)] * 128 + [f32(-0.75)] * 128)                      # constant sub-blocks
    out.append([0.0] * 256)
    out.append([0.0] * 64 + [f32(rng.gauss(0, 1)) for _ in range(192)])   # zero sub-blocks first
    row = [f32(rng.gauss(0, 0.1)) for _ in range(256)]
    row[77] = 40.0                                                          # one outlier
    out.append(row)
    out.append([f32(float(rng.randint(-4, 4))) for _ in range(256)])       # few levels: exact ties
    out.append([f32(float(rng.randint(0, 15)) * 0.5) for _ in range(256)])
    out.append([f32(1e-20 * rng.gauss(0, 1)) for _ in range(256)])         # below Q6_K's 1e-15 floor
    return out


def call_rows(lib, name, x, n, out_bytes):
    fn = getattr(lib, name)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    buf = (ctypes.c_uint8 * out_bytes)()
    fn(x, buf, n)
    return buf


def write_kquant(lib):
    xs = [v for b in kquant_blocks() for v in b]
    n = len(xs)
    x = (ctypes.c_float * n)(*xs)
    res = {"library": "libggml-base.so from @node-llama-cpp/linux-x64@3.21.1", "x_bits": [bits(v) for v in xs]}
    for name, bsize in (("q4_k", 144), ("q6_k", 210)):
        q = call_rows(lib, "quantize_row_%s_ref" % name.replace("_k", "_K"), x, n, n // 256 * bsize)
        res[name] = bytes(q).hex()
        deq = call_rows(lib, "dequantize_row_%s" % name.replace("_k", "_K"), q, n, n * 4)
        res[name + "_deq"] = bytes(deq).hex()
    out = os.path.join(os.path.dirname(OUT), "golden_kquant.json")
    with open(out, "w") as f:
        json.dump(res, f)
        f.write("\n")
    print(f"wrote {out}: {n // 256} super-blocks")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_qblock_goldens.py PATH/libggml-base.so")
    lib = ctypes.CDLL(sys.argv[1])
    xs = [v for b in blocks() for v in b]
    n = len(xs)
    assert n % 32 == 0
    x = (ctypes.c_float * n)(*xs)
    res = {}
    for name, fn, bsize in (("q8_0", lib.quantize_row_q8_0_ref, 34), ("q4_0", lib.quantize_row_q4_0_ref, 18)):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn.restype = None
        buf = (ctypes.c_uint8 * (n // 32 * bsize))()
        fn(x, buf, n)
        res[name] = bytes(buf).hex()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"library": "libggml-base.so from @node-llama-cpp/linux-x64@3.21.1",
                   "x_bits": [bits(v) for v in xs], "q8_0": res["q8_0"], "q4_0": res["q4_0"]}, f)
        f.write("\n")
    print(f"wrote {OUT}: {n // 32} blocks")
    write_kquant(lib)


if __name__ == "__main__":
    main()
