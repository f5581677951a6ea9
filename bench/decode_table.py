"""Tables of bench/decode_bench.sh: lathe against llama.cpp on the same GGUF, per shape and thread count.

usage: decode_table.py RUNS_TXT MEMBW_TXT PROMPT NEW RUNS
RUNS_TXT lines: "shape threads type impl gguf_bytes JSON" (JSON: lathe generate --stats or
bench/llamacpp_decode.mjs); MEMBW_TXT lines: "membw threads JSON" (bench/membw).
"""
import json
import statistics
import sys

runs_path, membw_path, prompt, new, nruns = sys.argv[1:6]
bw = {}
for line in open(membw_path):
    _, t, js = line.split(" ", 2)
    bw[t] = json.loads(js)["gb_s"] * 1e9
rows = {}  # (shape, threads) -> type -> impl -> [json]
order = []
for line in open(runs_path):
    s, t, ty, impl, size, js = line.split(" ", 5)
    r = json.loads(js)
    r["gguf_bytes"] = int(size)
    if (s, t) not in rows:
        order.append((s, t))
    rows.setdefault((s, t), {}).setdefault(ty, {}).setdefault(impl, []).append(r)

NAMES = {"smollm2": "SmolLM2-135M shape", "qwen05": "Qwen2.5-0.5B shape"}
MiB = 2**20


def med(rs, key):
    return statistics.median(r[key] for r in rs)


def stab(rs, key):  # slowest run over the median: the issue wants no run below 0.8x
    return min(r[key] for r in rs) / med(rs, key)


for s, t in order:
    by_type = rows[(s, t)]
    # llama.cpp with lathe's KV precision (F32) first: that is the like-for-like comparison.
    llamas = sorted({i for d in by_type.values() for i in d if i != "lathe"}, key=lambda i: (i != "llama.cpp-kvf32", i))
    print(f"\n{NAMES.get(s, s)}, {t} thread{'s' if t != '1' else ''}, prompt {prompt}, {new} new tokens, "
          f"median of {nruns} runs; read bandwidth {bw[t] / 1e9:.1f} GB/s")
    for ll in llamas:
        kv = ll.removeprefix("llama.cpp-kv")
        print(f"llama.cpp KV cache {kv.upper()} (lathe's is F32)")
        print("| type | lathe decode tok/s | llama.cpp decode tok/s | lathe / llama.cpp | (llama.cpp own timer) | "
              "min/med lathe, llama.cpp | lathe prefill tok/s | llama.cpp prefill tok/s | lathe / llama.cpp |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for ty, d in by_type.items():
            if "lathe" not in d or ll not in d:
                continue
            a, b = d["lathe"], d[ll]
            da, db = med(a, "decode_tok_s"), med(b, "decode_tok_s")
            own = statistics.median(r["llama_decode_tok_s"] for r in b if r.get("llama_decode_tok_s"))
            pa, pb = med(a, "prefill_tok_s"), med(b, "prefill_tok_s")
            print(f"| {ty} | {da:.1f} | {db:.1f} | **{da / db:.2f}×** | {own:.1f} ({da / own:.2f}×) | "
                  f"{stab(a, 'decode_tok_s'):.2f}, {stab(b, 'decode_tok_s'):.2f} | {pa:.0f} | {pb:.0f} | **{pa / pb:.2f}×** |")
    ll = llamas[0] if llamas else None
    print("\nMemory and roofline (roofline = read bandwidth / bytes read per decoded token; lathe reads the "
          "weights it holds, llama.cpp the GGUF's tensors, about the file size; both shapes are tied, so the "
          "embedding table is the lm_head and is read once per token)")
    print("| type | GGUF MiB | lathe weights held MiB | lathe peak RSS MiB | llama.cpp peak RSS MiB "
          "(node before the model) | lathe / llama.cpp RSS | lathe roofline tok/s | lathe % of it | "
          "llama.cpp roofline tok/s | llama.cpp % of it |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for ty, d in by_type.items():
        if "lathe" not in d:
            continue
        a = d["lathe"]
        held = a[0]["weight_bytes"]
        ra = max(r["peak_rss_bytes"] for r in a)
        roof_a = bw[t] / held
        line = f"| {ty} | {a[0]['gguf_bytes'] / MiB:.1f} | {held / MiB:.1f} | {ra / MiB:.1f} | "
        if ll and ll in d:
            b = d[ll]
            rb = max(r["peak_rss_bytes"] for r in b)
            base = statistics.median(r["rss_before_model_bytes"] for r in b)
            roof_b = bw[t] / b[0]["gguf_bytes"]
            line += (f"{rb / MiB:.1f} ({base / MiB:.0f}) | {ra / rb:.2f}× | {roof_a:.0f} | "
                     f"{100 * med(a, 'decode_tok_s') / roof_a:.0f}% | {roof_b:.0f} | {100 * med(b, 'decode_tok_s') / roof_b:.0f}% |")
        else:
            line += f"- | - | {roof_a:.0f} | {100 * med(a, 'decode_tok_s') / roof_a:.0f}% | - | - |"
        print(line)
