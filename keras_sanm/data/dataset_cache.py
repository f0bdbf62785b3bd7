"""`cache_dataset`: a dataset of `(images, labels)` batches read once into an
on-disk array with sample identities.

DivideMix, ELR+ and SANM(Co-teaching) keep state per training sample (clean
probabilities, loss history, ensemble targets) and draw their batches by
sample index: DivideMix's labeled and unlabeled parts are fixed-size draws
from two index sets that change every epoch. A `tf.data.Dataset` or a
`keras.utils.PyDataset` can only be iterated, and a pipeline that reshuffles
gives no stable order to key state by. So such a dataset is read once, in
its own order, into one uncompressed file; sample `i` is the `i`-th image of
that pass and every later read is a random access into the file. Host memory
holds the labels and one batch; the file is anonymous (removed when the
images are no longer used, or when the process ends, even after a crash).
`tf.data.Dataset.cache(filename)` does the same for a pipeline, but without
random access, which the methods' sampling needs.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras
import numpy as np

from keras_sanm.data.indexing import row_indices
from keras_sanm.data.validation import check_dataset_batch


class CachedImages:
    """A read-only `(N, H, W, C)` array of images stored row by row in a file.

    Indexing (`images[i]`, `images[a:b]`, `images[[i, j]]`, `images[mask]`)
    reads only the rows asked for; memory holds no pixels. Made by
    `cache_dataset`; passed to `fit`, `evaluate`, `predict` and
    `label_quality` like a numpy array. `np.asarray(images)` is refused
    (it would read everything); `images.load()` does that on purpose.

    Args:
        file: an open binary file (kept open; closed with the object).
        shape: `(N, H, W, C)`.
        dtype: pixel dtype of the rows.
        source_batch_size: images per batch of the dataset it was read from.
    """

    ndim = 4
    # Every batch was checked for NaN and Inf when the file was written.
    checked_finite = True

    def __init__(self, file, shape: tuple[int, int, int, int], dtype,
                 source_batch_size: int | None = None):
        self._file = file
        self.source_batch_size = source_batch_size
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self._row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        # A subset (`subset`) reads its rows through the images it was taken from.
        self._parent, self._file_rows = None, None

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, start: int, count: int) -> np.ndarray:
        data = os.pread(self._file.fileno(), count * self._row_bytes, start * self._row_bytes)
        return np.frombuffer(data, self.dtype).reshape((count, *self.shape[1:]))

    def __getitem__(self, key) -> np.ndarray:
        if self._file_rows is not None:  # a subset: every row read where it lies
            if isinstance(key, (int, np.integer)):
                return self._parent[int(self._file_rows[row_indices([key], len(self),
                                                                    "CachedImages")[0]])]
            return self._parent[self._file_rows[row_indices(key, len(self), "CachedImages")]]
        if isinstance(key, (int, np.integer)):
            index = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"Index {key} is out of range for {len(self)} images.")
            return self._rows(index, 1)[0].copy()
        if isinstance(key, slice) and key.indices(len(self))[2] == 1:  # one read
            start, stop, _ = key.indices(len(self))
            return self._rows(start, max(0, stop - start)).copy()
        indices = row_indices(key, len(self), "CachedImages")
        out = np.empty((len(indices), *self.shape[1:]), self.dtype)
        for i, index in enumerate(indices):
            out[i] = self._rows(int(index), 1)[0]
        return out

    def subset(self, indices) -> CachedImages:
        """The images at `indices` (an index array, mask or slice), still in the file.

        Example:
        >>> held_out = images.subset(np.arange(0, len(images), 5))
        """
        rows = row_indices(indices, len(self), "CachedImages")
        if len(rows) == 0:
            raise ValueError("CachedImages.subset needs at least one index.")
        parent = self if self._file_rows is None else self._parent
        chosen = rows if self._file_rows is None else self._file_rows[rows]
        subset = CachedImages(self._file, (len(chosen), *self.shape[1:]), self.dtype,
                              self.source_batch_size)
        subset._parent, subset._file_rows = parent, chosen
        return subset

    def load(self) -> np.ndarray:
        """Every image as one in-memory array."""
        return self[:]

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"CachedImages reads images when indexed; converting all {len(self)} to one "
            f"array ({len(self) * self._row_bytes / 2**30:.2f} GiB) is refused. Pass it "
            "as it is, index it (images[indices]), or call images.load().")

    def __repr__(self) -> str:
        return f"CachedImages({self.shape[0]} images of shape {self.shape[1:]}, {self.dtype})"


def _batches(dataset):
    if isinstance(dataset, keras.utils.PyDataset):
        return (dataset[i] for i in range(len(dataset))), len(dataset)
    count = None
    cardinality = getattr(dataset, "cardinality", None)
    if cardinality is not None:
        count = int(cardinality())
        if count == -1:  # tf.data.INFINITE_CARDINALITY
            raise ValueError(
                "The dataset repeats forever; pass one that ends after one pass over the "
                "training samples (no .repeat()).")
        count = count if count > 0 else None
    return iter(dataset), count


def cache_dataset(dataset, directory: str | None = None, image_shape: tuple | None = None,
                  num_classes: int | None = None, verbose: int = 1):
    """Reads a dataset of `(images, labels)` batches once into `CachedImages`.

    Sample `i` is the `i`-th image of this one pass, whatever the dataset
    does in later passes (a pipeline that reshuffles is fine; random
    augmentation inside it is frozen as read: leave augmentation to the
    method). Every batch is checked (rank, shape, dtype, finiteness, labels)
    as it is read.

    Args:
        dataset: a `tf.data.Dataset` or `keras.utils.PyDataset` yielding
            `(images, labels)` batches, finite.
        directory: folder of the (anonymous) file; default the system's
            temporary folder (`TMPDIR`).
        image_shape: expected `(H, W, C)` per image (entries may be `None`).
        num_classes: labels must be below it when given.
        verbose: 1 shows a progress bar, 0 nothing.

    Returns:
        `(images, labels)`: `CachedImages` of the pixels as the dataset
        yields them (same dtype) and `(N,)` int64 labels.

    Example:
    >>> images, labels = keras_sanm.data.cache_dataset(tf_dataset)
    >>> model.label_quality(images, labels)
    """
    directory = directory or tempfile.gettempdir()
    file = tempfile.TemporaryFile(dir=directory)
    batches, count = _batches(dataset)
    progress = keras.utils.Progbar(count, unit_name="batch") if verbose else None
    labels, shape, dtype, written = [], None, None, 0
    try:
        for step, batch in enumerate(batches):
            images, batch_labels = check_dataset_batch(batch, image_shape, num_classes)
            if shape is None:
                shape, dtype, first = images.shape[1:], images.dtype, len(images)
            elif images.shape[1:] != shape or images.dtype != dtype:
                raise ValueError(
                    f"Batch {step} holds {images.dtype} images of shape {images.shape[1:]}; "
                    f"the first held {dtype} of {shape}. Every batch must match.")
            data = np.ascontiguousarray(images).tobytes()
            free = shutil.disk_usage(directory).free
            if free < len(data) + 2**28:
                raise OSError(
                    f"The on-disk copy of the dataset needs more space than {directory} has "
                    f"({written / 2**30:.2f} GiB written, {free / 2**30:.2f} GiB free). Pass a "
                    "folder with room, or give the images as keras_sanm.data.ImageFiles "
                    "(read from their own files, no copy).")
            file.write(data)
            written += len(data)
            labels.append(batch_labels)
            if progress is not None:
                progress.update(step + 1)
    except BaseException:
        file.close()
        raise
    if shape is None:
        file.close()
        raise ValueError("The dataset yields no batches.")
    file.flush()
    labels = np.concatenate(labels).astype(np.int64)
    return CachedImages(file, (len(labels), *shape), dtype, first), labels
