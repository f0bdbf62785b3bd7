"""`SSRData`: the data side of SSR (docs/algorithms.md, "SSR")."""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np

from keras_sanm.data.eight_bit import EightBitPixels
from keras_sanm.data.indexed_dataset import restore_sampling_state, sampling_state
from keras_sanm.data.normalization import infer_pixel_scale
from keras_sanm.data.validation import check_images, check_labels
from keras_sanm.methods.dividemix.data import view_augmentation
from keras_sanm.methods.ssr.knn_selection import class_balanced_order


class SSRData(EightBitPixels, keras.utils.PyDataset):
    """Training set of SSR: every step a clean batch and a batch of all samples.

    Between epochs SSR's selection (`SSRSelection`) writes the current labels
    (the given ones, relabelled where the network is confident), which
    samples are clean, and each sample's selection score (`label_quality`).
    An epoch then has `floor(N / B)` steps, as the reference's loader over
    all samples. Step `i` holds:

    * `clean_views`: `(B, 2, H, W, C)`, two strong views of `B` clean
      samples drawn by the class-balanced sampler, with `clean_labels` (the
      current labels) and `clean_quality`;
    * `all_views`: `(B, 2, H, W, C)`, a weak and a strong view of `B`
      samples of this epoch's order over all samples.

    A batch is drawn from a generator keyed by (seed, epoch, step), so a
    batch read twice (Keras peeks at the first) is the same batch.

    Args:
        images: `(N, H, W, C)` raw images (uint8 or float).
        labels: `(N,)` given (noisy) labels.
        batch_size: `B` (SSR: 128).
        num_classes: number of classes (default `max(labels) + 1`).
        strong: augmentation of the strong views (`"autoaugment"`: SSR's
            CIFAR policy; `"none"`), or a callable `(images, rng)` (8-bit
            pixels, or standardised floats as given).
        weak: augmentation of the weak views (`"weak"`: crop and flip).
        seed: seed of orders, sampling and augmentation.
        clean_labels: optional true labels, for selection statistics.
    """

    def __init__(self, images, labels, batch_size: int = 128, num_classes: int | None = None,
                 strong="autoaugment", weak="weak", seed: int | None = None,
                 clean_labels=None):
        super().__init__()
        self.images = check_images(images)
        self.labels = check_labels(labels, len(self.images), num_classes)
        self.num_classes = (int(num_classes) if num_classes is not None
                            else int(self.labels.max()) + 1)
        self.clean_labels = (None if clean_labels is None else
                             check_labels(clean_labels, len(self.images), self.num_classes))
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
        if batch_size > len(self.images):
            raise ValueError(f"batch_size={batch_size} is larger than the "
                             f"{len(self.images)} training samples.")
        self.batch_size = int(batch_size)
        self._strong, self._weak = view_augmentation(strong), view_augmentation(weak)
        self.views = (strong, weak)
        self.builtin_views = isinstance(strong, str) and isinstance(weak, str)
        self.pixel_scale = None if self.images.dtype == np.uint8 else infer_pixel_scale(
            self.images)
        probe = np.random.default_rng(0)
        for fn in (self._strong, self._weak):  # images the views cannot take fail here
            fn(self._pixels(np.arange(2)), probe)
        self.rng = np.random.default_rng(seed)
        self.augment_seed = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
        n = len(self.images)
        # Until the first selection: every sample clean with its given label.
        self.current_labels = self.labels.astype(np.int64).copy()
        self.clean = np.ones(n, dtype=bool)
        self.label_quality = np.ones((n, 1), dtype=np.float32)
        self.epoch_draws = -1
        self._plan_stale = True
        self._order = self._clean_plan = None

    # ---------------------------------------------------------------- state
    def set_selection(self, labels, clean, score) -> None:
        """This epoch's current labels, clean samples and selection scores."""
        self.current_labels = np.asarray(labels, np.int64)
        self.clean = np.asarray(clean, bool)
        self.label_quality = np.asarray(score, np.float32).reshape(-1, 1)
        self._plan_stale = True

    def get_state(self) -> dict:
        """What a resumed run needs: random state, the selection and this epoch's plan."""
        self._draw_plan_if_stale()
        return {**sampling_state(self), "current_labels": self.current_labels,
                "clean": self.clean, "order": self._order, "clean_plan": self._clean_plan,
                "epoch_draws": self.epoch_draws, "plan_stale": self._plan_stale}

    def set_state(self, state: dict) -> None:
        restore_sampling_state(self, state)
        self.current_labels = np.asarray(state["current_labels"], np.int64)
        self.clean = np.asarray(state["clean"], bool)
        self._order, self._clean_plan = np.asarray(state["order"]), np.asarray(
            state["clean_plan"])
        self.epoch_draws = int(state["epoch_draws"])
        self._plan_stale = bool(state["plan_stale"])

    # ----------------------------------------------------------------- plans
    def _draw_plan_if_stale(self) -> None:
        """This epoch's order over all samples and its clean indices, once per epoch.

        Drawn at the epoch's first batch, after the selection of that epoch.
        """
        if not self._plan_stale:
            return
        self.epoch_draws += 1
        steps, b = len(self), self.batch_size
        self._order = self.rng.permutation(len(self.images))[: steps * b]
        clean = self.clean
        if not clean.any():
            warnings.warn("SSR's selection kept no sample as clean; the clean batches "
                          "come from all samples this epoch.", stacklevel=2)
            clean = np.ones_like(clean)
        parts, total = [], 0
        while total < steps * b:  # the sampler restarts when it runs out
            part = class_balanced_order(self.current_labels, clean, self.rng)
            parts.append(part)
            total += len(part)
        self._clean_plan = np.concatenate(parts)[: steps * b]
        self._plan_stale = False

    def on_epoch_end(self):
        self._plan_stale = True

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __getitem__(self, index):
        self._draw_plan_if_stale()
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        clean, every = self._clean_plan[part], self._order[part]
        rng = np.random.default_rng([self.augment_seed, self.epoch_draws, index])
        clean_raw, every_raw = self._pixels(clean), self._pixels(every)
        return ({
            "clean_views": np.stack([self._in_own_scale(self._strong(clean_raw, rng)),
                                     self._in_own_scale(self._strong(clean_raw, rng))], 1),
            "clean_labels": self.current_labels[clean].astype(np.int32),
            "clean_quality": self.label_quality[clean, 0],
            "all_views": np.stack([self._in_own_scale(self._weak(every_raw, rng)),
                                   self._in_own_scale(self._strong(every_raw, rng))], 1),
        },)

    def weak_views(self, indices, rng) -> np.ndarray:
        """Weak views of the given samples, in the images' own scale."""
        return self._in_own_scale(self._weak(self._pixels(indices), rng))

    def selection_view(self, batch_size: int = 512) -> SelectionView:
        """All samples in index order, weakly augmented, for the selection pass."""
        return SelectionView(self, batch_size)


class SelectionView(keras.utils.PyDataset):
    """Index-ordered weak views of every sample (the reference selects on weak views)."""

    def __init__(self, source: SSRData, batch_size: int):
        super().__init__()
        self.source, self.batch_size = source, batch_size
        self.draw = source.epoch_draws + 1  # the coming epoch's

    def __len__(self) -> int:
        return math.ceil(len(self.source.images) / self.batch_size)

    def __getitem__(self, index):
        indices = np.arange(index * self.batch_size,
                            min((index + 1) * self.batch_size, len(self.source.images)))
        rng = np.random.default_rng([self.source.augment_seed, self.draw, 1 << 20, index])
        return (self.source.weak_views(indices, rng),)
