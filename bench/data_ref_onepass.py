#!/usr/bin/python3
"""Reference one-pass baseline for bench/data_bench.sh: json.loads + NFC + whitespace collapse + phone/e-mail
regex redaction + blake2b exact-dedup hash, single thread.  usage: data_ref_onepass.py CORPUS"""
import hashlib, json, os, re, sys, time, unicodedata

path = sys.argv[1]
phone = re.compile(r"\b01[016789]-?\d{3,4}-?\d{4}\b")
email = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
ws = re.compile(r"[ \t]+")
t = time.perf_counter()
seen, kept = set(), 0
with open(path, encoding="utf-8") as f:
    for line in f:
        rec = json.loads(line)
        parts = [rec.get("text", ""), rec.get("instruction", ""), rec.get("output", "")]
        parts += [m["content"] for m in rec.get("messages", [])]
        text = "\n".join(p for p in parts if p)
        text = ws.sub(" ", unicodedata.normalize("NFC", text)).strip()
        text = email.sub("[EMAIL]", phone.sub("[PHONE]", text))
        h = hashlib.blake2b(text.lower().encode(), digest_size=8).digest()
        if h not in seen:
            seen.add(h)
            kept += 1
dt = time.perf_counter() - t
mb = os.path.getsize(path) / 1e6
print(f"reference (python json+NFC+re+hash, 1 thread): {mb:.1f} MB in {dt:.2f} s = {mb / dt:.1f} MB/s, kept {kept}")
