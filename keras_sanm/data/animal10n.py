"""`load_animal10n`: ANIMAL-10N in its published layout, read from disk batch by batch."""

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
    """

    name: str
    x_train: ImageFiles
    noisy_train: np.ndarray
    x_test: ImageFiles
    y_test: np.ndarray
    class_names: tuple[str, ...]

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
