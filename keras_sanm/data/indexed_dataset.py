"""`IndexedDataset`: training batches that know which samples they hold."""

from __future__ import annotations

import hashlib
import math

import keras
import numpy as np

from keras_sanm.data.augment import augment_from_black, black_level, weak_augment
from keras_sanm.data.normalization import raw_batch
from keras_sanm.data.validation import check_images, check_labels

AUGMENTATIONS = {None: None, "none": None, "weak": weak_augment}


def data_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """A short digest of a training set: shapes, labels and a sample of pixels."""
    digest = hashlib.sha256()
    digest.update(repr((images.shape, str(images.dtype))).encode())
    digest.update(np.ascontiguousarray(labels).tobytes())
    step = max(1, len(images) // 64)
    digest.update(np.ascontiguousarray(images[::step]).tobytes())
    return digest.hexdigest()[:16]


def sampling_state(data) -> dict:
    """The resumable state every indexed training set has: random state, clean
    probabilities and a fingerprint of its images and labels."""
    return {
        "rng": data.rng.bit_generator.state,
        "label_quality": data.label_quality,
        "fingerprint": data_fingerprint(data.images, data.labels),
    }


def restore_sampling_state(data, state: dict) -> None:
    """Inverse of `sampling_state`; refuses state written for different training data."""
    if state["fingerprint"] != data_fingerprint(data.images, data.labels):
        raise ValueError(
            "The checkpoint was written for different training data (images or noisy "
            "labels differ). Resume with the same data, noise file and seed, or start "
            "a new run in another folder."
        )
    data.rng.bit_generator.state = state["rng"]
    quality = np.asarray(state["label_quality"], dtype=np.float32)
    # Checkpoints written before the one layout: (N,) for one network, (2, N)
    # for DivideMix's data.
    if quality.ndim == 1:
        quality = quality[:, None]
    elif quality.shape[0] != len(data.labels):
        quality = quality.T
    data.label_quality = np.ascontiguousarray(quality)


class IndexedDataset(keras.utils.PyDataset):
    """Shuffled, fixed-size training batches of `(images, labels, label_quality)`.

    Holds the whole training set as arrays, so every batch knows its sample
    indices; per-sample state computed between epochs (the clean probability
    `label_quality`) travels with the batch. The last partial batch is dropped
    so every step has the same shape.

    Args:
        images: `(N, H, W, C)` raw images (uint8 or float), batched as they
            are; the model scales and standardises them.
        labels: `(N,)` integer (possibly noisy) labels.
        batch_size: samples per batch.
        num_classes: number of classes (default: `max(labels) + 1`).
        augment: `"weak"` (pad-4 crop + flip; standardised images are
            padded with their own black, `keras_sanm.data.augment.black_level`),
            `None`, or a callable `(images, rng) -> images` applied to raw
            batches as they are.
        shuffle: reshuffle the order every epoch.
        seed: seed of the shuffling and augmentation.
        clean_labels: optional true labels (synthetic noise), for reporting.

    Example:
    >>> ds = IndexedDataset(np.zeros((8, 8, 8, 3), np.uint8), np.arange(8) % 2, 4)
    >>> x, y, w = ds[0]
    """

    def __init__(
        self,
        images,
        labels,
        batch_size: int,
        num_classes: int | None = None,
        augment="weak",
        shuffle: bool = True,
        seed: int | None = None,
        clean_labels=None,
    ):
        super().__init__()
        self.images = check_images(images)
        self.labels = check_labels(labels, len(self.images), num_classes)
        self.num_classes = (
            int(num_classes) if num_classes is not None else int(self.labels.max()) + 1
        )
        if clean_labels is not None:
            clean_labels = check_labels(clean_labels, len(self.images), self.num_classes)
        self.clean_labels = clean_labels
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
        if batch_size > len(self.images):
            raise ValueError(
                f"batch_size={batch_size} is larger than the {len(self.images)} "
                "training samples; every step needs a full batch."
            )
        if callable(augment):
            self.augment = augment
        elif augment in AUGMENTATIONS:
            self.augment = AUGMENTATIONS[augment]
        else:
            raise ValueError(f"augment must be 'weak', None or a callable; got {augment!r}.")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        # Standardised images are padded with their own black, as raw ones.
        self.black = (black_level(self.images) if isinstance(augment, str)
                      and self.augment is not None else None)
        self.rng = np.random.default_rng(seed)
        # Augmentation draws from a generator keyed by (seed, epoch, samples),
        # so a batch is the same however often and in whatever order Keras
        # reads it (data adapters peek at batches; replicas may read twice).
        self.augment_seed = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
        self.epoch_draws = -1
        # Samples x networks (one column until a two-network model asks for two).
        self.label_quality = np.ones((len(self.images), 1), dtype=np.float32)
        self._order = self._new_order()
        self._order_stale = False

    def _new_order(self):
        self.epoch_draws += 1
        n = len(self.images)
        return self.rng.permutation(n) if self.shuffle else np.arange(n)

    @property
    def order(self) -> np.ndarray:
        """This epoch's sample order, drawn when first needed after `on_epoch_end`."""
        if self._order_stale:
            self._order, self._order_stale = self._new_order(), False
        return self._order

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def batch_indices(self, index: int) -> np.ndarray:
        """Sample indices of batch `index` in the current epoch's order."""
        return self.order[index * self.batch_size : (index + 1) * self.batch_size]

    def __getitem__(self, index):
        return self.batch_at(self.batch_indices(index))

    def batch_at(self, indices):
        """`(images, labels, label_quality)` of the given samples, augmented, raw.

        Args:
            indices: `(B,)` sample indices.
        """
        batch = self.images[indices]
        if self.augment is not None:
            key = [self.augment_seed, self.epoch_draws, *np.asarray(indices).tolist()]
            batch = augment_from_black(self.augment, batch, np.random.default_rng(key),
                                       self.black)
        return (
            raw_batch(batch),
            self.labels[indices].astype(np.int32),
            self.quality_of(indices),
        )

    def quality_of(self, indices) -> np.ndarray:
        """`(B,)` label quality of the given samples with one network, `(B, M)` with M."""
        quality = self.label_quality[indices]
        return quality[:, 0] if quality.shape[1] == 1 else quality

    def on_epoch_end(self):
        # The next order is drawn lazily: Keras may signal the end of an epoch
        # more than once (e.g. when fit starts), and a resumed run must draw
        # the same orders as an uninterrupted one.
        self._order_stale = True

    def get_state(self) -> dict:
        """What a resumed run needs: random state, order and label quality.

        Returns:
            A dict of JSON values and numpy arrays (see `set_state`).
        """
        return {**sampling_state(self), "order": self._order, "order_stale": self._order_stale,
                "augment_seed": self.augment_seed, "epoch_draws": self.epoch_draws}

    def set_state(self, state: dict) -> None:
        """Restores `get_state()`, after checking it belongs to the same data."""
        restore_sampling_state(self, state)
        self._order = np.asarray(state["order"])
        self._order_stale = bool(state["order_stale"])
        # (Checkpoints written before these keys existed keep the current ones.)
        self.augment_seed = int(state.get("augment_seed", self.augment_seed))
        self.epoch_draws = int(state.get("epoch_draws", self.epoch_draws))

    def eval_view(self, batch_size: int | None = None) -> EvalView:
        """All samples in index order, unaugmented, as `(images,)` batches."""
        return EvalView(self, batch_size or self.batch_size)


class EvalView(keras.utils.PyDataset):
    """Unaugmented, unshuffled batches of an `IndexedDataset` (the last one partial)."""

    def __init__(self, source: IndexedDataset, batch_size: int):
        super().__init__()
        self.source, self.batch_size = source, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.source.images) / self.batch_size)

    def __getitem__(self, index):
        part = self.source.images[index * self.batch_size : (index + 1) * self.batch_size]
        return (raw_batch(part),)
