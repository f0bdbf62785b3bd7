"""Real-world noisy datasets in their published layouts, read from disk batch by batch:
`load_animal10n`, `load_clothing1m`, `load_webvision` (mini-WebVision)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from keras_sanm.data.image_files import ImageFiles

# Class ids of ANIMAL-10N: five pairs of look-alike animals.
ANIMAL10N_CLASSES = ("cat", "lynx", "wolf", "coyote", "cheetah", "jaguar", "chimpanzee",
                     "orangutan", "hamster", "guinea pig")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass
class NoisyImageSet:
    """A dataset whose training labels are noisy and whose true labels are unknown.

    Attributes:
        name: dataset name.
        x_train, x_test: images (`ImageFiles`, decoded when indexed).
        noisy_train: `(N,)` the given training labels (some wrong, which ones unknown).
        y_test: `(M,)` the test labels.
        class_names: name of each class id.
        x_val, y_val: a clean validation split where the dataset has one.
    """

    name: str
    x_train: ImageFiles
    noisy_train: np.ndarray
    x_test: ImageFiles
    y_test: np.ndarray
    class_names: tuple[str, ...]
    x_val: ImageFiles | None = None
    y_val: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _labeled_files(folder: str) -> tuple[list[str], np.ndarray]:
    """Image files of one split in name order, with the label each name starts with."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"No folder {folder}: ANIMAL-10N unpacks into training/ and testing/.")
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        raise ValueError(f"{folder} holds no images.")
    labels = []
    for name in names:
        head = name.split("_", 1)[0]
        if not head.isdigit() or int(head) >= len(ANIMAL10N_CLASSES):
            raise ValueError(
                f"{os.path.join(folder, name)}: ANIMAL-10N names its images "
                "<label>_<number>.jpg with a label in 0-9.")
        labels.append(int(head))
    return [os.path.join(folder, n) for n in names], np.array(labels, np.int64)


def load_animal10n(directory: str) -> NoisyImageSet:
    """ANIMAL-10N (50,000 training and 5,000 test 64x64 images, about 8% wrong
    labels) from its published folders, kept on disk.

    The archive unpacks into `training/` and `testing/`; each image is named
    `<label>_<number>.jpg`, and that label is the only one given. Nothing is
    decoded here: the images are `ImageFiles` of 64x64 RGB, read batch by
    batch when training.

    Args:
        directory: the folder holding `training/` and `testing/`.

    Returns:
        A `NoisyImageSet` (training and test images in file-name order).

    Raises:
        FileNotFoundError: a missing split folder.
        ValueError: an empty folder or a file name without a label.

    Example:
    >>> data = keras_sanm.data.load_animal10n("animal10n")
    >>> model = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10, (64, 64, 3)))
    >>> model.fit(data.x_train, data.noisy_train, validation_data=(data.x_test, data.y_test))
    """
    train_files, train_labels = _labeled_files(os.path.join(directory, "training"))
    test_files, test_labels = _labeled_files(os.path.join(directory, "testing"))
    return NoisyImageSet(
        "animal10n", ImageFiles(train_files, (64, 64)), train_labels,
        ImageFiles(test_files, (64, 64)), test_labels, ANIMAL10N_CLASSES,
    )


def _key_labels(path: str) -> dict[str, int]:
    """`<image key> <label>` lines of a Clothing1M label file."""
    labels = {}
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(f"{path}, line {number}: expected '<image path> <label>'.")
            labels[parts[0]] = int(parts[1])
    return labels


def _files(keys: list[str], labels: list[int], root: str, listed_in: str,
           image_size) -> tuple[ImageFiles, np.ndarray]:
    """Listed images (the first checked on disk, the rest read when used) and their labels."""
    if not os.path.exists(os.path.join(root, keys[0])):
        raise FileNotFoundError(f"{listed_in} lists {keys[0]!r}, which is not in {root}.")
    return ImageFiles(keys, image_size, root), np.array(labels, np.int64)


def _split(directory: str, key_list: str, labels: dict[str, int], labels_file: str,
           image_size) -> tuple[ImageFiles, np.ndarray]:
    path = os.path.join(directory, key_list)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {key_list} in {directory} (Clothing1M's key lists).")
    with open(path) as f:
        keys = [line.strip() for line in f if line.strip()]
    missing = [k for k in keys if k not in labels]
    if missing:
        raise ValueError(f"{len(missing)} image(s) of {key_list} have no label in "
                         f"{labels_file} (e.g. {missing[0]!r}).")
    return _files(keys, [labels[k] for k in keys], directory, key_list, image_size)


def load_clothing1m(directory: str, image_size: tuple[int, int] = (224, 224)) -> NoisyImageSet:
    """Clothing1M (about a million web images of 14 clothing classes with noisy
    labels; clean validation and test sets) from its published files, kept on disk.

    Reads `noisy_label_kv.txt` and `clean_label_kv.txt` (`<image path> <label>`
    per line), the noisy training keys `noisy_train_key_list.txt` and the
    clean `clean_val_key_list.txt` and `clean_test_key_list.txt`; the paths
    (`images/0/...jpg`) are relative to `directory`. Class names come from
    `category_names_eng.txt` when present. Images are resized to
    `image_size` when read (the reference resizes to 256 and crops 224).

    Args:
        directory: the Clothing1M folder.
        image_size: `(height, width)` of the images handed to the model.

    Returns:
        A `NoisyImageSet` with the noisy training set, the clean validation
        set (`x_val`, `y_val`) and the clean test set.

    Example:
    >>> data = keras_sanm.data.load_clothing1m("clothing1m")
    >>> data.x_train.shape
    (1000000, 224, 224, 3)
    """
    for name in ("noisy_label_kv.txt", "clean_label_kv.txt"):
        if not os.path.exists(os.path.join(directory, name)):
            raise FileNotFoundError(f"No {name} in {directory} (Clothing1M's label files).")
    noisy = _key_labels(os.path.join(directory, "noisy_label_kv.txt"))
    clean = _key_labels(os.path.join(directory, "clean_label_kv.txt"))
    x_train, y_train = _split(directory, "noisy_train_key_list.txt", noisy,
                              "noisy_label_kv.txt", image_size)
    x_val, y_val = _split(directory, "clean_val_key_list.txt", clean, "clean_label_kv.txt",
                          image_size)
    x_test, y_test = _split(directory, "clean_test_key_list.txt", clean, "clean_label_kv.txt",
                            image_size)
    names_file = os.path.join(directory, "category_names_eng.txt")
    if os.path.exists(names_file):
        with open(names_file) as f:
            names = tuple(line.strip() for line in f if line.strip())
    else:
        names = tuple(str(i) for i in range(14))
    top = max(int(labels.max()) for labels in (y_train, y_val, y_test))
    if top >= len(names):
        raise ValueError(f"Label {top} is out of range for Clothing1M's {len(names)} classes.")
    return NoisyImageSet("clothing1m", x_train, y_train, x_test, y_test, names, x_val, y_val)


def _listed(list_file: str, image_root: str, num_classes: int, image_size):
    """Images of a `<path> <label>` list with a label below `num_classes`, in list order."""
    if not os.path.exists(list_file):
        raise FileNotFoundError(f"No {list_file} (WebVision's info/ lists).")
    labels = _key_labels(list_file)
    kept = [(path, label) for path, label in labels.items() if label < num_classes]
    if not kept:
        raise ValueError(f"{list_file} lists no image of the first {num_classes} classes.")
    return _files([p for p, _ in kept], [label for _, label in kept], image_root, list_file,
                  image_size)


def load_webvision(directory: str, num_classes: int = 50,
                   image_size: tuple[int, int] = (299, 299)) -> NoisyImageSet:
    """Mini-WebVision: the Google images of WebVision 1.0's first `num_classes`
    classes (web labels, noisy), with WebVision's clean validation set as the
    test set, from its published lists, kept on disk.

    Reads `info/train_filelist_google.txt` (`<path> <label>`, paths relative to
    `directory`) and `info/val_filelist.txt` (images in `val_images_256/`),
    keeping the classes below `num_classes` (50 in DivideMix's and SANM's
    setting). Images are resized to `image_size` when read (the reference
    crops 299 from 320 for Inception-ResNet-v2). The ImageNet validation set
    that papers also report is not part of this layout.

    Args:
        directory: the WebVision folder (with `info/`, `google/`, `val_images_256/`).
        num_classes: keep the classes `0 .. num_classes - 1`.
        image_size: `(height, width)` of the images handed to the model.

    Returns:
        A `NoisyImageSet`; class names are the class ids.

    Example:
    >>> data = keras_sanm.data.load_webvision("webvision")
    >>> data.num_classes
    50
    """
    if not 1 <= num_classes <= 1000:
        raise ValueError(f"num_classes must be in 1..1000; got {num_classes}.")
    x_train, y_train = _listed(os.path.join(directory, "info", "train_filelist_google.txt"),
                               directory, num_classes, image_size)
    x_test, y_test = _listed(os.path.join(directory, "info", "val_filelist.txt"),
                             os.path.join(directory, "val_images_256"), num_classes, image_size)
    names = tuple(str(i) for i in range(num_classes))
    return NoisyImageSet("webvision", x_train, y_train, x_test, y_test, names)
