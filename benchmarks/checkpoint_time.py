"""Cost of the per-epoch checkpoint: `TrainingBackup.save` and its restore.

Builds a wrapped model (default: SANM(DivideMix) on two PreAct ResNet-18,
the largest state of the package), compiles it with the reference optimizer
(slots built), and times writing a checkpoint and loading it into a fresh
model; prints the seconds and the checkpoint's size on disk.

    KERAS_BACKEND=torch python benchmarks/checkpoint_time.py
    KERAS_BACKEND=jax python benchmarks/checkpoint_time.py --method ce --backbone small_cnn
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def build(method: str, backbone: str, samples: int):
    import keras_sanm

    options = {"num_samples": samples} if method == "elr_plus" else {}
    base = keras_sanm.backbones.get(backbone, 10, (32, 32, 3))
    model = keras_sanm.wrap(base, method=method, seed=0, **options)
    model.compile()
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="dividemix")
    parser.add_argument("--backbone", default="preact_resnet18")
    parser.add_argument("--samples", type=int, default=50000, help="ELR+ target rows")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import keras

    from keras_sanm.training.backup import TrainingBackup

    model = build(args.method, args.backbone, args.samples)
    with tempfile.TemporaryDirectory() as folder:
        backup = TrainingBackup(folder)
        backup.set_model(model)
        saves = []
        for epoch in range(args.repeats):
            start = time.perf_counter()
            path = backup.save(epoch + 1)
            saves.append(time.perf_counter() - start)
        size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
        fresh = build(args.method, args.backbone, args.samples)
        start = time.perf_counter()
        fresh.load_weights(os.path.join(path, "model.weights.h5"))
        load = time.perf_counter() - start
    result = {
        "backend": keras.backend.backend(), "method": args.method, "backbone": args.backbone,
        "variables": len(model.variables) + len(model.optimizer.variables),
        "save_seconds": statistics.median(saves), "load_seconds": load,
        "megabytes": size / 2**20,
    }
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
