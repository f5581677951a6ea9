#!/usr/bin/python3
"""Golden check: a tokenizer written by `lathe tokenizer train` must encode like HF `tokenizers`.

Usage: check_bpe_with_hf.py TOKENIZER_DIR TEXT_FILE LATHE_BINARY
Encodes every non-empty line of TEXT_FILE (and the whole file) with HF `tokenizers` and with
`lathe tokenize --json`, and exits 1 on the first difference. Needs the `tokenizers` package.
"""
import json
import subprocess
import sys

try:
    from tokenizers import Tokenizer
except ImportError:
    print("SKIP: Python package 'tokenizers' is not installed")
    sys.exit(0)


def lathe_ids(binary, tok_dir, text):
    out = subprocess.run([binary, "tokenize", "--tokenizer", tok_dir, "--text", text, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["ids"]


def main():
    tok_dir, text_file, binary = sys.argv[1:4]
    hf = Tokenizer.from_file(tok_dir + "/tokenizer.json")
    with open(text_file, encoding="utf-8") as f:
        full = f.read()
    texts = [l for l in full.split("\n") if l.strip()][:200] + [full[:20000]]
    for i, t in enumerate(texts):
        a = hf.encode(t, add_special_tokens=False).ids
        b = lathe_ids(binary, tok_dir, t)
        if a != b:
            print(f"MISMATCH text {i}: {t[:80]!r}\n hf    {a[:40]}\n lathe {b[:40]}")
            sys.exit(1)
        if hf.decode(a, skip_special_tokens=False) != t:
            print(f"HF round trip failed on text {i}")
            sys.exit(1)
    print(f"OK: {len(texts)} texts encode identically")


if __name__ == "__main__":
    main()
