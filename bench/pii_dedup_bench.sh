#!/usr/bin/env bash
# Data pipeline stages 4-5 throughput: PII detection (+ redact + normalize + exact-dedup hash) on
# generated mixed Korean/English text, and MinHash near-dup clustering of N records of ~500 characters,
# each beside a named reference run in the same invocation (Python `re` detector; numpy MinHash with
# datasketch's arithmetic on the first 20k records). Peak RSS from /usr/bin/time -v.
#   bench/pii_dedup_bench.sh [BUILD_DIR] [PII_MB] [MINHASH_RECORDS]
# Defaults: build, 64 MB, 1000000. Threads: OMP_NUM_THREADS (default 2). On a shared machine compare the
# "MB per CPU-second" figures (x cores = unloaded throughput); wall clock includes other people's jobs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
mb=${2:-64}
n=${3:-1000000}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
bin=$build/bench/pii_dedup_bench
[ -x "$bin" ] || { echo "missing $bin (configure with -DLATHE_BENCH=ON, ninja pii_dedup_bench)"; exit 1; }
tmp=$(mktemp -d /tmp/lathe-piibench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "== PII detection + exact dedup, $mb MB, OMP_NUM_THREADS=$OMP_NUM_THREADS"
"$bin" pii "$mb" "$tmp/corpus.txt"
echo "-- reference: Python re (1 thread)"
/usr/bin/python3 "$root/bench/pii_ref_re.py" "$tmp/corpus.txt"

echo "== MinHash near-dup, $n records of ~500 characters"
/usr/bin/time -v "$bin" minhash "$n" 500 "$tmp/records.txt" 20000 2> "$tmp/time.txt"
grep -E "Maximum resident|Elapsed" "$tmp/time.txt" | sed 's/^\s*/  \/usr\/bin\/time: /'
echo "-- same generator, first 20000 records: lathe vs reference (numpy MinHash, datasketch arithmetic, 1 thread)"
OMP_NUM_THREADS=1 "$bin" minhash 20000 500 | grep -E "minhash"
/usr/bin/python3 "$root/bench/minhash_ref_numpy.py" "$tmp/records.txt"
