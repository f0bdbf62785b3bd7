"""Self-supervised pretraining: `keras_sanm.pretrain`, its views, loss, read-outs and inputs."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

import keras_sanm
from keras_sanm.pretraining import (
    RepresentationMonitor,
    UnlabeledBatches,
    knn_accuracy,
    linear_probe_accuracy,
    nt_xent,
    representation_model,
    simclr_view,
)
from keras_sanm.pretraining.views import random_resized_crop

from conftest import small_cnn


def bars(n, size=16, seed=0):
    """Horizontal (class 0) or vertical (class 1) bars in random colours on random backgrounds.

    Colour dominates what a random network's features see; what tells the
    classes apart is the orientation, which survives SimCLR's views.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = np.empty((n, size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        image = np.tile(rng.integers(0, 256, 3), (size, size, 1))
        colour = rng.integers(0, 256, 3)
        for _ in range(3):
            at = rng.integers(0, size - 2)
            if label == 0:
                image[at:at + 2, :] = colour
            else:
                image[:, at:at + 2] = colour
        images[i] = image
    return images, labels


def weights_of(model):
    return [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]


def test_pretraining_raises_the_knn_accuracy_well_above_the_random_start():
    x, y = bars(256, seed=0)
    x_test, y_test = bars(200, seed=1)
    base = small_cnn((16, 16, 3), 2)
    monitor = RepresentationMonitor((x, y), (x_test, y_test), every=40, k=20)
    history = keras_sanm.pretrain(base, x, epochs=40, batch_size=64, verbose=0, seed=0,
                                  optimizer=keras.optimizers.Adam(3e-3), callbacks=[monitor])
    start, end = monitor.measured[0]["knn_accuracy"], monitor.measured[40]["knn_accuracy"]
    # Measured on this machine: 0.62-0.67 at the start, 0.87-0.93 after 40 epochs.
    assert end >= start + 0.15 and end >= 0.78, (start, end)
    assert history.history["loss"][-1] < history.history["loss"][0]
    # The base model itself holds the features (trained in place).
    features = representation_model(base).predict(x_test[:4] / 255.0, verbose=0)
    assert features.shape == (4, 16)


def test_nt_xent_matches_its_definition():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 5)).astype("float32")
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    logits = unit @ unit.T / 0.5
    np.fill_diagonal(logits, -np.inf)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.mean([log_p[i, (i + 3) % 6] for i in range(6)])
    assert float(nt_xent(z, 0.5)) == pytest.approx(expected, rel=1e-5)
    assert float(nt_xent(np.ones((8, 4), "float32"))) == pytest.approx(np.log(7), rel=1e-5)


def test_views_are_drawn_per_image_in_range():
    images = np.random.default_rng(0).random((16, 16, 16, 3)).astype("float32")
    seed = keras.random.SeedGenerator(0)
    first = keras.ops.convert_to_numpy(simclr_view(images, seed))
    second = keras.ops.convert_to_numpy(simclr_view(images, seed))
    assert first.shape == images.shape and 0 <= first.min() and first.max() <= 1
    assert not np.allclose(first, second)
    assert len({round(float(np.abs(v - x).mean()), 4) for v, x in zip(first, images)}) > 8
    whole = random_resized_crop(images, seed, area=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(whole), images, atol=1e-5)


def test_knn_and_probe_read_outs():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8)
    labels = rng.integers(0, 3, 90)
    features = centres[labels] + rng.normal(0, 0.1, (90, 8))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    assert knn_accuracy(features[:60], labels[:60], features[60:], labels[60:], k=200) == 1.0
    assert linear_probe_accuracy(features[:60], labels[:60], features[60:], labels[60:]) == 1.0
    # Shuffled memory labels: the vote follows them.
    assert knn_accuracy(features[:60], (labels[:60] + 1) % 3, features[60:], labels[60:],
                        k=5) == 0.0


def test_representation_is_the_input_of_the_last_dense_layer_or_the_pooled_map():
    base = small_cnn()
    model = representation_model(base)
    assert model.outputs[0].shape[-1] == 16
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Conv2D(3, 1, name="scores")(x)
    headless = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    assert representation_model(headless).outputs[0].shape[-1] == 3


@pytest.mark.parametrize("scale", ["uint8", "unit", "float255", "standardised"])
def test_every_pixel_scale_trains_the_base_in_place(scale):
    x, _ = bars(32)
    images = {"uint8": x, "unit": x / np.float32(255), "float255": x.astype("float32"),
              "standardised": (x - 120.0) / 60.0}[scale].astype(x.dtype if scale == "uint8"
                                                               else "float32")
    base = small_cnn((16, 16, 3), 2)
    before = weights_of(base)
    history = keras_sanm.pretrain(base, images, epochs=1, batch_size=16, verbose=0, seed=0)
    assert np.isfinite(history.history["loss"]).all()
    changed = [not np.array_equal(a, b) for a, b in zip(before, weights_of(base))]
    assert any(changed)
    # The classifier layer is not part of the pretraining.
    head = {id(w) for w in base.get_layer("logits").weights}
    assert all(same for w, same in zip(base.weights, [not c for c in changed]) if id(w) in head)


def _write_images(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")


@pytest.mark.parametrize("kind", ["folder", "image_files", "tf_data", "tf_data_pairs",
                                  "py_dataset", "labeled_images"])
def test_every_input_kind(kind, tmp_path):
    x, y = bars(32)
    if kind == "folder":
        _write_images(tmp_path / "unlabelled" / "sub", x)
        images = str(tmp_path / "unlabelled")
    elif kind == "image_files":
        _write_images(tmp_path, x)
        images = keras_sanm.data.ImageFiles(sorted(tmp_path.glob("*.png")))
    elif kind in ("tf_data", "tf_data_pairs"):
        tf = pytest.importorskip("tensorflow")
        images = tf.data.Dataset.from_tensor_slices(x if kind == "tf_data" else (x, y)).batch(16)
    elif kind == "py_dataset":
        images = UnlabeledBatches(x, 16, seed=0)
    else:
        images = keras_sanm.data.LabeledImages(x, y, ["h", "v"], [str(i) for i in range(32)])
    base = small_cnn((16, 16, 3), 2)
    before = weights_of(base)
    batch_size = 16 if kind in ("folder", "image_files", "labeled_images") else None
    history = keras_sanm.pretrain(base, images, epochs=1, batch_size=batch_size, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights_of(base)))


def test_bad_input_is_refused_before_any_step(tmp_path):
    x, _ = bars(8)
    base = small_cnn((16, 16, 3), 2)
    before = weights_of(base)
    cases = [
        (dict(images=x, method="byol"), "Unknown pretraining method"),
        (dict(images=x, epochs=0), "epochs must be an integer >= 1"),
        (dict(images=x, batch_size=1), "batch_size must be an integer >= 2"),
        (dict(images=x[:1]), "at least 2 images"),
        (dict(images=x[:, :8]), "expects"),
        (dict(images=np.full((4, 16, 16, 3), np.nan, "float32")), "NaN"),
        (dict(images=x[0]), "rank 3"),
        (dict(images=[1, 2, 3]), "pretrain\\(\\) takes images"),
        (dict(images=str(tmp_path / "missing")), "No image folder"),
        (dict(images=str(tmp_path)), "holds no image files"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            keras_sanm.pretrain(base, verbose=0, **kwargs)
    with pytest.raises(ValueError, match="built Functional"):
        keras_sanm.pretrain(keras.Sequential([keras.layers.Dense(2)]), x)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(base)))


def test_datasets_that_fit_would_refuse_are_refused():
    tf = pytest.importorskip("tensorflow")
    x, y = bars(8)
    base = small_cnn((16, 16, 3), 2)
    with pytest.raises(ValueError, match="single images"):
        keras_sanm.pretrain(base, tf.data.Dataset.from_tensor_slices(x), verbose=0)
    with pytest.raises(ValueError, match="dicts"):
        keras_sanm.pretrain(base, tf.data.Dataset.from_tensor_slices(
            {"image": x, "label": y}).batch(4), verbose=0)
    with pytest.raises(ValueError, match="batch_size is set by the dataset"):
        keras_sanm.pretrain(base, tf.data.Dataset.from_tensor_slices(x).batch(4),
                            batch_size=4, verbose=0)


def test_resumed_pretraining_ends_as_an_uninterrupted_one(tmp_path):
    x, _ = bars(48)

    def run(epochs, folder, base=None):
        if base is None:
            keras.utils.set_random_seed(0)
            base = small_cnn((16, 16, 3), 2)
        keras_sanm.pretrain(base, x, epochs=epochs, batch_size=16, verbose=0, seed=3,
                            callbacks=[keras_sanm.TrainingBackup(folder)])
        return base

    straight = run(3, tmp_path / "straight")
    interrupted = run(2, tmp_path / "resumed")
    keras.utils.set_random_seed(0)
    fresh = small_cnn((16, 16, 3), 2)  # a new process would start from a new model
    resumed = run(3, tmp_path / "resumed", fresh)
    assert keras_sanm.TrainingBackup.latest(tmp_path / "resumed")["epoch"] == 3
    assert not all(np.array_equal(a, b) for a, b in zip(weights_of(interrupted),
                                                        weights_of(straight)))
    for a, b in zip(weights_of(resumed), weights_of(straight)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_verbose_0_prints_nothing(capfd):
    x, _ = bars(16)
    capfd.readouterr()
    keras_sanm.pretrain(small_cnn((16, 16, 3), 2), x / np.float32(255), epochs=1,
                        batch_size=8, verbose=0)
    out, err = capfd.readouterr()
    assert out == ""
    assert all("keras_sanm" not in line and "Input preprocessing" not in line
               for line in err.splitlines())


def test_monitor_csv_rows_after_a_resume_are_rewritten(tmp_path):
    x, y = bars(32)
    path = os.fspath(tmp_path / "readouts.csv")
    monitor = RepresentationMonitor((x, y), (x, y), every=1, k=5, csv_path=path)
    base = small_cnn((16, 16, 3), 2)
    keras_sanm.pretrain(base, x, epochs=2, batch_size=16, verbose=0, callbacks=[monitor])
    assert sorted(monitor.measured) == [0, 1, 2]
    again = RepresentationMonitor((x, y), (x, y), every=1, k=5, csv_path=path)
    assert sorted(again.measured) == [0, 1, 2]
    again.set_model(monitor.model)
    again._record(1)
    with open(path) as f:
        assert [line.split(",")[0] for line in f.read().split()] == ["epoch", "0", "1"]


def test_pretrain_command_then_train_from_its_weights(tmp_path, capsys):
    from keras_sanm import cli

    from conftest import write_jpeg_npz

    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz", n_train=96, n_test=40)
    out = tmp_path / "pretrained"
    command = ["pretrain", "--dataset", "cifar10", "--data-dir", str(tmp_path),
               "--train-size", "48", "--test-size", "40", "--extra-images", "24",
               "--backbone", "small_cnn", "--batch-size", "16", "--readout-every", "1",
               "--output", str(out), "--verbose", "0"]
    cli.main([*command, "--epochs", "1"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 72 and summary["epochs"] == 1
    assert sorted(summary["readouts"]) == ["0", "1"]
    assert (out / "readouts.csv").read_text().splitlines()[0] == "epoch,knn_accuracy"
    with pytest.raises(SystemExit, match="--resume"):
        cli.main([*command, "--epochs", "2"])
    cli.main([*command, "--epochs", "2", "--resume"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and len(summary["loss"]) == 2
    assert "after 2 epochs" in capsys.readouterr().out

    saved = keras_sanm.backbones.get("small_cnn", 10, (32, 32, 3))
    saved.load_weights(out / "base.weights.h5")
    run = tmp_path / "run"
    train = ["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--train-size", "48",
             "--test-size", "40", "--method", "ce", "--no-sanm", "--backbone", "small_cnn",
             "--epochs", "1", "--batch-size", "16", "--verbose", "0"]
    cli.main([*train, "--init", str(out), "--output", str(run)])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["init"] == str(out)
    # The run started from the pretrained weights: its first layer moved little from them.
    model = keras_sanm.load_model(run / "model.keras")
    first = model.network.get_layer("conv1").kernel
    start = saved.get_layer("conv1").kernel
    fresh = keras_sanm.backbones.get("small_cnn", 10, (32, 32, 3)).get_layer("conv1").kernel
    moved = np.abs(keras.ops.convert_to_numpy(first) - keras.ops.convert_to_numpy(start)).mean()
    apart = np.abs(keras.ops.convert_to_numpy(fresh) - keras.ops.convert_to_numpy(start)).mean()
    assert moved < apart / 5
    # A two-network method starts both networks from the pretrained weights.
    cli.main([*train[:-6], "--method", "dividemix", "--epochs", "1",
              "--batch-size", "16", "--verbose", "0", "--init", str(out),
              "--output", str(tmp_path / "two")])
    two = keras_sanm.load_model(tmp_path / "two" / "model.keras")
    for network in two.networks:
        kernel = keras.ops.convert_to_numpy(network.get_layer("conv1").kernel)
        assert np.abs(kernel - keras.ops.convert_to_numpy(start)).mean() < apart / 5
    with pytest.raises(SystemExit, match="pretrained for backbone small_cnn"):
        cli.main([*train[:-6], "--backbone", "cnn9", "--epochs", "1", "--init", str(out),
                  "--output", str(tmp_path / "other")])


@pytest.mark.only_backend("tensorflow", reason="the budget rule's bookkeeping; the "
                          "pretraining it reads is tested on every backend")
def test_the_budget_rule_takes_the_cheapest_width_8_read_out_near_the_best(tmp_path):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import pretraining_budget as budget

    def write(width, extra, epochs, values):
        path = tmp_path / f"w{width}_x{extra}_e{epochs}"
        path.mkdir()
        lines = ["epoch,knn_accuracy,probe_accuracy"]
        lines += [f"{e},{k},{k}" for e, k in values]
        (path / "readouts.csv").write_text("\n".join(lines) + "\n")

    write(8, 0, 200, [(0, 0.22), (10, 0.33), (100, 0.392), (200, 0.39)])
    write(8, 8000, 60, [(0, 0.22), (5, 0.34), (30, 0.40), (60, 0.395)])
    write(16, 0, 200, [(0, 0.25), (200, 0.60)])  # a reference: never chosen
    rows = budget.readouts(os.fspath(tmp_path))
    chosen = budget.choose(rows)
    # Best width-8 kNN 0.40; within 1 point: 2000 x 100 (work 200,000) is cheapest.
    assert (chosen["width"], chosen["images"], chosen["epochs"]) == (8, 2000, 100)
    assert budget.main(["--out", os.fspath(tmp_path)]) == 0
    assert "| 8 | 2000 | 100 **chosen** | 200000 | 39.20 |" in (tmp_path / "budget.md").read_text()
