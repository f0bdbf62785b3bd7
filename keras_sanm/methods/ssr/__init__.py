"""SSR and SANM(SSR): declaration (the algorithm is in `trainers.py`)."""

from keras_sanm.methods.spec import MethodSpec, lazy_trainers_module


def training_data(model, images, labels, batch_size, num_classes, seed, clean_labels):
    """`SSRData` with the model's views (true labels kept for the selection's statistics)."""
    from keras_sanm.methods.ssr.data import SSRData

    views = ("autoaugment", "weak") if model.augment else ("none", "none")
    return SSRData(images, labels, batch_size, num_classes, strong=views[0], weak=views[1],
                   seed=seed, clean_labels=clean_labels)


# The official code's per-dataset scripts: the relabelling threshold, mixup's
# alpha (4 on CIFAR, 0.5 elsewhere) and, on Clothing1M, votes not divided by
# the class shares (docs/algorithms.md, "SSR").
DATASET_OPTIONS = {
    "animal10n": {"relabel_threshold": 0.95, "alpha": 0.5},
    "clothing1m": {"relabel_threshold": 0.99, "alpha": 0.5, "class_prior": False},
}


def protocol_options(dataset: str) -> dict:
    """SSR's reference options on `dataset` (`{}` where the CIFAR defaults hold)."""
    return dict(DATASET_OPTIONS.get(dataset, {}))


def small_data_options(samples: int, batch_size: int) -> dict:
    """Batches smaller than the data and no more than 8 neighbours (k <= samples / 4)."""
    return {"batch_size": batch_size, "k": max(1, min(8, samples // 4))}


SPEC = MethodSpec(
    name="ssr", label="SSR",
    plain="SSRTrainer", with_sanm="SANMSSRTrainer",
    batch_size=128, batch_size_option=True, reference_epochs=300, needs_features=True,
    training_data=training_data, protocol_options=protocol_options,
    small_data_options=small_data_options,
)

__getattr__ = lazy_trainers_module("ssr")
