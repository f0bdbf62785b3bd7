"""Cross-entropy training and SANM(CE) (docs/algorithms.md, "SANM with each method")."""

from __future__ import annotations

import keras
from keras import ops

from keras_sanm.label_quality import (
    GMM_PARAMETER_COUNT,
    gmm_clean_posterior,
    gmm_parameters,
)
from keras_sanm.sanm.branch import SANMBranch
from keras_sanm.training import losses
from keras_sanm.training.trainer import NoisyLabelTrainer


@keras.saving.register_keras_serializable(package="keras_sanm")
class CrossEntropyTrainer(NoisyLabelTrainer):
    """Plain cross-entropy on the given (noisy) labels.

    Example:
    >>> model = keras_sanm.wrap(base, method="ce", sanm=False)
    """

    method_name = "ce"

    def compute_train_loss(self, data, phase):
        return self.cross_entropy_logs(data[0], data[1], training=True)


@keras.saving.register_keras_serializable(package="keras_sanm")
class SANMCrossEntropyTrainer(SANMBranch, CrossEntropyTrainer):
    """SANM(CE): cross-entropy on clean, peak-masked and valley-masked images.

    Per step: the clean batch `x` is classified and its (stop-gradient)
    feature map locates the boxes; `NoisyMask` builds the peak- and
    valley-masked copies with ratios set by the label quality `w`; the loss is
    the mean soft cross-entropy over `[x; m+; m-]` with targets
    `[e_y; e~_y; e~_y]` (label modulation) plus `reconstruction_weight` times
    the decoder's MSE on both masked copies. `w` is each sample's clean
    probability from a GMM on eval-pass losses, refitted at the start of every
    epoch from epoch 1 (`w = 1` before the first fit). Batches of an
    `IndexedDataset` (and numpy input) carry each sample's `w`; for a
    `tf.data.Dataset`/`PyDataset` of `(x, y)`, which has no sample identities,
    the epoch's GMM is kept as model state and `w` is the posterior of the
    sample's loss in the current step (an approximation: training-mode,
    augmented view instead of the eval pass).

    Args:
        network: model returning `(feature_map, scores)`.
        num_classes: number of classes.
        reconstruction_weight: weight of the reconstruction loss (0.02 CIFAR).
        clip_negative_targets: clip negative modulated targets (B4).
        mask_config: keyword arguments of `NoisyMask`.
        masked_targets: what the masked copies are trained towards before
            modulation (`SANMBranch`). `"refined"` (default):
            `Sharpen(w e_y + (1 - w) p, 0.5)` with `p` the network's
            prediction on the clean image (no gradient), so a sample whose
            label looks wrong (`w` near 0) is not pulled towards it by its
            copies; it beats CE beyond the seed spread at 50% symmetric noise
            in the CPU regime, where the label target does not (see
            docs/results.md). `"label"`: the given label `e_y`.
        **kwargs: passed to `CrossEntropyTrainer`.
    """

    takes_masked_targets = True

    log_names = (
        "loss",
        "accuracy",
        "classification_loss",
        "clean_loss",
        "masked_loss",
        "reconstruction_loss",
        "mask_ratio",
    )

    def __init__(
        self,
        network,
        num_classes: int,
        reconstruction_weight: float = 0.02,
        clip_negative_targets: bool = False,
        mask_config: dict | None = None,
        masked_targets: str | None = None,
        **kwargs,
    ):
        super().__init__(network, num_classes, reconstruction_weight=reconstruction_weight,
                         clip_negative_targets=clip_negative_targets, mask_config=mask_config,
                         masked_targets=masked_targets, **kwargs)
        # For (x, y) datasets without sample indices: the epoch's loss GMM.
        self.loss_gmm = self.add_weight(
            shape=(GMM_PARAMETER_COUNT,), initializer="zeros", trainable=False,
            name="loss_gmm",
        )

    def store_loss_gmm(self, losses_, gmm):
        self.loss_gmm.assign(gmm_parameters(losses_, gmm))

    def quality_from_losses(self, per_sample_loss):
        """Clean posterior of each loss under the stored GMM (1 before any fit)."""
        return gmm_clean_posterior(per_sample_loss, self.loss_gmm)

    def compute_train_loss(self, data, phase):
        images, labels = data[0], data[1]
        targets = ops.one_hot(ops.cast(labels, "int32"), self.num_classes)
        features, scores = self.features_and_scores(images, training=True)
        clean_ce = losses.soft_cross_entropy(scores, targets, self.from_logits)
        # IndexedDataset batches carry the eval-pass quality; (x, y) datasets
        # get it from the stored epoch GMM applied to the current loss.
        quality = data[2] if len(data) > 2 and data[2] is not None else (
            self.quality_from_losses(clean_ce)
        )

        masked_images, masked_targets, ratio = self.masked_copies(
            images, features, quality, self.copy_targets(targets, scores, quality)
        )
        masked_features, masked_scores = self.features_and_scores(
            masked_images, training=True
        )
        masked_ce = losses.soft_cross_entropy(masked_scores, masked_targets, self.from_logits)
        classification = ops.mean(ops.concatenate([clean_ce, masked_ce], axis=0))
        reconstruction = self.reconstruction_term(0, masked_features, images)
        loss = classification + self.reconstruction_weight * reconstruction
        return loss, {
            "loss": loss,
            "accuracy": losses.accuracy(scores, labels),
            "classification_loss": classification,
            # The two parts of the classification loss: the images as given, and
            # their masked copies with modulated targets (two thirds of the mean).
            "clean_loss": ops.mean(clean_ce),
            "masked_loss": ops.mean(masked_ce),
            "reconstruction_loss": reconstruction,
            "mask_ratio": ratio,
        }

