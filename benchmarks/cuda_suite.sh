#!/usr/bin/env bash
# All CUDA results in one call, for a session that has a GPU machine (the device tool's `run`):
#
#   here, once:  echo /.whl/ >> .git/info/exclude
#                python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#                    --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#                    -d .whl kornia==0.9.0 kornia_rs==0.2.0
#   then:        run(command="bash benchmarks/cuda_suite.sh", carry=[".whl"], timeout_s=600)
#
# (kornia is the one dependency the GPU image lacks; torch, einops, timm, numpy, yaml are there.)
# Writes under $OUT (default: ./cuda_results): cuda_float32.json, cuda_bfloat16.json, cuda_float16.json
# (every block and recipe, ref vs fast, fwd and fwd+bwd, TFLOP/s, % of the copy rate and of the bf16
# rate, peak memory), cuda_float32_batch8.json (the bandwidth-bound blocks at 8x the batch, to show what
# launch overhead costs at the papers' per-GPU batch), cuda.md (the summaries and targets), suite.log
# and pytest.log (tests/bench on CUDA). Each step has its own time limit so one slow step cannot take
# the others' results with it; estimated 6-8 minutes in all on an H100 (not run yet).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-cuda_results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ls .whl/*.whl > /dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
    $PY -c "import torch, kornia, blocks, assemble, benchmarks; print(torch.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/suite.log"

BENCH=($PY -m benchmarks --device cuda --rounds 3 --min-run-time 0.05)
BANDWIDTH_BOUND=(--block blur_up --block blur --block blur_down --block bias_act --block pixel_norm --block adain
                 --block conditional_batch_norm --block minibatch_stddev)
for dtype in float32 bfloat16 float16; do
    echo "== $dtype" | tee -a "$OUT/suite.log"
    timeout 170 "${BENCH[@]}" --dtype $dtype --json "$OUT/cuda_$dtype.json" --markdown "$OUT/cuda_$dtype.md" \
        >> "$OUT/suite.log" 2>&1 || echo "cuda $dtype: exit $?" | tee -a "$OUT/suite.log"
done
echo "== float32, batch x8, bandwidth-bound blocks" | tee -a "$OUT/suite.log"
timeout 60 "${BENCH[@]}" --dtype float32 --batch-mult 8 "${BANDWIDTH_BOUND[@]}" --pass fwd \
    --json "$OUT/cuda_float32_batch8.json" --markdown "$OUT/cuda_float32_batch8.md" >> "$OUT/suite.log" 2>&1 \
    || echo "batch x8: exit $?" | tee -a "$OUT/suite.log"
cat "$OUT"/cuda_*.md > "$OUT/cuda.md" 2> /dev/null && rm -f "$OUT"/cuda_*.md
timeout 90 $PY -m pytest -q -p no:cacheprovider tests/bench/ > "$OUT/pytest.log" 2>&1 || echo "pytest: exit $?" >> "$OUT/pytest.log"
tail -3 "$OUT/pytest.log"
grep -h "target" "$OUT/suite.log" | sort | uniq -c | sort -rn | head -40 || true
ls -la "$OUT"
