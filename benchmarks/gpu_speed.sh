#!/usr/bin/env bash
# Speed on a GPU in about five minutes: where the SANM(DivideMix) views come from (host
# Pillow pipeline against the device path) and the median training step of CE, SANM(CE),
# DivideMix and SANM(DivideMix) on each backend (python -m benchmarks speed), PreAct ResNet-18,
# batch 64 + 64. Each part has its own time limit, so a slow backend cannot eat the rest.
# Writes OUT/views.md, OUT/speed.md and OUT/speed.json.
#
#   bash benchmarks/gpu_speed.sh OUT [BACKENDS] [STEPS] [BATCH]
#
# Time limits per part: VIEWS_LIMIT (90 s), SPEED_LIMIT (70 s per backend).
# Tested at tiny size on a CPU: SPEED_LIMIT=600 bash benchmarks/gpu_speed.sh /tmp/speed torch 1 4
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_speed.sh OUT [BACKENDS] [STEPS] [BATCH]}
backends=${2:-jax,torch,tensorflow}
steps=${3:-5}
batch=${4:-64}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout "${VIEWS_LIMIT:-90}" "$python" benchmarks/view_pipeline.py --backends "$backends" --rounds 5 \
  --batch-size "$batch" | tee "$out/views.md" || echo "views: stopped at the time limit" >&2
for backend in ${backends//,/ }; do
  timeout "${SPEED_LIMIT:-70}" "$python" -m benchmarks speed --backends "$backend" --steps "$steps" \
    --batch-size "$batch" --methods ce,dividemix --output "$out/speed_$backend.json" \
    | tee -a "$out/speed.md" || echo "speed on $backend: stopped at the time limit" >&2
done
