"""Data: image folders, noise injection, noise files, sample-indexed training batches, augmentation."""

from keras_sanm.data.augment import weak_augment
from keras_sanm.data.dataset_cache import CachedImages, cache_dataset
from keras_sanm.data.image_files import ImageFiles
from keras_sanm.data.image_folder import LabeledImages, load_image_folder
from keras_sanm.data.indexed_dataset import IndexedDataset
from keras_sanm.data.noise import (
    asymmetric_map,
    inject_noise,
    load_noise_file,
    noise_file_name,
    noisy_labels_from_file,
    save_noise_file,
)
from keras_sanm.data.normalization import NORMALIZATION, normalize_images
from keras_sanm.data.real_noise import (
    NoisyImageSet,
    load_animal10n,
    load_clothing1m,
    load_webvision,
)
from keras_sanm.data.strong_augment import autoaugment_view, randaugment_view, warmup_view
from keras_sanm.methods.dividemix.data import CoDivideData

__all__ = [
    "CachedImages",
    "cache_dataset",
    "CoDivideData",
    "IndexedDataset",
    "LabeledImages",
    "NORMALIZATION",
    "asymmetric_map",
    "autoaugment_view",
    "inject_noise",
    "ImageFiles",
    "load_image_folder",
    "load_animal10n",
    "load_clothing1m",
    "load_webvision",
    "NoisyImageSet",
    "load_noise_file",
    "noise_file_name",
    "noisy_labels_from_file",
    "normalize_images",
    "randaugment_view",
    "save_noise_file",
    "warmup_view",
    "weak_augment",
]
