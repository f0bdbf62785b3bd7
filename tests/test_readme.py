"""Every Python snippet of the README and the usage and input pages runs, in order,
as a reader would paste it.

The snippets share one namespace (later ones use `model` and `base` from the
first). The test supplies what the README leaves to the reader: small arrays
named as in the text (`x_train`, `y_noisy`, ...), a `photos` folder, and the
figures' models; it shortens what would take hours on a CPU (every `fit`
(and `pretrain`) runs one epoch, PreAct ResNet-18 at width 4, 256 CIFAR-10 images). Nothing
else in the snippets is changed.
"""

import functools
import os
import re
import time

import keras
import numpy as np
import pytest
from PIL import Image

import keras_sanm
from keras_sanm.datasets import ImageDataset
from keras_sanm.pretraining import SimCLRPretrainer
from keras_sanm.training.alternating import AlternatingTrainer
from keras_sanm.training.trainer import NoisyLabelTrainer

from conftest import learnable_problem

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` skips them

LOAD = keras_sanm.datasets.load
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The pages a reader follows from the README, in that order; their snippets
# share one namespace as if pasted into one session.
PAGES = ("README.md", "docs/usage.md", "docs/input.md")


def readme_snippets() -> list[tuple[str, str]]:
    """`(page, snippet)` for every Python snippet of `PAGES`, in order."""
    snippets = []
    for page in PAGES:
        with open(os.path.join(ROOT, page)) as f:
            snippets += [(page, s) for s in re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)]
    return snippets


def uint8_problem(n, seed):
    images, labels = learnable_problem(n, size=32, seed=seed)
    return np.clip((images + 3.0) / 6.0 * 255.0, 0, 255).astype("uint8"), labels


def one_epoch(fit):
    @functools.wraps(fit)
    def run(self, *args, **kwargs):
        kwargs["epochs"] = 1
        kwargs.setdefault("verbose", 0)
        return fit(self, *args, **kwargs)

    return run


def small_load(name, data_dir=None, **kwargs):
    """`datasets.load` on 256 training images: the shared CIFAR-10 when present,
    else generated images in its format."""
    shared = os.path.join(ROOT, data_dir) if data_dir and not os.path.isabs(data_dir) else data_dir
    if shared and os.path.isdir(shared):
        return LOAD(name, shared, train_size=256, test_size=64, download=False)
    x, y = uint8_problem(320, seed=3)
    return ImageDataset(name, x[:256], y[:256], x[256:], y[256:], 10,
                        (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), None)


@pytest.mark.only_backend("tensorflow", reason="the snippets' calls are tested per backend "
                          "elsewhere (tests/test_input_contract.py, test_image_files.py); this "
                          "checks the README's text, and its multi-device snippet needs torchrun "
                          "on torch")
def test_readme_snippets_run(tmp_path, monkeypatch):
    snippets = readme_snippets()
    assert len(snippets) >= 7, "README snippets were not found"
    monkeypatch.setattr(NoisyLabelTrainer, "fit", one_epoch(NoisyLabelTrainer.fit))
    monkeypatch.setattr(AlternatingTrainer, "fit", one_epoch(AlternatingTrainer.fit))
    monkeypatch.setattr(SimCLRPretrainer, "fit", one_epoch(SimCLRPretrainer.fit))
    monkeypatch.setattr(keras_sanm.backbones, "PreActResNet18",
                        functools.partial(keras_sanm.backbones.PreActResNet18, width=4))
    monkeypatch.setattr(keras_sanm.datasets, "load", small_load)
    # The folder of the "images on disk" snippet: sizes differ, image_size unifies them.
    x_photos, y_photos = uint8_problem(160, seed=2)
    os.makedirs(tmp_path / "photos")
    rows = ["filename,label"]
    for i, (image, label) in enumerate(zip(x_photos, y_photos)):
        size = (48, 40) if i % 2 else (64, 64)
        Image.fromarray(image).resize(size).save(tmp_path / "photos" / f"{i}.jpg")
        rows.append(f"{i}.jpg,{label}")
    (tmp_path / "photos" / "labels.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    x, y_true = uint8_problem(192, seed=0)
    y_noisy = keras_sanm.data.inject_noise(y_true[:128], 10, "sym", 0.3, seed=0)
    namespace = {"x_train": x[:128], "y_noisy": y_noisy, "x_test": x[128:],
                 "y_test": y_true[128:], "x": x[:128], "y_true": y_true[:128]}
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    try:
        for i, (page, snippet) in enumerate(snippets):
            if "viz." in snippet:  # the figures compare a CE and a SANM(CE) model
                ce = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10), sanm=False)
                sanm = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10))
                sanm.fit(x[:128], y_noisy, batch_size=32)
                namespace.update(ce=ce, sanm=sanm,
                                 history=ce.fit(x[:128], y_noisy, batch_size=32))
            try:
                started = time.perf_counter()
                exec(compile(snippet, f"{page} snippet {i + 1}", "exec"), namespace)
                print(f"snippet {i + 1}: {time.perf_counter() - started:.1f} s")
            except Exception as error:
                raise AssertionError(f"{page}: snippet {i + 1} failed:\n{snippet}") from error
    finally:
        keras.distribution.set_distribution(None)
        matplotlib.pyplot.close("all")
    # What the snippets promise, checked on what they left behind.
    assert namespace["probabilities"].shape == (64, 10)
    np.testing.assert_allclose(namespace["probabilities"].sum(-1), 1.0, rtol=1e-5)
    assert isinstance(namespace["data"].images, keras_sanm.data.ImageFiles)
    assert namespace["data"].images.shape == (160, 64, 64, 3)
    assert namespace["quality"].shape == (128,)
