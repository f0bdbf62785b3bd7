#!/usr/bin/env bash
# A GPU check that fits ten minutes: SimCLR pretraining on the training images (150 s, no
# labels; --pretrain-seconds 0 skips it), then CE vs SANM(CE) from it on full CIFAR-10, PreAct ResNet-18,
# mixed_bfloat16, 50% symmetric noise, as many epochs as fit BUDGET seconds (both models
# together), learning rate /10 at half of them. Writes OUT/results.md (python -m benchmarks
# accuracy's tables) and each model's summary.json, history.json and log.csv.
#
#   bash benchmarks/gpu_check.sh DATA_DIR OUT [BUDGET_SECONDS] [extra gpu_check options]
#
# On a machine without Keras, wheels in .whl/ (keras and what it needs) are installed first
# into /tmp/site. The backend is JAX unless KERAS_BACKEND says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${1:?usage: gpu_check.sh DATA_DIR OUT [BUDGET_SECONDS]}
out=${2:?usage: gpu_check.sh DATA_DIR OUT [BUDGET_SECONDS]}
budget=${3:-480}
shift $(( $# < 3 ? $# : 3 ))
python=${PYTHON:-python3}
if ! "$python" -c "import keras" 2>/dev/null; then
  ls .whl/*.whl >/dev/null 2>&1 || { echo "Keras is not installed and .whl/ holds no wheels." >&2; exit 1; }
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$python" -m benchmarks.harness.gpu_check --data-dir "$data_dir" --out "$out" \
  --budget-seconds "$budget" "$@"
