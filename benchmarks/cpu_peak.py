"""This CPU's float32 throughput, and the fastest a given amount of work could run.

Times a large float32 matrix product (the best case for the CPU's vector
units: oneDNN/MKL run it near peak) with PyTorch on the given number of
threads, and prints the lower bound on the time of a training step of a known
size: `GFLOP / measured GFLOP/s`. A convolutional network's step runs below
this rate (im2col, memory traffic, batch norm), so no implementation on this
machine can beat the bound.

    python benchmarks/cpu_peak.py --threads 2 --work 1279,4070
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def matmul_gflops(size: int = 4096, repeats: int = 5, threads: int = 2) -> float:
    """Median float32 GFLOP/s of `size x size` matrix products."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--work", default="1279,4070",
                        help="GFLOP per step to bound (DivideMix, SANM(DivideMix) step)")
    args = parser.parse_args(argv)
    rate = matmul_gflops(args.size, threads=args.threads)
    print(f"{os.cpu_count()} cores, {args.threads} threads: float32 matmul {rate:.1f} GFLOP/s")
    for gflop in (float(w) for w in args.work.split(",")):
        print(f"{gflop:,.0f} GFLOP: at least {gflop / rate:.2f} s at that rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
