#!/usr/bin/python3
"""Reference for bench/pii_dedup_bench.sh: MinHash + LSH the way datasketch/text-dedup compute it, in
numpy: word 5-gram shingles, 32-bit SHA1-prefix hashes, 112 permutations (a*x+b) mod (2^61-1) vectorized
per document, 14 bands x 8 rows into dicts, candidate pairs verified at Jaccard estimate >= 0.7.
(datasketch itself is not packaged for Debian; this follows its MinHash.update_batch arithmetic.)
Usage: minhash_ref_numpy.py RECORDS_FILE
"""
import hashlib
import re
import sys
import time
import unicodedata

import numpy as np

MERSENNE = np.uint64((1 << 61) - 1)
NUM_PERM, BANDS, ROWS, NGRAM, THRESHOLD = 112, 14, 8, 5, 0.7
rng = np.random.RandomState(1)
A = rng.randint(1, (1 << 61) - 1, size=NUM_PERM, dtype=np.uint64)
B = rng.randint(0, (1 << 61) - 1, size=NUM_PERM, dtype=np.uint64)


def normalize(text):
    t = unicodedata.normalize("NFC", text).lower()
    t = "".join(c for c in t if unicodedata.category(c)[0] not in "PS")
    return " ".join(t.split())


def signature(text):
    words = normalize(text).split(" ")
    grams = [" ".join(words[i:i + NGRAM]) for i in range(max(1, len(words) - NGRAM + 1))]
    hv = np.array([int.from_bytes(hashlib.sha1(g.encode()).digest()[:4], "little") for g in grams], dtype=np.uint64)
    phv = ((hv[:, None] * A[None, :] + B[None, :]) % MERSENNE) & np.uint64(0xFFFFFFFF)
    return phv.min(axis=0)


def main():
    recs = [r for r in open(sys.argv[1], encoding="utf-8").read().split("\n") if r]
    t0, c0 = time.perf_counter(), time.process_time()
    sigs = [signature(r) for r in recs]
    tables = [dict() for _ in range(BANDS)]
    parent = list(range(len(recs)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, s in enumerate(sigs):
        for b in range(BANDS):
            key = s[b * ROWS:(b + 1) * ROWS].tobytes()
            j = tables[b].setdefault(key, i)
            if j != i and np.mean(sigs[j] == s) >= THRESHOLD:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    dropped = sum(1 for i in range(len(recs)) if find(i) != i)
    t, c = time.perf_counter() - t0, time.process_time() - c0
    print(f"python/numpy minhash on {len(recs)} records: {t:.1f} s wall, {c:.1f} CPU-s, "
          f"{len(recs) / c:.0f} records per CPU-second, {dropped} dropped")


if __name__ == "__main__":
    main()
