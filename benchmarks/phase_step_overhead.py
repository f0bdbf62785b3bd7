"""Per-phase step functions against Keras' own compiled step, interleaved in one process.

The alternating methods (DivideMix, ELR+) run each step through
`keras_sanm.backend.compile_phase_step` (`train_phase_on_batch`). Keras'
`train_on_batch` runs the same step, `default_phase`, through its own
`make_train_function`. This script times both on one batch of random uint8
images, alternating the two sides every step (after two untimed calls of
each), and prints the median step times and their ratio for the current
Keras backend.

    KERAS_BACKEND=tensorflow python benchmarks/phase_step_overhead.py
    KERAS_BACKEND=jax python benchmarks/phase_step_overhead.py --method elr_plus --sanm
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

import keras_sanm
from keras_sanm.data import IndexedDataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="elr_plus", choices=("elr_plus",),
                        help="an alternating method whose default phase trains network 1")
    parser.add_argument("--sanm", action="store_true", help="with SANM (default: plain)")
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per side")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    batch = args.batch_size
    model = keras_sanm.wrap(keras_sanm.backbones.get(args.backbone, 10, (32, 32, 3)),
                            method=args.method, sanm=args.sanm, seed=0, num_samples=4 * batch)
    model.compile()
    model.build()
    images = rng.integers(0, 256, (4 * batch, 32, 32, 3), dtype=np.uint8)
    data = model.training_data(
        IndexedDataset(images, rng.integers(0, 10, 4 * batch), batch, 10), None, verbose=0)
    arrays = model.make_batch(data, np.arange(batch))
    sides = {
        "train_on_batch": lambda: model.train_on_batch(arrays, return_dict=True),
        "train_phase_on_batch": lambda: model.train_phase_on_batch(model.default_phase, arrays),
    }
    for step in sides.values():
        step()
        step()
    times = {name: [] for name in sides}
    order = list(sides)
    for i in range(args.steps):
        for name in order if i % 2 else order[::-1]:
            start = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - start)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    print(f"{keras.backend.backend()}, {args.method}{' + SANM' if args.sanm else ''}, "
          f"{args.backbone}, batch {batch}, median of {args.steps} interleaved steps")
    for name in sides:
        print(f"  {name}: {medians[name]:.4f} s")
    print(f"  ratio train_phase_on_batch / train_on_batch: "
          f"{medians['train_phase_on_batch'] / medians['train_on_batch']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
