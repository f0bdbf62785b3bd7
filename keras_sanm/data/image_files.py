"""`ImageFiles`: images on disk used like an array, decoded only when indexed.

Every training wrapper takes `fit(images, labels)` where `images` is a numpy
array *or* an `ImageFiles`. Batches, label quality and evaluation read the
files they need when they need them, so host memory holds a list of paths
and one batch at a time, whatever the size of the dataset. Keras' own
`image_dataset_from_directory` streams a folder too, but as a `tf.data`
pipeline without random access; the methods here keep per-sample state
(label quality, loss history, ELR+ targets) and sample batches by index,
which needs `files[indices]`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from keras_sanm.data.indexing import row_indices

# Decoding threads, shared by every ImageFiles of the process and started at
# the first batch (not one pool per batch): Pillow releases the GIL while it
# decodes.
DECODE_THREADS = 4
_decode_pool: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """The process's decoding pool (a new one in a forked child, whose copy has no threads)."""
    global _decode_pool
    if _decode_pool is None or _decode_pool[0] != os.getpid():
        _decode_pool = (os.getpid(), ThreadPoolExecutor(
            DECODE_THREADS, thread_name_prefix="keras_sanm_decode"))
    return _decode_pool[1]


def _decode(path: str, image_size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image_size is not None and image.size != (image_size[1], image_size[0]):
                image = image.resize((image_size[1], image_size[0]), Image.BILINEAR)
            return np.asarray(image, np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"Image {path} is missing.") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"Cannot read {path} as an image ({error}).") from None


def _header_size(path: str) -> tuple[int, int]:
    """`(height, width)` from the file's header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except FileNotFoundError:
        raise FileNotFoundError(f"Image {path} is missing.") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"Cannot read {path} as an image ({error}).") from None


class ImageFiles:
    """A read-only `(N, H, W, 3)` uint8 array of image files, decoded on access.

    Indexing (`files[i]`, `files[a:b]`, `files[[i, j]]`, `files[mask]`) reads
    and decodes only the files asked for, as RGB uint8, resized to
    `image_size` when given. Pass it to `fit`, `evaluate`, `predict`,
    `label_quality` and `find_label_issues` like a numpy array; memory holds
    the paths, not the pixels. `np.asarray(files)` is refused (it would read
    everything); `files.load()` does that on purpose.

    Args:
        paths: image file paths, absolute or relative to `directory`.
        image_size: `(height, width)` every image is resized to. Without it
            all images must have the size of the first; their headers are
            read once here, so a mismatch or an unreadable file fails now,
            not mid-training. With it nothing is read here (a folder of a
            million files opens at once) and an unreadable file fails, by
            name, when a batch reads it.
        directory: folder the relative paths start from.

    Example:
    >>> files = keras_sanm.data.ImageFiles(["a.jpg", "b.jpg"], (32, 32), "photos")
    >>> files.shape, files[0].dtype
    ((2, 32, 32, 3), dtype('uint8'))
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, paths, image_size: tuple[int, int] | None = None,
                 directory: str | None = None):
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError("ImageFiles needs at least one path.")
        if directory is not None:
            paths = [p if os.path.isabs(p) else os.path.join(directory, p) for p in paths]
        # One bytes array, not a list of str objects: about a byte per character.
        self._paths = np.array([p.encode("utf-8") for p in paths])
        if image_size is not None:
            if len(image_size) != 2 or min(image_size) < 1:
                raise ValueError(f"image_size must be (height, width); got {image_size!r}.")
            self.image_size = (int(image_size[0]), int(image_size[1]))
        else:
            self.image_size = _header_size(paths[0])
            for path in paths[1:]:
                size = _header_size(path)
                if size != self.image_size:
                    raise ValueError(
                        f"{path} is {size} but {paths[0]} is {self.image_size} (height, "
                        "width); pass image_size=(height, width) to resize them all.")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self._paths), *self.image_size, 3)

    @property
    def paths(self) -> list[str]:
        """The file paths, in sample order."""
        return [p.decode("utf-8") for p in self._paths]

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return _decode(self._paths[key].decode("utf-8"), self.image_size)
        indices = row_indices(key, len(self), "ImageFiles")
        paths = [p.decode("utf-8") for p in self._paths[indices]]
        out = np.empty((len(paths), *self.image_size, 3), np.uint8)
        if len(paths) <= 2:
            for i, path in enumerate(paths):
                out[i] = _decode(path, self.image_size)
            return out
        for i, image in enumerate(_pool().map(lambda p: _decode(p, self.image_size), paths)):
            out[i] = image
        return out

    def load(self) -> np.ndarray:
        """Every image as one in-memory uint8 array."""
        return self[:]

    def subset(self, indices) -> ImageFiles:
        """The files at `indices` (an index array or slice), still on disk.

        Example:
        >>> first_thousand = files.subset(slice(0, 1000))
        """
        chosen = self._paths[indices]
        subset = ImageFiles.__new__(ImageFiles)
        subset._paths, subset.image_size = np.atleast_1d(chosen), self.image_size
        if len(subset._paths) == 0:
            raise ValueError("ImageFiles.subset needs at least one index.")
        return subset

    def __array__(self, dtype=None, copy=None):
        height, width = self.image_size
        raise TypeError(
            f"ImageFiles reads images when indexed; converting all {len(self)} to one array "
            f"({len(self) * height * width * 3 / 2**30:.2f} GiB) is refused. Pass the "
            "ImageFiles itself, index it (files[indices]), or call files.load().")

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} images of {self.image_size[0]}x{self.image_size[1]})"


class ImageBatches(keras.utils.PyDataset):
    """Consecutive batches of an array-like of images (and labels), for Keras'
    `predict`/`evaluate`, which take numpy arrays but not array-likes.

    Args:
        images: `(N, H, W, C)` array-like, e.g. an `ImageFiles`.
        labels: optional `(N,)` labels, yielded as `(images, labels)`.
        batch_size: images per batch (the last one partial).
    """

    def __init__(self, images, labels=None, batch_size: int | None = None):
        super().__init__()
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size or 32)

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        images = np.asarray(self.images[part])
        if self.labels is None:
            return (images,)
        return images, np.asarray(self.labels[part])
