#!/usr/bin/env bash
# Regenerate the committed CPU results in benchmarks/results/ in one command (from anywhere):
#
#     benchmarks/run_cpu.sh            # about 30 minutes on 2 quiet cores
#
# 1. The full suite (blocks and recipes, fwd and fwd+bwd, every impl) with a caching allocator preloaded
#    (jemalloc, else tcmalloc; Debian: apt-get install libjemalloc2 libtcmalloc-minimal4): cpu.json, cpu.md.
# 2. The bandwidth-bound blocks again with glibc's malloc: cpu_glibc.json; then allocator.md compares them.
#
# On a shared machine every timing round first waits (up to WAIT_QUIET seconds, default 300) for other
# processes to leave the CPUs idle, and a round they disturbed is run again; the load average and the
# other processes' CPU share are recorded in the JSON. Set THREADS (default 2), WAIT_QUIET and PYTHON
# (default: python) to override; extra arguments go to every bench run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
THREADS=${THREADS:-2}
WAIT_QUIET=${WAIT_QUIET:-300}
OUT=benchmarks/results
mkdir -p "$OUT"

LIBDIR=/usr/lib/x86_64-linux-gnu
JEMALLOC=$LIBDIR/libjemalloc.so.2
TCMALLOC=$LIBDIR/libtcmalloc_minimal.so.4
if [[ -e $JEMALLOC ]]; then
    # Never return freed pages to the OS: with its defaults (and with the decay times of PyTorch's CPU
    # tuning guide) jemalloc here still faults every fresh large tensor in again, as glibc does.
    CACHING=(env LD_PRELOAD="$JEMALLOC"
             MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1")
elif [[ -e $TCMALLOC ]]; then
    CACHING=(env LD_PRELOAD="$TCMALLOC")
else
    echo "run_cpu.sh: neither $JEMALLOC nor $TCMALLOC exists; install libjemalloc2 (or libtcmalloc-minimal4)" >&2
    exit 1
fi

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
BENCH=("$PYTHON" -m benchmarks --device cpu --threads "$THREADS" --wait-quiet "$WAIT_QUIET" "$@")
BANDWIDTH_BOUND=(--block blur_up --block blur --block blur_down --block bias_act --block pixel_norm --block adain
                 --block conditional_batch_norm --block minibatch_stddev)

"${CACHING[@]}" "${BENCH[@]}" --json "$OUT/cpu.json" --markdown "$OUT/cpu.md" | tee "$OUT/cpu.txt"
"${BENCH[@]}" "${BANDWIDTH_BOUND[@]}" --json "$OUT/cpu_glibc.json" > /dev/null
{
    echo "# Allocator: glibc malloc vs a caching allocator (CPU, float32, $THREADS threads)"
    echo
    echo "Rows: the bandwidth-bound blocks run with glibc (cpu_glibc.json) and in the main run (cpu.json)."
    echo "speedup = glibc median / caching-allocator median."
    echo
    "$PYTHON" -m benchmarks --compare "$OUT/cpu_glibc.json" "$OUT/cpu.json"
} > "$OUT/allocator.md"
echo "wrote $OUT/cpu.json, cpu.md, cpu.txt, cpu_glibc.json, allocator.md"
