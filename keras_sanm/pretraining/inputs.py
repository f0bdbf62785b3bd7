"""What `keras_sanm.pretrain` accepts as images, checked and wrapped for Keras' `fit`."""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_sanm.data.image_files import ImageFiles
from keras_sanm.data.image_folder import IMAGE_EXTENSIONS, LabeledImages
from keras_sanm.data.indexed_dataset import IndexedDataset
from keras_sanm.data.validation import check_images, is_dataset, is_image_array, leading_images


class UnlabeledBatches(keras.utils.PyDataset):
    """Shuffled batches of an array-like of images, a new order every epoch.

    Every batch holds `batch_size` images (the last partial batch of an
    epoch is left out: a contrastive batch compares its images with each
    other, and the shuffle gives every image its turn over the epochs).
    `get_state` / `set_state` let `keras_sanm.TrainingBackup` resume the
    same order.

    Args:
        images: `(N, H, W, C)` numpy array or array-like read on access
            (`keras_sanm.data.ImageFiles`, `CachedImages`).
        batch_size: images per batch (at most `N`).
        seed: seed of the shuffles.
    """

    def __init__(self, images, batch_size: int, seed: int | None = None):
        super().__init__()
        self.images = images
        self.batch_size = min(int(batch_size), len(images))
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(images))
        self._order_stale = False

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __getitem__(self, index):
        if self._order_stale:  # drawn when first needed, so a resumed run draws the same
            self._order, self._order_stale = self._rng.permutation(len(self.images)), False
        rows = np.sort(self._order[index * self.batch_size:(index + 1) * self.batch_size])
        return (np.asarray(self.images[rows]),)

    def on_epoch_end(self):
        # Keras may signal an epoch's end more than once (when fit starts, too).
        self._order_stale = True

    def get_state(self) -> dict:
        return {"order": self._order.copy(), "order_stale": self._order_stale,
                "rng": self._rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self._order = np.asarray(state["order"])
        self._order_stale = bool(state["order_stale"])
        self._rng.bit_generator.state = state["rng"]


def folder_images(directory: str, image_size: tuple[int, int]) -> ImageFiles:
    """Every image file under `directory` (sorted paths), resized to `image_size`, on disk."""
    paths = sorted(
        os.path.join(root, name) for root, _, names in os.walk(directory) for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise ValueError(f"{directory} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return ImageFiles(paths, image_size)


def _checked_image_batches(dataset):
    """A dataset's batches as numpy images (labels, if any, left aside), each checked."""
    batches = ((dataset[i] for i in range(len(dataset)))
               if isinstance(dataset, keras.utils.PyDataset) else iter(dataset))
    for batch in batches:
        if isinstance(batch, dict):
            raise ValueError(
                f"The dataset yields dicts (keys {sorted(batch)}); map it to images or "
                "(images, labels), e.g. dataset.map(lambda d: d['image']).")
        images = keras.ops.convert_to_numpy(batch[0] if isinstance(batch, (tuple, list))
                                            else batch)
        if images.ndim == 3:
            raise ValueError("The dataset yields single images, not batches: batch it first "
                             "(e.g. dataset.batch(256)).")
        yield images


def pretraining_source(images, batch_size: int | None, image_shape: tuple, seed=None):
    """`(source, sample)`: what `fit` trains on, and training images to decide the scale from.

    Args:
        images: a numpy array of any pixel scale, an array-like read on access
            (`ImageFiles`, `CachedImages`), a `LabeledImages` or
            `IndexedDataset` (their images; labels are not used), a folder
            path (every image file under it), or a batched `tf.data.Dataset`
            / `keras.utils.PyDataset` of images or `(images, labels)`.
        batch_size: images per batch for arrays and folders (`None`: 256);
            a dataset brings its own.
        image_shape: the base model's `(H, W, C)` input shape.
        seed: shuffle seed for arrays.

    Returns:
        `(source, sample)`.

    Raises:
        ValueError: anything else, images of the wrong rank, shape or
            dtype, NaN or Inf, fewer than 2 images, or a `batch_size` with a
            dataset.
    """
    if isinstance(images, (str, os.PathLike)):
        if not os.path.isdir(images):
            raise ValueError(f"No image folder at {os.fspath(images)}.")
        images = folder_images(os.fspath(images), tuple(image_shape[:2]))
    elif isinstance(images, (LabeledImages, IndexedDataset)):
        images = images.images
    if is_dataset(images):
        if batch_size is not None:
            raise ValueError("batch_size is set by the dataset; pass it only with arrays.")
        sample = check_images(leading_images(_checked_image_batches(images)), image_shape)
        return images, sample
    if not is_image_array(images):
        raise ValueError(
            "pretrain() takes images: a numpy array (N, H, W, C), keras_sanm.data.ImageFiles, "
            "a folder path, or a batched tf.data.Dataset / keras.utils.PyDataset; got "
            f"{type(images).__name__}.")
    images = check_images(images, image_shape)
    if len(images) < 2:
        raise ValueError(f"Contrastive pretraining needs at least 2 images; got {len(images)}.")
    batch_size = 256 if batch_size is None else batch_size
    return UnlabeledBatches(images, batch_size, seed), images
