"""`keras-sanm demo`: CE against SANM(CE) on an embedded or small dataset, with a verdict."""

from __future__ import annotations

import time


def _digits_problem(noise_rate: float, seed: int):
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from keras_sanm.data import inject_noise

    digits = load_digits()
    # 16x16x1 floats in [0, 1]; the model standardises them itself.
    images = (np.kron(digits.images, np.ones((2, 2)))[..., None] / 16.0).astype("float32")
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, digits.target, test_size=497, random_state=seed, stratify=digits.target
    )
    noisy = inject_noise(y_tr, 10, "sym", noise_rate, seed=seed)
    return x_tr, noisy, y_tr, x_te, y_te, 10


def _cifar_problem(data_dir: str, noise_rate: float, seed: int):
    from keras_sanm import datasets
    from keras_sanm.data import inject_noise

    data = datasets.load("cifar10", data_dir, train_size=5000, test_size=1000, seed=seed)
    noisy = inject_noise(data.y_train, 10, "sym", noise_rate, seed=seed)
    return data.x_train, noisy, data.y_train, data.x_test, data.y_test, 10  # uint8


def demo_command(args) -> dict:
    import keras
    import numpy as np

    import keras_sanm

    if args.data_dir:
        problem, epochs = _cifar_problem(args.data_dir, args.noise_rate, args.seed), 15
    else:
        problem, epochs = _digits_problem(args.noise_rate, args.seed), 40
    epochs = args.epochs or epochs
    x_tr, noisy, clean, x_te, y_te, classes = problem
    print(f"{len(x_tr)} training images {x_tr.shape[1:]}, {np.mean(noisy != clean):.1%} "
          f"wrong labels ({args.noise_rate:.0%} symmetric noise), {len(x_te)} clean test "
          f"images, backend {keras.backend.backend()}, {epochs} epochs")
    results = {}
    every = max(1, epochs // 8)
    for label, sanm in (("CE", False), ("SANM(CE)", True)):
        keras.utils.set_random_seed(args.seed)
        base = keras_sanm.backbones.SmallCNN(classes, x_tr.shape[1:])
        model = keras_sanm.wrap(base, sanm=sanm, seed=args.seed)
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), weight_decay=5e-4)
        start = time.time()
        progress = []
        if args.verbose == 0:  # a line every few epochs instead of Keras' progress bar
            progress.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs, label=label: (
                print(f"  {label} epoch {epoch + 1}/{epochs}: test accuracy "
                      f"{logs['val_accuracy']:.3f} ({time.time() - start:.0f} s)", flush=True)
                if (epoch + 1) % every == 0 or epoch + 1 == epochs else None)))
        history = model.fit(x_tr, noisy, batch_size=64, epochs=epochs, verbose=args.verbose,
                            validation_data=(x_te, y_te), callbacks=progress)
        acc = history.history["val_accuracy"]
        results[label] = {"best": max(acc), "last": acc[-1], "seconds": time.time() - start}
        print(f"{label:9s} test accuracy: last {acc[-1]:.3f}, best {max(acc):.3f} "
              f"({results[label]['seconds']:.0f} s)", flush=True)
    print(demo_verdict(results))
    return results


def demo_verdict(results: dict) -> str:
    """What the demo's two runs say, and what `best` and `last` mean."""
    gains = {key: 100 * (results["SANM(CE)"][key] - results["CE"][key]) for key in ("last", "best")}
    winner = ("SANM(CE)" if gains["last"] > 0 else "CE" if gains["last"] < 0 else "neither model")
    return (f"last = test accuracy after the final epoch (what you keep without clean data to "
            f"pick an epoch); best = the highest over the epochs.\n"
            f"SANM(CE) - CE: {gains['last']:+.1f} points last, {gains['best']:+.1f} best: "
            f"{winner} ended higher in this one run (one seed; docs/results.md has grids "
            f"over seeds).")
