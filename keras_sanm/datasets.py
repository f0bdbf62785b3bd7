"""Loading CIFAR-10/100 and CIFAR-10N/100N as arrays, from tfds or a local file."""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np

from keras_sanm.data.normalization import NORMALIZATION

DATASETS = {
    # name: (tfds name, classes, default noisy-label feature or None)
    "cifar10": ("cifar10", 10, None),
    "cifar100": ("cifar100", 100, None),
    "cifar10_n": ("cifar10_n", 10, "worse_label"),
    "cifar100_n": ("cifar100_n", 100, "noise_label"),
}


@dataclasses.dataclass
class ImageDataset:
    """Train and test arrays of one dataset.

    Attributes:
        name: dataset name.
        x_train, x_test: `(N, H, W, 3)` uint8 images.
        y_train, y_test: `(N,)` int64 true labels.
        num_classes: number of classes.
        mean, std: per-channel normalisation constants.
        noisy_train: `(N,)` human noisy labels (CIFAR-N), else `None`.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: tuple
    std: tuple
    noisy_train: np.ndarray | None = None


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray, indices) -> np.ndarray:
    from PIL import Image

    data = blob.tobytes()
    return np.stack([
        np.asarray(Image.open(io.BytesIO(data[offsets[i]:offsets[i + 1]])).convert("RGB"))
        for i in indices
    ])


def _subset(n: int, size: int | None, seed: int) -> np.ndarray:
    if size is None or size >= n:
        return np.arange(n)
    if size < 1:
        raise ValueError(f"Subset sizes must be positive; got {size}.")
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _local_file(name: str, data_dir: str | None) -> str | None:
    """`data_dir` itself if it is a file, else `<data_dir>/<name>_jpeg.npz` if present."""
    if data_dir is None:
        return None
    if os.path.isfile(data_dir):
        return data_dir
    path = os.path.join(data_dir, f"{name}_jpeg.npz")
    return path if os.path.exists(path) else None


def _load_local(path, train_size, test_size, seed):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    required = {"train_jpeg", "train_offsets", "y_train", "test_jpeg", "test_offsets", "y_test"}
    missing = required - set(arrays)
    if missing:
        raise ValueError(f"{path} lacks the arrays {sorted(missing)}.")
    train = _subset(len(arrays["y_train"]), train_size, seed)
    test = _subset(len(arrays["y_test"]), test_size, seed + 1)
    return (
        _decode_jpegs(arrays["train_jpeg"], arrays["train_offsets"], train),
        arrays["y_train"][train].astype(np.int64),
        _decode_jpegs(arrays["test_jpeg"], arrays["test_offsets"], test),
        arrays["y_test"][test].astype(np.int64),
        None,
    )


def _tfds_split(tfds_name, split, data_dir, keys, download):
    """One split as numpy arrays of `keys`, read in batches (only the needed features)."""
    import tensorflow_datasets as tfds

    dataset = tfds.load(tfds_name, split=split, data_dir=data_dir, download=download)
    dataset = dataset.map(lambda example: {key: example[key] for key in keys}).batch(10_000)
    parts = list(tfds.as_numpy(dataset))
    return {key: np.concatenate([part[key] for part in parts]) for key in keys}


def _require_tfds(name: str, data_dir: str | None) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorflow_datasets") is None:
        where = f"there is no {name}_jpeg.npz in {data_dir}, and " if data_dir else ""
        raise ImportError(f"{where}reading {name} through tensorflow-datasets needs it: "
                          "pip install 'keras-sanm[tfds]'.")


def _load_tfds(tfds_name, data_dir, noisy_key, train_size, test_size, seed, download=True):
    keys = ["image", "label"]
    try:
        train = _tfds_split(tfds_name, "train", data_dir, keys + ([noisy_key] if noisy_key else []),
                            download)
        test = _tfds_split(tfds_name, "test", data_dir, keys, download)
    except AssertionError as error:  # tfds' "could not find data" with download=False
        if download:
            raise
        raise FileNotFoundError(
            f"{tfds_name} is neither a {tfds_name}_jpeg.npz in {data_dir} nor prepared in "
            f"that tensorflow-datasets folder ({error})"
        ) from None
    tr = _subset(len(train["label"]), train_size, seed)
    te = _subset(len(test["label"]), test_size, seed + 1)
    noisy = train[noisy_key][tr].astype(np.int64) if noisy_key else None
    return (
        train["image"][tr], train["label"][tr].astype(np.int64),
        test["image"][te], test["label"][te].astype(np.int64), noisy,
    )


def load(
    name: str,
    data_dir: str | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    noisy_label_key: str | None = None,
    seed: int = 0,
    download: bool = True,
) -> ImageDataset:
    """Loads a dataset as uint8 arrays.

    With `data_dir` holding `<name>_jpeg.npz` (the `../shared/data/cifar10`
    format: JPEG bytes with offsets, in the original training order), reads
    it locally; otherwise goes through tensorflow-datasets (`data_dir` is then
    its data directory; CIFAR-N need a manual download there, see the tfds
    catalog).

    Args:
        name: `cifar10`, `cifar100`, `cifar10_n` or `cifar100_n`.
        data_dir: local directory or file, or tfds data directory.
        train_size, test_size: optional random subset sizes (sorted indices,
            so the original order is kept).
        noisy_label_key: CIFAR-N label set (`worse_label`, `aggre_label`,
            `random_label1..3` for CIFAR-10N; `noise_label` for CIFAR-100N).
        seed: seed of the subset draw.
        download: let tensorflow-datasets download and prepare a dataset it
            does not find (`False`: raise `FileNotFoundError` instead).

    Returns:
        An `ImageDataset`.

    Example:
    >>> ds = keras_sanm.datasets.load("cifar10", "../shared/data/cifar10", train_size=1000)
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose from {sorted(DATASETS)}.")
    tfds_name, num_classes, default_key = DATASETS[name]
    noisy_key = noisy_label_key or default_key
    if noisy_label_key and not default_key:
        raise ValueError(f"{name} has no human noisy labels; noisy_label_key is for CIFAR-N.")
    local = _local_file(name, data_dir)
    if local:
        if default_key:
            raise ValueError(f"{name} is only available through tensorflow-datasets.")
        parts = _load_local(local, train_size, test_size, seed)
    else:
        _require_tfds(name, data_dir)
        parts = _load_tfds(tfds_name, data_dir, noisy_key, train_size, test_size, seed, download)
    x_train, y_train, x_test, y_test, noisy = parts
    mean, std = NORMALIZATION[name]
    return ImageDataset(name, x_train, y_train, x_test, y_test, num_classes, mean, std, noisy)


def other_training_images(name: str, data_dir: str | None, count: int,
                          train_size: int | None, seed: int = 0,
                          download: bool = True) -> np.ndarray:
    """Images of a dataset's training split outside the subset `load` draws, without labels.

    For self-supervised pretraining on more images than the labelled subset
    (`load(name, data_dir, train_size, seed=seed)` draws that subset): `count`
    further training images, drawn with the seed from those not in it. Test
    images are never among them.

    Args:
        name, data_dir, train_size, seed, download: as for `load`.
        count: how many further images.

    Returns:
        `(count, H, W, 3)` uint8 images, in the split's order.

    Raises:
        ValueError: more images than the split holds outside the subset.

    Example:
    >>> extra = keras_sanm.datasets.other_training_images("cifar10", "data", 8000, 2000)
    """
    full = load(name, data_dir, test_size=1, seed=seed, download=download)
    subset = _subset(len(full.y_train), train_size, seed)
    others = np.setdiff1d(np.arange(len(full.y_train)), subset)
    if count > len(others):
        raise ValueError(f"{name} has {len(others)} training images outside the subset of "
                         f"{len(subset)}; asked for {count}.")
    chosen = np.sort(np.random.default_rng(seed + 2).choice(others, count, replace=False))
    return full.x_train[chosen]
