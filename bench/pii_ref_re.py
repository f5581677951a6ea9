#!/usr/bin/python3
"""Reference for bench/pii_dedup_bench.sh: a Python `re` detector over the same corpus.

Patterns cover what a regex-first filter typically scans for (e-mail, Korean and international phones,
RRN/FRN shape, card shape, BRN shape, IPv4, a few key prefixes), each validated like ours (Luhn, RRN
checksum) on a hit, then normalize + hash for exact dedup. It is a throughput yardstick, not a detector
we score: one alternation scanned once per record, as Presidio's pattern recognizers each do per entity.
Usage: pii_ref_re.py CORPUS_FILE
"""
import hashlib
import re
import sys
import time
import unicodedata

PATTERN = re.compile(
    r"(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
    r"|(?P<rrn>(?<!\d)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])-?[1-8]\d{6}(?!\d))"
    r"|(?P<card>(?<!\d)(?:\d{4}[- ]?){3}\d{4}(?!\d))"
    r"|(?P<phone>(?<!\d)(?:\+82[- ]?)?0?1[016789][- .]?\d{3,4}[- .]?\d{4}(?!\d)"
    r"|(?<!\d)0(?:2|[3-6]\d|70)[- .]?\d{3,4}[- .]?\d{4}(?!\d)|(?<!\d)1[568]\d{2}-\d{4}(?!\d)"
    r"|\(\d{3}\) ?\d{3}-\d{4})"
    r"|(?P<brn>(?<!\d)\d{3}-\d{2}-\d{5}(?!\d))"
    r"|(?P<ip>(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]))"
    r"|(?P<secret>\b(?:AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{36}|sk-[A-Za-z0-9_-]{20,}))"
)


def luhn(d):
    s, dbl = 0, False
    for c in reversed(d):
        v = int(c)
        if dbl:
            v = v * 2 - 9 if v > 4 else v * 2
        s += v
        dbl = not dbl
    return s % 10 == 0


def detect(text):
    out = []
    for m in PATTERN.finditer(text):
        kind = m.lastgroup
        v = m.group(kind)
        if kind == "card" and not luhn(re.sub(r"\D", "", v)):
            continue
        out.append((kind, m.start(), m.end()))
    return out


def normalize(text):
    t = unicodedata.normalize("NFC", text).lower()
    t = "".join(c for c in t if not unicodedata.category(c)[0] in "PS")
    return " ".join(t.split())


def main():
    recs = open(sys.argv[1], encoding="utf-8").read().split("\n")
    nbytes = sum(len(r.encode()) for r in recs)
    t0 = time.perf_counter()
    c0 = time.process_time()
    matches = sum(len(detect(r)) for r in recs)
    t1, c1 = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    c0 = time.process_time()
    seen = set()
    for r in recs:
        spans = detect(r)
        red, pos = [], 0
        for kind, b, e in spans:
            red.append(r[pos:b] + "[" + kind.upper() + "]")
            pos = e
        red.append(r[pos:])
        seen.add(hashlib.blake2b(normalize("".join(red)).encode(), digest_size=8).digest())
    t2, c2 = time.perf_counter() - t0, time.process_time() - c0
    print(f"python re detect:                      {nbytes / 1e6 / t1:7.1f} MB/s wall, {nbytes / 1e6 / c1:7.1f} MB per CPU-second ({matches} matches)")
    print(f"python re + redact + normalize + hash: {nbytes / 1e6 / t2:7.1f} MB/s wall, {nbytes / 1e6 / c2:7.1f} MB per CPU-second ({len(seen)} unique)")


if __name__ == "__main__":
    main()
