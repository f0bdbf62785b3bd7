"""`CoDivideData`: the data side of DivideMix (docs/algorithms.md, "DivideMix")."""

from __future__ import annotations

import warnings

import numpy as np

from keras_sanm.data.augment import weak_augment
from keras_sanm.data.eight_bit import EightBitPixels
from keras_sanm.data.indexed_dataset import EvalView, restore_sampling_state, sampling_state
from keras_sanm.data.normalization import infer_pixel_scale
from keras_sanm.data.strong_augment import autoaugment_view, randaugment_view, warmup_view
from keras_sanm.data.validation import check_images, check_labels

VIEW_AUGMENTATIONS = {
    "weak": weak_augment,
    "autoaugment": autoaugment_view,
    "randaugment": randaugment_view,
    "strong_warmup": warmup_view,
    "none": lambda images, rng: images,
}


def view_augmentation(name_or_fn):
    """The `(images, rng) -> images` function of a view name (or the callable itself).

    The data sides hand it 8-bit pixels, or standardised floats as they are
    (`keras_sanm.data.eight_bit.EightBitPixels`).
    """
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn in VIEW_AUGMENTATIONS:
        return VIEW_AUGMENTATIONS[name_or_fn]
    raise ValueError(
        f"Unknown augmentation {name_or_fn!r}; use one of {sorted(VIEW_AUGMENTATIONS)} "
        "or a callable (images, rng) -> images."
    )


class CoDivideData(EightBitPixels):
    """Training set of a two-network method with sample identities.

    Holds the whole training set; between epochs the wrapper's `CoDivide`
    callback writes each network's clean probabilities into `label_quality`
    (`(N, 2)`; column `k`: from network `k`'s eval pass). Network `k` then trains on the
    split made by its peer: labeled = samples whose peer probability exceeds
    the threshold, unlabeled = the rest (co-divide). Every step gets a
    fixed-size labeled part (the labeled set in a fresh random order, the
    last batch filled up by resampling it) and a fixed-size unlabeled part
    (cycled through fresh permutations), so the step compiles once.

    Args:
        images: `(N, H, W, C)` raw images (uint8 or float), batched as they
            are; the model scales and standardises them.
        labels: `(N,)` noisy integer labels.
        batch_size: labeled (= unlabeled) batch size `B` (64).
        num_classes: number of classes (default `max(labels) + 1`).
        warmup_batch_size: warm-up batch size (default `2 * batch_size`).
        views: augmentation of each view of a sample in a training step,
            names (`"weak"`, `"autoaugment"`, `"randaugment"`,
            `"strong_warmup"`, `"none"`) or
            callables `(images, rng) -> images` (8-bit pixels, or standardised
            floats as given); DivideMix uses two weak views.
        warmup_augment: augmentation of warm-up batches.
        seed: seed of orders, resampling and augmentation.
        clean_labels: optional true labels, for split statistics.

    Example:
    >>> data = CoDivideData(x_train, y_noisy, batch_size=64, clean_labels=y_true)
    >>> model.fit(data, epochs=300)
    """

    def __init__(
        self,
        images,
        labels,
        batch_size: int = 64,
        num_classes: int | None = None,
        warmup_batch_size: int | None = None,
        views=("weak", "weak"),
        warmup_augment="weak",
        seed: int | None = None,
        clean_labels=None,
    ):
        self.images = check_images(images)
        self.labels = check_labels(labels, len(self.images), num_classes)
        self.num_classes = (
            int(num_classes) if num_classes is not None else int(self.labels.max()) + 1
        )
        self.clean_labels = (
            None
            if clean_labels is None
            else check_labels(clean_labels, len(self.images), self.num_classes)
        )
        warmup_batch_size = warmup_batch_size or 2 * batch_size
        for name, size in (("batch_size", batch_size), ("warmup_batch_size", warmup_batch_size)):
            if not isinstance(size, (int, np.integer)) or size < 1:
                raise ValueError(f"{name} must be a positive integer; got {size!r}.")
            if size > len(self.images):
                raise ValueError(
                    f"{name}={size} is larger than the {len(self.images)} training samples."
                )
        self.batch_size, self.warmup_batch_size = int(batch_size), int(warmup_batch_size)
        self.views = tuple(views)
        if not self.views:
            raise ValueError("views needs at least one augmentation.")
        self._view_fns = [view_augmentation(v) for v in self.views]
        self._warmup_fn = view_augmentation(warmup_augment)
        # The augmentations see 8-bit pixels (the strong views are PIL
        # operations): float images in [0, 1] or [0, 255] are converted batch
        # by batch (no second copy of the set; images read on access stay
        # on disk), with the scale read once from the whole set, and their
        # views come back as float32 in that scale. Standardised images reach
        # the named views with their black at 0, where those pad, and user
        # callables as they are.
        self.builtin_views = all(isinstance(v, str) for v in (*self.views, warmup_augment))
        self.pixel_scale = None
        if self.images.dtype != np.uint8:
            self.pixel_scale = infer_pixel_scale(self.images)
        # Each augmentation once on two images: images it cannot take (e.g.
        # standardised ones for the strong views) fail here, not in a step.
        probe = np.random.default_rng(0)
        for fn in {id(f): f for f in (*self._view_fns, self._warmup_fn)}.values():
            fn(self._pixels(np.arange(2)), probe)
        self.rng = np.random.default_rng(seed)
        # Row i, column k: sample i's clean probability from network k's eval
        # pass (the layout of every per-sample quality: samples x networks).
        self.label_quality = np.ones((len(self.images), 2), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.images)

    def get_state(self) -> dict:
        """What a resumed run needs: the random state and the clean probabilities."""
        return sampling_state(self)

    def set_state(self, state: dict) -> None:
        """Restores `get_state()`, after checking it belongs to the same data."""
        restore_sampling_state(self, state)

    def eval_view(self, batch_size: int = 512):
        """All samples in index order, unaugmented, as `(images,)` batches."""
        return EvalView(self, batch_size)

    # ------------------------------------------------------------- warm-up
    def warmup_batches(self) -> list:
        """One shuffled pass over all samples: a list of batch index arrays.

        The last partial batch is dropped (static shapes).
        """
        order = self.rng.permutation(len(self.images))
        count = len(order) // self.warmup_batch_size
        return [
            order[i * self.warmup_batch_size : (i + 1) * self.warmup_batch_size]
            for i in range(count)
        ]

    def warmup_batch(self, indices) -> dict:
        """`{"images", "labels"}` of a warm-up batch, augmented, raw."""
        images = self._warmup_fn(self._pixels(indices), self.rng)
        return {
            "images": self._in_own_scale(images),
            "labels": self.labels[indices].astype(np.int32),
        }

    # ------------------------------------------------------------ co-divide
    def split(self, network: int, threshold: float):
        """Labeled and unlabeled indices for `network`, from its peer's probabilities.

        Args:
            network: 0 or 1, the network that will train on the split.
            threshold: `tau`; labeled when the peer's clean probability is above it.

        Returns:
            `(labeled, unlabeled)` index arrays.
        """
        peer_quality = self.label_quality[:, 1 - network]
        labeled = np.flatnonzero(peer_quality > threshold)
        unlabeled = np.flatnonzero(peer_quality <= threshold)
        return labeled, unlabeled

    def training_plan(self, network: int, threshold: float, epoch: int) -> list:
        """One epoch of steps for `network`: a list of per-step index sets.

        `ceil(|L| / B)` steps as the reference's labeled loader (the last
        labeled batch filled up by resampling `L`); unlabeled indices from
        fresh permutations of `U`, cycled. With an empty `U`, unlabeled rows
        come from all samples; with an empty `L`, the `B` samples with the
        highest peer probability form `L`.

        Returns:
            A list of `(labeled, unlabeled, progress)`: index arrays of size
            `B` and `t = epoch + step / (floor(|L| / B) + 1)` (the `L_u` ramp).
        """
        batch = self.batch_size
        labeled, unlabeled = self.split(network, threshold)
        if len(labeled) == 0:
            warnings.warn(
                f"Epoch {epoch}: network {network + 1}'s peer gives no sample a clean "
                f"probability above threshold={threshold}, so its labeled set is empty; it "
                f"trains on the {batch} most probably clean samples as labeled. If this "
                "repeats, the networks do not separate clean from wrong labels: lengthen "
                "the warm-up, lower `threshold`, or check the labels.",
                stacklevel=2,
            )
            labeled = np.argsort(-self.label_quality[:, 1 - network], kind="stable")[:batch]
        if len(unlabeled) == 0:
            warnings.warn(
                f"Epoch {epoch}: network {network + 1}'s peer puts every sample above "
                f"threshold={threshold}, so its unlabeled set is empty; unlabeled rows are "
                "drawn from all samples. Expected when labels are nearly clean; with noisy "
                "labels the warm-up has probably memorised them: shorten it.",
                stacklevel=2,
            )
            unlabeled = np.arange(len(self.images))
        steps = -(-len(labeled) // batch)
        order = self.rng.permutation(labeled)
        fill = steps * batch - len(order)
        if fill:
            order = np.concatenate([order, self.rng.choice(labeled, fill)])
        cycles = -(-steps * batch // len(unlabeled))
        unlabeled_order = np.concatenate(
            [self.rng.permutation(unlabeled) for _ in range(cycles)]
        )
        iterations = len(labeled) // batch + 1
        return [
            (
                order[i * batch : (i + 1) * batch],
                unlabeled_order[i * batch : (i + 1) * batch],
                epoch + i / iterations,
            )
            for i in range(steps)
        ]

    def _views(self, indices) -> np.ndarray:
        raw = self._pixels(indices)
        views = [self._in_own_scale(fn(raw, self.rng)) for fn in self._view_fns]
        return np.stack(views, axis=1)

    def training_batch(self, network: int, step) -> dict:
        """The arrays of one training step of `network`.

        Args:
            network: the network being trained (its peer's `w` is used).
            step: one entry of `training_plan`.

        Returns:
            `{"labeled_views": (B, V, H, W, C), "labels": (B,),
            "labeled_quality": (B,), "unlabeled_views": (B, V, H, W, C),
            "unlabeled_quality": (B,), "progress": (B,)}`.
        """
        labeled, unlabeled, progress = step
        quality = self.label_quality[:, 1 - network]
        return {
            "labeled_views": self._views(labeled),
            "labels": self.labels[labeled].astype(np.int32),
            "labeled_quality": quality[labeled].astype(np.float32),
            "unlabeled_views": self._views(unlabeled),
            "unlabeled_quality": quality[unlabeled].astype(np.float32),
            "progress": np.full(len(labeled), progress, dtype=np.float32),
        }
