"""Input checks shared by the public entry points; each failure says what to do."""

from __future__ import annotations

import numpy as np


def is_lazy_images(x) -> bool:
    """Whether `x` is a rank-4 array-like of images read on access (e.g.
    `keras_sanm.data.ImageFiles`), not a numpy array or a backend tensor."""
    return (not isinstance(x, np.ndarray) and hasattr(x, "__getitem__")
            and hasattr(x, "dtype") and len(getattr(x, "shape", ()) or ()) == 4
            and not hasattr(x, "numpy") and not hasattr(x, "device"))


def is_dataset(x) -> bool:
    """Whether `x` is a `keras.utils.PyDataset` or a `tf.data.Dataset` (iterated, not indexed)."""
    import keras

    return isinstance(x, keras.utils.PyDataset) or hasattr(x, "element_spec")


def check_dataset_batch(batch, image_shape: tuple | None = None,
                        num_classes: int | None = None):
    """`(images, labels)` of one batch of a dataset, as numpy, checked.

    Args:
        batch: what the dataset yields, `(images, labels)`.
        image_shape: expected `(H, W, C)` (entries may be `None`).
        num_classes: labels must be below it when given.

    Returns:
        `(images, labels)`: `(B, H, W, C)` images and `(B,)` int64 labels.

    Raises:
        ValueError: not a pair, single images (an unbatched dataset), or
            images and labels that `check_images` / `check_labels` refuse.
    """
    import keras

    if isinstance(batch, dict):
        raise ValueError(
            f"The dataset yields dicts (keys {sorted(batch)}), not (images, labels) pairs: "
            "load a tfds dataset with as_supervised=True, or map it, e.g. "
            "dataset.map(lambda d: (d['image'], d['label'])).")
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("The dataset must yield (images, labels) pairs; got "
                         f"{type(batch).__name__}"
                         + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                         + ".")
    images = keras.ops.convert_to_numpy(batch[0])
    if images.ndim == 3 and np.ndim(keras.ops.convert_to_numpy(batch[1])) == 0:
        raise ValueError("The dataset yields single images, not batches: batch it first "
                         "(e.g. dataset.batch(64)).")
    images = check_images(images, image_shape)
    labels = keras.ops.convert_to_numpy(batch[1])
    labels = check_labels(labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1
                          else labels, len(images), num_classes)
    return images, labels


def leading_images(image_batches, count: int = 1024) -> np.ndarray:
    """The images of the first batches of an iterator, at least `count` where it has them.

    Args:
        image_batches: an iterator of `(B, H, W, C)` numpy batches (checked by the caller).
        count: how many images are enough.

    Returns:
        The batches concatenated.

    Raises:
        ValueError: the iterator yields no batch.
    """
    parts, total = [], 0
    for images in image_batches:
        parts.append(images)
        total += len(images)
        if total >= count:
            break
    if not parts:
        raise ValueError("The dataset yields no batches.")
    return np.concatenate(parts)


def is_image_array(x) -> bool:
    """A numpy array or an array-like read on access (`is_lazy_images`)."""
    return isinstance(x, np.ndarray) or is_lazy_images(x)


def check_images(images, image_shape: tuple | None = None) -> np.ndarray:
    """Returns `images` as an array after checking rank, dtype, shape and finiteness.

    An array-like read on access (`keras_sanm.data.ImageFiles`) is returned
    as it is, after the same checks on its shape and dtype; its finiteness is
    scanned too unless it says it was checked when written
    (`checked_finite`, e.g. `keras_sanm.data.CachedImages`).

    Args:
        images: `(N, H, W, C)` array-like.
        image_shape: expected `(H, W, C)` (entries may be `None`).

    Raises:
        ValueError: wrong rank or shape, non-numeric, NaN or Inf values.
    """
    if not is_lazy_images(images):
        images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"Images must have shape (samples, height, width, channels); got an "
            f"array of rank {images.ndim} with shape {images.shape}. Add a channel "
            "axis for grayscale images (x[..., None])."
        )
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"Images must be numeric; got dtype {images.dtype}.")
    if image_shape is not None:
        for got, want in zip(images.shape[1:], image_shape):
            if want is not None and got != want:
                raise ValueError(
                    f"Images have shape {images.shape[1:]} per sample but the model "
                    f"expects {tuple(image_shape)}."
                )
    if np.issubdtype(images.dtype, np.floating) and not getattr(images, "checked_finite", False):
        for start in range(0, len(images), 4096):
            chunk = images[start : start + 4096].reshape(-1, int(np.prod(images.shape[1:])))
            finite = np.isfinite(chunk).all(axis=1)
            if not finite.all():
                raise ValueError(
                    f"Images contain NaN or Inf values (first at sample "
                    f"{start + int(np.argmin(finite))}); clean or drop those samples."
                )
    return images


def check_labels(labels, num_samples: int | None = None, num_classes: int | None = None):
    """Returns integer labels `(N,)` after checking dtype, shape, length and range.

    Args:
        labels: array-like of integer class ids.
        num_samples: expected length (the number of images).
        num_classes: labels must lie in `[0, num_classes)`.

    Raises:
        ValueError: float or non-integer labels, wrong shape or length,
            negative or too large values.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"Labels must be a 1-D array of integer class ids; got shape "
            f"{labels.shape}. For one-hot labels pass labels.argmax(axis=1)."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Labels must be integers (class ids); got dtype {labels.dtype}. "
            "Convert them with labels.astype('int64') if they are whole numbers."
        )
    if num_samples is not None and len(labels) != num_samples:
        raise ValueError(
            f"Got {len(labels)} labels for {num_samples} images; they must match."
        )
    if len(labels) and labels.min() < 0:
        raise ValueError(f"Labels must be >= 0; found {labels.min()}.")
    if num_classes is not None and len(labels) and labels.max() >= num_classes:
        raise ValueError(
            f"Label {labels.max()} is out of range for {num_classes} classes "
            f"(labels must be in [0, {num_classes - 1}]). Does the model's output "
            "size match the dataset's number of classes?"
        )
    return labels.astype(np.int64)


def check_class_count(data_classes: int, model_classes: int) -> None:
    """Refuses training data with more classes than the model outputs.

    Args:
        data_classes: classes of the training data (its `num_classes`).
        model_classes: the model's output size.

    Raises:
        ValueError: naming both counts and how to build a matching model.
    """
    if data_classes > model_classes:
        raise ValueError(
            f"The training data has {data_classes} classes but the model outputs "
            f"{model_classes}. Build the model for {data_classes} classes (e.g. "
            f"keras_sanm.backbones.get(name, num_classes={data_classes}, input_shape=...)) "
            "or drop the extra classes from the data."
        )
