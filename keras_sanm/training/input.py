"""`InputPipeline`: what `fit`, `evaluate` and `predict` accept, checked and wrapped."""

from __future__ import annotations

import keras
import numpy as np

from keras_sanm.data.dataset_cache import cache_dataset
from keras_sanm.data.image_files import ImageBatches
from keras_sanm.data.indexed_dataset import IndexedDataset
from keras_sanm.data.validation import (
    check_class_count,
    check_dataset_batch,
    check_images,
    check_labels,
    is_dataset,
    is_image_array,
    is_lazy_images,
    leading_images,
)
from keras_sanm.messages import inform


class InputPipeline:
    """The input side of a `NoisyLabelTrainer`, held by it as `model.input_pipeline`.

    Checks numpy arrays, `ImageFiles`, `IndexedDataset`, `tf.data.Dataset`
    and `keras.utils.PyDataset` before any step, wraps them into what the
    step consumes, and decides the model's input preprocessing at the first
    `fit`. It reads the model's constructor settings (`num_classes`,
    `image_shape`, `augment`, `seed`, `preprocessing`) and the method's
    class attributes (`needs_sample_indices`, `method_name`).

    Args:
        model: the training wrapper it feeds.

    Example:
    >>> source = model.input_pipeline.training_source(x, y, 64, shuffle=True)
    """

    def __init__(self, model):
        self.model = model
        # The last dataset read into an on-disk copy, and that copy.
        self._held_cache = None

    def training_source(self, x, y, batch_size, shuffle, verbose=1):
        """Wraps `fit`'s input into what the step consumes, after checking it.

        `verbose` 0 hides the progress bar of a dataset's on-disk copy."""
        if batch_size is not None and (isinstance(x, IndexedDataset) or is_dataset(x)):
            raise ValueError("batch_size is set by the dataset; pass it only with arrays.")
        if isinstance(x, IndexedDataset):
            if y is not None:
                raise ValueError("Pass labels inside the IndexedDataset, not as `y`.")
            check_class_count(x.num_classes, self.model.num_classes)
            check_labels(x.labels, None, self.model.num_classes)
        else:
            if is_dataset(x):
                if y is not None:
                    raise ValueError("A dataset yields its own labels; do not pass `y`.")
                if not self.model.needs_sample_indices:
                    self.decide_preprocessing(self.first_images(x))
                    return x
                x, y, batch_size = self.identified_samples(x, verbose=verbose)
            if not is_image_array(x) and y is None:
                raise ValueError(
                    "fit() takes numpy arrays `fit(x, y)`, a keras_sanm.data.IndexedDataset, "
                    "or a tf.data.Dataset / keras.utils.PyDataset of (x, y); got "
                    f"{type(x).__name__}."
                )
            if y is None:
                raise ValueError("fit(x, y) needs labels `y` with numpy images.")
            # IndexedDataset checks the arrays (rank, NaN/Inf, labels) once.
            x = IndexedDataset(
                x, y, batch_size or 32, num_classes=self.model.num_classes,
                augment=self.model.augment, shuffle=shuffle, seed=self.model.seed,
            )
        check_images(x.images[:1], self.model.image_shape)
        self.decide_preprocessing(x.images)
        self.prepare_label_quality(x)
        return x

    def identified_samples(self, dataset, y=None, batch_size=None, verbose=1):
        """`(images, labels, batch_size)` of an `(x, y)` dataset, with sample identities.

        Methods with per-sample state read a `tf.data.Dataset` or
        `keras.utils.PyDataset` once into an on-disk copy
        (`keras_sanm.data.cache_dataset`): sample `i` is the `i`-th image of
        that pass. The batch size is the dataset's (its first batch). A
        later `fit` on the same dataset object reuses the copy. `y` and
        `batch_size` (what `fit` was given besides) must be `None`;
        `verbose` 0 hides the copy's progress bar (`fit(verbose=0)`).
        """
        if y is not None or batch_size is not None:
            raise ValueError("A dataset carries its labels and batch size; pass neither "
                             "`y` nor `batch_size`.")
        cached = self._held_cache
        if cached is not None and cached[0] is dataset:
            return cached[1]
        inform(f"method={self.model.method_name!r} keeps per-sample state, so the training dataset "
               "is read once into an on-disk copy (sample i = the i-th image of this pass; "
               "keras_sanm.data.cache_dataset).")
        images, labels = cache_dataset(dataset, image_shape=self.model.image_shape,
                                       num_classes=self.model.num_classes,
                                       verbose=0 if verbose == 0 else 1)
        batch_size = min(images.source_batch_size, len(labels))
        inform(f"{len(labels)} training samples of shape {images.shape[1:]}, in batches of "
               f"{batch_size} (the dataset's).")
        self._held_cache = (dataset, (images, labels, batch_size))
        return images, labels, batch_size

    def decide_preprocessing(self, images) -> None:
        """Fixes the input preprocessing from training images at the first `fit`.

        Later fits check the images against the decision instead. What was
        inferred is reported once (`keras_sanm.messages.inform`: printed
        unless the `fit` has `verbose=0`).

        Args:
            images: `(N, H, W, C)` training images, or a sample of them.
        """
        message = self.model.preprocessing.decide(images)
        if message:
            inform(message)

    def first_images(self, dataset, count: int = 1024) -> np.ndarray:
        """The images of a dataset's first batches (at least `count` where it has
        them), each batch checked as `(images, labels)` before training starts."""
        return leading_images(
            (images for images, _ in self.iterate_batches(dataset, checked=True)), count)

    def check_input_images(self, x, what: str = "images") -> None:
        """Refuses images (an array or the first batch of a dataset) of another scale
        than the model was trained on, before any step; a model used before any
        `fit` fixes its preprocessing from them instead."""
        if x is None:
            return
        if is_dataset(x) and not isinstance(x, IndexedDataset):
            batch = x[0] if isinstance(x, keras.utils.PyDataset) else next(iter(x))
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            x = keras.ops.convert_to_numpy(x)
        elif isinstance(x, IndexedDataset):
            x = x.images
        if hasattr(x, "shape") and len(x.shape) == 4:
            if not self.model.preprocessing.decided:
                # Used before any fit: these images fix it, as a first fit would.
                self.decide_preprocessing(x)
                return
            self.model.preprocessing.check(x, what)

    def decide_preprocessing_from_batch(self, batch) -> None:
        """Before any `fit`, the first image tensor of `batch` fixes the preprocessing."""
        if not self.model.preprocessing.decided:
            images = next((np.asarray(t) for t in keras.tree.flatten(batch)
                           if len(np.shape(t)) >= 4), None)
            if images is not None:
                self.decide_preprocessing(images.reshape((-1, *images.shape[-3:])))

    def check_validation_data(self, validation_data) -> None:
        """`check_input_images` for `fit`'s `validation_data` (arrays or a dataset)."""
        if validation_data is not None:
            self.check_input_images(validation_data[0] if isinstance(validation_data, (tuple, list))
                              else validation_data, "validation images")

    def keras_readable(self, x, y=None, batch_size=None):
        """`(x, y, batch_size)` as Keras' own loops read them.

        Keras reads numpy arrays and datasets but not array-likes read on
        access (`keras_sanm.data.ImageFiles`): those become `ImageBatches` of
        `batch_size` images (with their checked labels), which carry `y` and
        the batch size themselves. Anything else passes through.
        """
        if not is_lazy_images(x):
            return x, y, batch_size
        labels = None if y is None else check_labels(y, len(x), self.model.num_classes)
        return ImageBatches(x, labels, batch_size), None, None

    def prepare_label_quality(self, source) -> None:
        """Gives an `IndexedDataset` one `label_quality` column per network (1 = clean).

        A step of a two-network method reads its peer's column.
        """
        members = len(self.model.quality_members())
        if source.label_quality.shape[1] != members:
            source.label_quality = np.ones((len(source.images), members), np.float32)

    def iterate_batches(self, dataset, checked: bool = False):
        """`(images, labels)` numpy batches of an `(x, y)` dataset, one pass
        (each checked by `check_dataset_batch` when `checked`)."""
        if isinstance(dataset, keras.utils.PyDataset):
            batches = (dataset[i] for i in range(len(dataset)))
        else:
            batches = iter(dataset)
        for batch in batches:
            if checked:
                yield check_dataset_batch(batch, self.model.image_shape, self.model.num_classes)
            else:
                images, labels = batch
                yield keras.ops.convert_to_numpy(images), keras.ops.convert_to_numpy(labels)
