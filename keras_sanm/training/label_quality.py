"""`LabelQualityEstimator`: each sample's estimated label quality (a GMM on losses)."""

from __future__ import annotations

import keras
import numpy as np

from keras_sanm.data.indexed_dataset import IndexedDataset
from keras_sanm.data.validation import check_images, check_labels, is_dataset
from keras_sanm.label_quality import clean_probability, per_sample_cross_entropy, split_statistics


class LabelQualityEstimator:
    """The label-quality side of a `NoisyLabelTrainer`, held by it as
    `model.label_quality_estimator`.

    Per-sample losses of the model's networks (`model.quality_members()`,
    eval pass), the two-component GMM fitted on them, and each sample's
    clean probability `w`, which sizes SANM's boxes.

    Args:
        model: the training wrapper whose networks it reads.

    Example:
    >>> quality = model.label_quality_estimator.label_quality(x_train, y_noisy)
    """

    def __init__(self, model):
        self.model = model

    def label_quality(self, x, y=None, batch_size: int = 256) -> np.ndarray:
        """`NoisyLabelTrainer.label_quality` (its docstring gives the arguments): the mean
        over the quality members of the GMM clean posterior of their per-sample losses."""
        members = self.model.quality_members()
        if is_dataset(x):
            if y is not None:
                raise ValueError("A dataset yields its own labels; do not pass `y`.")
            self.model.input_pipeline.check_input_images(x)
            losses_ = self.dataset_member_losses(x, members)
        else:
            images = check_images(x, self.model.image_shape)
            self.model.input_pipeline.check_input_images(images)
            labels = check_labels(y, len(images), self.model.num_classes)
            losses_ = [self.member_losses(member, images, labels, batch_size)
                       for member in members]
        qualities = [clean_probability(loss, seed=self.model.seed)[0] for loss in losses_]
        return np.mean(qualities, axis=0).astype(np.float32)

    def dataset_member_losses(self, dataset, members) -> list[np.ndarray]:
        """Each member's inference-mode cross-entropy of every sample of an
        `(images, labels)` dataset, in one pass (every batch checked)."""
        parts: list[list] = [[] for _ in members]
        for images, labels in self.model.input_pipeline.iterate_batches(dataset, checked=True):
            for part, member in zip(parts, members):
                scores = keras.ops.convert_to_numpy(member.predict_on_batch(images))
                part.append(per_sample_cross_entropy(scores, labels, self.model.from_logits))
        if not parts[0]:
            raise ValueError("The dataset yields no batches.")
        return [np.concatenate(part) for part in parts]

    def member_losses(self, member, inputs, labels, batch_size: int | None = None):
        """Inference-mode cross-entropy of every sample under one quality member.

        Args:
            member: one of `quality_members()`.
            inputs: images, or a dataset of `(images,)` batches (e.g. an
                `EvalView`) in the order of `labels`.
            labels: `(N,)` given labels.
            batch_size: prediction batch size for array inputs.

        Returns:
            `(N,)` float64 losses.
        """
        inputs, _, batch_size = self.model.input_pipeline.keras_readable(inputs, None, batch_size)
        options = {} if batch_size is None else {"batch_size": batch_size}
        scores = member.predict(inputs, verbose=0, **options)
        return per_sample_cross_entropy(scores, labels, self.model.from_logits)

    def dataset_losses(self, source):
        """Cross-entropy of every sample of an `(x, y)` dataset, read once as it comes."""
        batches = self.model.input_pipeline.iterate_batches(source)
        parts = [(self.model.predict_on_batch(x), y) for x, y in batches]
        scores = np.concatenate([keras.ops.convert_to_numpy(p[0]) for p in parts])
        labels = np.concatenate([p[1] for p in parts]).reshape(-1)
        return per_sample_cross_entropy(scores, labels, self.model.from_logits), labels

    def update_label_quality(self, source, seed: int | None = None) -> dict:
        """Refits the clean probabilities of `source` and returns split statistics.

        `source.label_quality` becomes an `(N, networks)` array whose column
        `k` is network `k`'s clean posterior (a step of a two-network method
        reads its peer's column). The statistics are those of the mean over
        networks.
        """
        members = self.model.quality_members()
        if isinstance(source, IndexedDataset):
            qualities = []
            for member in members:
                losses_ = self.member_losses(member, source.eval_view(), source.labels)
                qualities.append(clean_probability(losses_, seed=seed)[0].astype(np.float32))
            source.label_quality = np.stack(qualities, axis=1)
            return split_statistics(np.mean(qualities, axis=0), source.labels,
                                    source.clean_labels)
        losses_, _ = self.dataset_losses(source)
        quality, gmm = clean_probability(losses_, seed=seed)
        self.model.store_loss_gmm(losses_, gmm)
        return split_statistics(quality)

    def training_label_quality(self, source) -> np.ndarray:
        """Each training sample's clean probability under the model as it is now.

        Args:
            source: `fit`'s training data (an `IndexedDataset`, or an
                `(x, y)` dataset read once).

        Returns:
            `(N,)` float32 clean probabilities.
        """
        if isinstance(source, IndexedDataset):
            return self.label_quality(source.images, source.labels)
        losses_, _ = self.dataset_losses(source)
        return clean_probability(losses_, seed=self.model.seed)[0].astype(np.float32)
