#!/usr/bin/env bash
# Sets up .venv (CPU wheels) and runs the test suite once per Keras backend.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# The pinned CPU wheel first, so nothing pulls CUDA builds of torch.
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e ".[jax,torch,tensorflow,tfds,dev]"
# keras-hub's image models for tests/test_keras_hub_backbones.py, without its text
# dependencies: tensorflow-text would pull a second, full TensorFlow beside
# tensorflow-cpu. (Users install the `hub` extra, which takes keras-hub whole.)
.venv/bin/pip install -q --no-deps "keras-hub==0.32.0"
.venv/bin/pip install -q regex rich absl-py packaging kagglehub "kagglesdk==0.1.28" tokenizers sentencepiece
# (pip then reports tensorflow-text as missing: left out on purpose, see above.)
status=0
# The linter first (its rules are in pyproject.toml); a finding fails the run.
echo "=== ruff"
.venv/bin/ruff check . || status=1
for backend in jax torch tensorflow; do
  echo "=== KERAS_BACKEND=$backend"
  # pytest exits 5 when it collected nothing: any non-zero status fails the run.
  # Two workers (pytest-xdist): JAX and TensorFlow compile single-threaded;
  # work stealing keeps both busy when the long tests come last.
  KERAS_BACKEND=$backend .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal "$@" || status=1
done
exit $status
