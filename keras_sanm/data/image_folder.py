"""`load_image_folder`: your own images, listed with their (possibly wrong) labels in a CSV."""

from __future__ import annotations

import csv
import dataclasses
import os
import warnings

import numpy as np

from keras_sanm.data.image_files import ImageFiles

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclasses.dataclass
class LabeledImages:
    """Images with their given labels.

    Attributes:
        images: `(N, H, W, 3)` uint8: an array, or a
            `keras_sanm.data.ImageFiles` read from disk on access.
        labels: `(N,)` int64 class ids, as given (possibly wrong).
        class_names: name of each class id.
        files: path of each image, relative to the folder.
    """

    images: np.ndarray | ImageFiles
    labels: np.ndarray
    class_names: list[str]
    files: list[str]


def _read_rows(labels_file: str) -> list[tuple[str, str]]:
    with open(labels_file, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if "filename" not in columns or "label" not in columns:
            raise ValueError(
                f"{labels_file} must be a CSV with a header naming the columns `filename` "
                f"and `label`; its header is {reader.fieldnames}."
            )
        reader.fieldnames = columns
        rows = [((row["filename"] or "").strip(), (row["label"] or "").strip()) for row in reader]
    if not rows:
        raise ValueError(f"{labels_file} lists no images.")
    for line, (name, label) in enumerate(rows, start=2):
        if not name or not label:
            raise ValueError(f"{labels_file}, line {line}: empty filename or label.")
    seen = set()
    for name, _ in rows:
        if name in seen:
            raise ValueError(f"{labels_file} lists {name!r} twice.")
        seen.add(name)
    return rows


def _class_ids(labels: list[str], class_names: list[str] | None):
    if class_names is not None:
        index = {name: i for i, name in enumerate(class_names)}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise ValueError(f"Labels {unknown[:5]} are not in class_names {class_names}.")
        return np.array([index[label] for label in labels], np.int64), list(class_names)
    if all(label.isdigit() for label in labels):
        ids = np.array([int(label) for label in labels], np.int64)
        return ids, [str(i) for i in range(int(ids.max()) + 1)]
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], np.int64), names


# Folders whose decoded images would take more than this stay on disk
# (`lazy=None`): an `ImageFiles` decodes each batch when it is read.
IN_MEMORY_LIMIT_BYTES = 2 * 2**30


def load_image_folder(directory: str, labels_file: str = "labels.csv",
                      image_size: tuple[int, int] | None = None,
                      class_names: list[str] | None = None,
                      lazy: bool | None = None) -> LabeledImages:
    """Loads the images listed in a labels CSV, with their labels.

    The CSV has a header with the columns `filename` (a path relative to
    `directory`) and `label` (a class name, or an integer class id). Class
    ids are the positions in `class_names`, else the sorted class names, or
    the integers themselves.

    Args:
        directory: folder holding the images.
        labels_file: the CSV, a path relative to `directory` or absolute.
        image_size: `(height, width)` to resize every image to; without it
            all images must have the same size.
        class_names: the classes in id order (to fix ids across folders).
        lazy: `True` keeps the images on disk (`images` is a
            `keras_sanm.data.ImageFiles`, decoded batch by batch in training,
            so memory does not grow with the folder); `False` decodes them
            all now into one array; `None` (default) keeps them on disk when
            the decoded images would take more than 2 GiB.

    Returns:
        A `LabeledImages` (RGB uint8 images, in the order of the CSV).

    Raises:
        FileNotFoundError: a missing folder, CSV or listed image.
        ValueError: a malformed CSV, an unreadable image, an unknown label,
            or images of different sizes without `image_size`.

    Example:
    >>> data = keras_sanm.data.load_image_folder("my_images", "labels.csv", (64, 64))
    >>> model.fit(data.images, data.labels, epochs=30)
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No image folder at {directory}.")
    labels_path = labels_file if os.path.isabs(labels_file) else os.path.join(directory, labels_file)
    if not os.path.exists(labels_path):
        raise FileNotFoundError(
            f"No labels file at {labels_path}: write a CSV with the columns filename,label."
        )
    rows = _read_rows(labels_path)
    for name, _ in rows:
        if not os.path.exists(os.path.join(directory, name)):
            raise FileNotFoundError(f"{labels_path} lists {name!r}, which is not in {directory}.")
    files = ImageFiles([name for name, _ in rows], image_size, directory)
    if lazy is None:
        lazy = len(files) * int(np.prod(files.shape[1:])) > IN_MEMORY_LIMIT_BYTES
    listed = {os.path.normpath(name) for name, _ in rows}
    unlisted = [
        os.path.relpath(os.path.join(root, f), directory)
        for root, _, names in os.walk(directory) for f in names
        if f.lower().endswith(IMAGE_EXTENSIONS)
        and os.path.normpath(os.path.relpath(os.path.join(root, f), directory)) not in listed
    ]
    if unlisted:
        warnings.warn(
            f"{len(unlisted)} image(s) in {directory} are not in {labels_file} and were not "
            f"loaded (e.g. {unlisted[0]!r}).", stacklevel=2,
        )
    labels, names = _class_ids([label for _, label in rows], class_names)
    return LabeledImages(files if lazy else files.load(), labels, names,
                         [name for name, _ in rows])
