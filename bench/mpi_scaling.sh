#!/usr/bin/env bash
# Data-parallel training on one machine, and what it projects to on several: tokens/s of `lathe train`
# as 1 rank x THREADS threads against `mpirun -np RANKS` x THREADS/RANKS threads each, at the same
# global batch (the one-rank run accumulates RANKS times as many micro-batches), for LoRA and full
# fine-tuning of a random SmolLM2-135M-shaped model; the gradient bytes and the waiting time the
# trainer reports; the allreduce bandwidth through lathe's Communicator (allreduce_bench); and the
# projected step time on N nodes from the measured compute time and the ring allreduce cost
# 2(N-1)/N x bytes / bandwidth (docs/distributed.md has the model and the figures of one run).
# Each configuration runs REPEAT times, alternating, and the fastest run counts: on a shared machine
# a burst of someone else's load then slows one run, not one side of the comparison.
# Usage: bench/mpi_scaling.sh [BUILD_DIR]   (env: SEQ=256 STEPS=3 RANKS=2 THREADS=2 METHODS="lora full" REPEAT=2
#        NODE_CORES=16 NODES="1 2 4 8" MPI_ARGS="--mca btl_vader_single_copy_mechanism none" in containers
#        without ptrace rights)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
SEQ=${SEQ:-256}; STEPS=${STEPS:-3}; RANKS=${RANKS:-2}; THREADS=${THREADS:-2}; METHODS=${METHODS:-lora full}
NODE_CORES=${NODE_CORES:-16}; NODES=${NODES:-1 2 4 8}; REPEAT=${REPEAT:-2}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
MPIRUN=(mpirun --bind-to none ${MPI_ARGS:-} -np "$RANKS")
[ "$(id -u)" = 0 ] && MPIRUN=(mpirun --allow-run-as-root --bind-to none ${MPI_ARGS:-} -np "$RANKS")
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
unset OMP_NUM_THREADS  # every run below says its threads

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: SmolLM2-135M shape (random weights), seq $SEQ, $STEPS timed steps after one warm-up step, best of $REPEAT runs"
"$B/lathe" init-model --arch llama --hidden-size 576 --intermediate-size 1536 --num-hidden-layers 30 \
  --num-attention-heads 9 --num-key-value-heads 3 --vocab-size 49152 --tie-word-embeddings --seed 1 \
  --output "$W/m" >/dev/null
# One record per micro-batch of every step: RANKS micro-batches a step (batch 1 each).
/usr/bin/python3 - "$W/data.jsonl" $((RANKS * (STEPS + 1))) "$SEQ" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        f.write(json.dumps({"input_ids": [random.randrange(49152) for _ in range(int(sys.argv[3]))]}) + "\n")
PY

train_args() {  # METHOD OUT GA THREADS
  local m=(--method "$1")
  [ "$1" = lora ] && m+=(--lora-r 16 --lora-alpha 32 --lora-target-modules all-linear)
  echo --model "$W/m" --data "$W/data.jsonl" --output "$2" "${m[@]}" --learning-rate 1e-4 --no-shuffle \
    --max-steps $((STEPS + 1)) --per-device-train-batch-size 1 --gradient-accumulation-steps "$3" --save-steps 0 \
    --threads "$4"
}

for r in $(seq 1 "$REPEAT"); do
  for M in $METHODS; do
    # shellcheck disable=SC2046
    "$B/lathe" train $(train_args "$M" "$W/one-$M-$r" "$RANKS" "$THREADS") 2>"$W/one-$M-$r.err"
    # shellcheck disable=SC2046
    "${MPIRUN[@]}" "$B/lathe" train $(train_args "$M" "$W/mpi-$M-$r" 1 $((THREADS / RANKS))) 2>"$W/mpi-$M-$r.err"
  done
done
"${MPIRUN[@]}" "$B/bench/allreduce_bench" 1 8 64 256 >"$W/allreduce.jsonl"

/usr/bin/python3 - "$W" "$METHODS" "$RANKS" "$THREADS" "$NODE_CORES" "$NODES" "$REPEAT" <<'PY'
import json, re, sys
W, methods, R, T, cores, nodes = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), [int(x) for x in sys.argv[6].split()]
repeat = int(sys.argv[7])

def run(name):  # the fastest of the repeats: tokens/s, s a step, losses, the run's name
    best = None
    for r in range(1, repeat + 1):
        rows = [json.loads(l) for l in open(f"{W}/{name}-{r}/metrics.jsonl") if '"loss"' in l][1:]  # step 1 warms up
        secs = sum(x["tokens"] / x["tokens_per_s"] for x in rows)
        got = (sum(x["tokens"] for x in rows) / secs, secs / len(rows), [x["loss"] for x in rows], f"{name}-{r}")
        if best is None or got[0] > best[0]: best = got
    return best

ar = [json.loads(l) for l in open(f"{W}/allreduce.jsonl")]
print("\nallreduce through lathe's Communicator (Open MPI, shared memory, %d ranks):" % R)
for a in ar:
    print(f"  {a['mib']:6.0f} MiB  {a['seconds']*1e3:8.2f} ms  bus bandwidth {a['bus_gb_per_s']:6.2f} GB/s")
bw_local = ar[-1]["bus_gb_per_s"]

print(f"\none machine, same global batch ({R} micro-batches of 1 x seq a step):")
print(f"  {'method':6s} {'1 rank x %d thr' % T:>16s} {'%d ranks x %d thr' % (R, T // R):>17s}  ratio  grad MiB/step  wait s/step  loss equal")
proj = {}
for m in methods:
    one_tps, one_step, one_loss, _ = run(f"one-{m}")
    mpi_tps, mpi_step, mpi_loss, mpi_name = run(f"mpi-{m}")
    err = open(f"{W}/{mpi_name}.err").read()
    g = re.search(r"data parallel: \d+ ranks, ([\d.]+) MiB of gradients a step in (\d+) buckets, ([\d.]+) s waiting", err)
    mib, buckets, wait = float(g[1]), int(g[2]), float(g[3])
    steps = len(mpi_loss) + 1  # the wait is summed over every step, the warm-up included
    same = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(mpi_loss, one_loss))
    print(f"  {m:6s} {one_tps:11.1f} tok/s {mpi_tps:12.1f} tok/s  {mpi_tps / one_tps:5.2f}  {mib:8.2f} ({buckets} bkt)  {wait / steps:8.3f}     max rel diff {same:.1e}")
    # Compute of one micro-batch in core-seconds, from the one-rank run (its step holds R micro-batches
    # on T threads; the exposed allreduce of the MPI run is what the wait measures).
    proj[m] = (one_step * T / R, mib * 1048576)

print(f"\nprojection: N nodes x {cores} cores, one rank per node with {cores} threads, one micro-batch of seq a rank")
print("per step (global batch grows with N), no overlap of the allreduce with the backward assumed;")
print("compute per micro-batch scaled from this machine's per-core rate; ring allreduce 2(N-1)/N x bytes / bandwidth")
links = [("shared memory here", bw_local * 1e9), ("10 GbE (1.1 GB/s)", 1.1e9), ("100 Gb (11 GB/s)", 11e9)]
for m, (core_s, nbytes) in proj.items():
    tc = core_s / cores
    print(f"  {m}: compute {tc:.3f} s a step on {cores} cores, {nbytes / 1048576:.1f} MiB of gradients")
    for lname, bw in links[1:]:
        cells = []
        for n in nodes:
            ta = 2 * (n - 1) / n * nbytes / bw
            eff = tc / (tc + ta)
            cells.append(f"N={n}: {tc + ta:6.3f} s, {n * eff:4.1f}x ({100 * eff:3.0f}%)")
        print(f"    {lname:18s} " + "   ".join(cells))
PY
