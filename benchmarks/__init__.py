"""Measurements of keras-sanm: the harness (`benchmarks.harness`), standalone
timing scripts, and the committed tables under `benchmarks/results/`.

Run from the repository root: `python -m benchmarks --help`.
"""
