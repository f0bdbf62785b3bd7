"""Training from an image folder on disk: memory and input-pipeline speed.

Writes a synthetic folder of 32x32 JPEGs (10 classes: a coloured square on
noise; generated here, never committed), then trains each method for a fixed
number of steps twice, each run in its own process:

- `disk`: all images of the folder as a `keras_sanm.data.ImageFiles`
  (decoded batch by batch; nothing loaded whole);
- `memory`: the first `--memory-images` images decoded into one numpy array;
- `tf.data` (DivideMix only): the folder as Keras' own
  `image_dataset_from_directory` pipeline, which DivideMix reads once into
  an on-disk copy with sample identities (`keras_sanm.data.cache_dataset`;
  the time of that pass is reported as `copy s`).

For each run it reports the process's peak resident memory, the training
images/s, and the input pipeline's images/s: the images the data side
produced (crops, flips, DivideMix's views; evaluation passes) per second
spent producing them. The pipeline is not the bottleneck when its rate is
well above the training rate. Runs alternate disk and memory per method.

    python benchmarks/streaming.py                       # 100,000 images, 300 steps
    python benchmarks/streaming.py --images 2000 --steps 5 --memory-images 500  # smoke size
    python benchmarks/streaming.py --methods dividemix --sources memory,tf.data
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

# name -> (method, sanm, wrap options, sources)
METHODS = {
    "ce_sanm": ("ce", True, {}, ("disk", "memory")),
    "dividemix": ("dividemix", False, {"warmup_epochs": 0}, ("disk", "memory", "tf.data")),
}


def write_folder(folder: str, count: int, seed: int = 0) -> None:
    """`count` 32x32 JPEGs in ten class folders, listed in labels.csv (reused if complete)."""
    from PIL import Image

    labels_path = os.path.join(folder, "labels.csv")
    if os.path.exists(labels_path):
        with open(labels_path) as f:
            if sum(1 for _ in f) - 1 == count:
                return
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (10, 3))
    rows = ["filename,label"]
    started = time.time()
    for i in range(count):
        label = int(rng.integers(10))
        image = rng.integers(0, 96, (32, 32, 3))
        r, c = rng.integers(0, 17, 2)
        image[r:r + 16, c:c + 16] = colours[label]
        name = f"{label}/{i:07d}.jpg"
        os.makedirs(os.path.join(folder, str(label)), exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(os.path.join(folder, name), quality=90)
        rows.append(f"{name},{label}")
        if (i + 1) % 20000 == 0:
            print(f"  wrote {i + 1}/{count} images ({time.time() - started:.0f} s)", flush=True)
    with open(labels_path, "w") as f:
        f.write("\n".join(rows) + "\n")


class Timed:
    """Wraps a batch-producing method to count its seconds and images."""

    seconds = 0.0
    images = 0

    @classmethod
    def wrap(cls, owner, name: str, count) -> None:
        original = getattr(owner, name)

        def timed(self, *args, **kwargs):
            start = time.perf_counter()
            out = original(self, *args, **kwargs)
            cls.seconds += time.perf_counter() - start
            cls.images += count(out)
            return out

        setattr(owner, name, timed)


def _images_in(batch) -> int:
    """Images a batch carries (every view counted)."""
    import keras

    return sum(int(np.prod(np.shape(t)[:-3])) for t in keras.tree.flatten(batch)
               if np.ndim(t) >= 4)


def child(args) -> dict:
    """One training run; returns its measures."""
    import keras

    import keras_sanm
    import keras_sanm.training.trainer
    from keras_sanm.data.indexed_dataset import EvalView, IndexedDataset
    from keras_sanm.methods.dividemix.data import CoDivideData
    from keras_sanm.methods.dividemix.data import EvalView as DivideEval

    for owner, name in ((IndexedDataset, "batch_at"), (EvalView, "__getitem__"),
                        (CoDivideData, "warmup_batch"), (CoDivideData, "training_batch"),
                        (DivideEval, "__getitem__")):
        Timed.wrap(owner, name, _images_in)
    copy = {"seconds": 0.0}
    original_copy = keras_sanm.training.trainer.cache_dataset

    def timed_copy(*a, **k):
        start = time.perf_counter()
        out = original_copy(*a, **k)
        copy["seconds"] += time.perf_counter() - start
        return out

    keras_sanm.training.trainer.cache_dataset = timed_copy
    batch_size = 64
    data = keras_sanm.data.load_image_folder(args.folder, lazy=True)
    images, labels = data.images, data.labels
    if args.source == "memory":
        images, labels = images[: args.memory_images], labels[: args.memory_images]
    fit_input = (images, labels)
    if args.source == "tf.data":
        fit_input = (keras.utils.image_dataset_from_directory(
            args.folder, image_size=(32, 32), batch_size=batch_size, seed=0, verbose=False),)
    method, sanm, options, _ = METHODS[args.method]
    keras.utils.set_random_seed(0)
    model = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10, width=args.width),
                            method=method, sanm=sanm, seed=0, **options)
    model.compile()
    steps = {"count": 0, "seconds": 0.0}

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            steps["count"] += 1
            if steps["count"] > 5:  # the first steps compile
                steps["seconds"] += time.perf_counter() - self.start
            if steps["count"] >= args.steps:
                self.model.stop_training = True

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    # Enough epochs for `--steps` on the smaller set; the clock stops the fit.
    epochs = 1 + args.steps // max(1, len(images) // batch_size)
    sized = {"batch_size": batch_size} if len(fit_input) == 2 else {}
    model.fit(*fit_input, epochs=epochs, verbose=0, callbacks=[StepClock()], **sized)
    wall = time.perf_counter() - started
    timed_steps = max(1, steps["count"] - 5)
    # A DivideMix step trains one network on a labeled and an unlabeled batch.
    step_images = batch_size * (2 if method == "dividemix" else 1)
    return {
        "method": args.method, "source": args.source, "samples": len(images),
        "steps": steps["count"], "fit_wall_s": wall,
        "train_images_per_s": step_images * timed_steps / max(steps["seconds"], 1e-9),
        "pipeline_images_per_s": Timed.images / max(Timed.seconds, 1e-9),
        "pipeline_s": Timed.seconds, "pipeline_images": Timed.images,
        "copy_s": copy["seconds"],
        "rss_before_fit_mib": rss_before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "backend": keras.backend.backend(),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| method | source | samples | steps | peak RSS (MiB) | RSS before fit (MiB) | "
        "train img/s | pipeline img/s | pipeline / train | copy s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['source']} | {r['samples']} | {r['steps']} | "
            f"{r['peak_rss_mib']:.0f} | {r['rss_before_fit_mib']:.0f} | "
            f"{r['train_images_per_s']:.0f} | {r['pipeline_images_per_s']:.0f} | "
            f"{r['pipeline_images_per_s'] / r['train_images_per_s']:.1f}x | "
            f"{r.get('copy_s', 0.0):.0f} |")
    lines.append("")
    lines.append("| method | source | peak RSS / in memory |")
    lines.append("| --- | --- | --- |")
    for method in dict.fromkeys(r["method"] for r in rows):
        peaks = {r["source"]: r["peak_rss_mib"] for r in rows if r["method"] == method}
        for source in peaks:
            if source != "memory" and "memory" in peaks:
                lines.append(f"| {method} | {source} | {peaks[source] / peaks['memory']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000, help="images in the folder")
    parser.add_argument("--memory-images", type=int, default=5_000,
                        help="images of the in-memory run")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--width", type=int, default=8, help="PreAct ResNet-18 base width")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--sources", default=None,
                        help="comma-separated subset of disk,memory,tf.data (default: each "
                             "method's)")
    parser.add_argument("--folder", default="/tmp/keras_sanm_streaming",
                        help="where the synthetic folder is written (outside git)")
    parser.add_argument("--out", default="results/streaming", help="raw results and table")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {sorted(METHODS)}")
    print(f"Writing {args.images} JPEGs to {args.folder} ...", flush=True)
    write_folder(args.folder, args.images)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for method in methods:
        for source in METHODS[method][3]:
            if args.sources and source not in args.sources.split(","):
                continue
            command = [sys.executable, __file__, "--child", "--method", method,
                       "--source", source, "--folder", args.folder, "--steps", str(args.steps),
                       "--memory-images", str(args.memory_images), "--width", str(args.width)]
            print(f"{method} from {source} ...", flush=True)
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {json.dumps(rows[-1])}", flush=True)
    with open(os.path.join(args.out, "runs.json"), "w") as f:
        json.dump(rows, f, indent=1)
    text = table(rows)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
