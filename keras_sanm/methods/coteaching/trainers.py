"""Co-teaching and SANM(Co-teaching).

See docs/algorithms.md, "Co-teaching" and "SANM with each method".
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_sanm.methods.coteaching.schedules import AdamDecaySchedule, ForgetRateSchedule
from keras_sanm.sanm.branch import SANMBranch
from keras_sanm.training import losses
from keras_sanm.training.callbacks import NoiseRateEstimate
from keras_sanm.training.two_networks import TwoNetworkTrainer


def small_loss_selection(per_sample_loss, keep_count):
    """`(B,)` 0/1 mask of the `keep_count` smallest losses (static shapes).

    Args:
        per_sample_loss: `(B,)` losses (used without gradient).
        keep_count: scalar number of samples to keep (may be a tensor).

    Returns:
        `(B,)` float32 mask; ties are broken by position.
    """
    loss = ops.stop_gradient(ops.reshape(per_sample_loss, (-1,)))
    order = ops.argsort(loss)
    rank = ops.argsort(order)  # rank[i]: position of sample i in ascending order
    return ops.cast(ops.less(ops.cast(rank, "float32"), ops.cast(keep_count, "float32")),
                    "float32")


def forget_rate_at(epoch: int, forget_rate: float, gradual_epochs: int = 10,
                   exponent: float = 1.0) -> float:
    """Co-teaching's forget rate for Keras epoch `epoch` (`CT-code` schedule).

    The reference loop's epoch `e + 1` (its epoch 0 is an untrained
    evaluation): `linspace(0, tau**c, T_k)[e + 1]` while `e + 1 < T_k`, then
    `tau`.

    Args:
        epoch: 0-based Keras epoch.
        forget_rate: final forget rate `tau` (the noise rate when known).
        gradual_epochs: `T_k` (10).
        exponent: `c` (1).
    """
    i = epoch + 1
    if i < gradual_epochs:
        return float(np.linspace(0.0, forget_rate**exponent, gradual_epochs)[i])
    return float(forget_rate)


@keras.saving.register_keras_serializable(package="keras_sanm")
class CoteachingTrainer(TwoNetworkTrainer):
    """Co-teaching: two networks teach each other which samples to trust.

    Both networks classify the same batch; each keeps the
    `n = floor((1 - tau_e) B)` samples with the smallest cross-entropy, and
    each network is updated on the samples its *peer* kept (mean over `n`).
    `tau_e` rises linearly to `forget_rate` over the first `gradual_epochs`
    (`ForgetRateSchedule`, added by `fit`). `compile()` with no optimizer uses
    the reference Adam (lr 0.001; from epoch 80 linear decay to 0 and
    `beta_1 = 0.1`), no weight decay. The reference's default backbone is the
    9-layer CNN (`keras_sanm.backbones.CNN9`), trained without augmentation
    or normalisation. `predict`/`evaluate` use network 1 (the network whose
    accuracy the reference reports); `evaluate` also reports `accuracy_2`.

    Setting `forget_rate`: it is the fraction of samples each network drops
    per batch once the schedule is complete, and should match the fraction
    of wrong labels. With synthetic noise, use its rate. On your own data,
    estimate it: `keras_sanm.label_issues.estimate_noise_rate(model, x, y)`
    on a briefly trained cross-entropy model, or the error rate of the given
    labels on a small subset you have checked by hand. Over-estimating
    discards clean samples; under-estimating lets wrong labels through.
    Without it, the two networks train on every sample for `estimate_after`
    epochs, then the share of samples their loss GMM finds noisy becomes
    `forget_rate` (printed) and the schedule goes on from that epoch.

    Args:
        networks: two networks of one architecture (`wrap` makes the second:
            fresh, or a copy of a pretrained base), returning class scores.
        num_classes: number of classes.
        forget_rate: final forget rate `tau` in `[0, 1)`; `None` (default):
            estimated after `estimate_after` epochs (see above).
        estimate_after: epochs before that estimate (2).
        gradual_epochs: `T_k`, epochs to reach `tau` (10).
        exponent: `c` of the schedule (1).
        decay_start: reference epoch where Adam's decay starts (80;
            CIFAR-100 100).
        total_epochs: reference epoch count for the decay (200).
        **kwargs: passed to `TwoNetworkTrainer` (`from_logits`, `seed`, ...).

    Example:
    >>> model = keras_sanm.wrap(keras_sanm.backbones.CNN9(10), method="coteaching",
    ...                         sanm=False, forget_rate=0.5)
    >>> model.fit(x_train, y_noisy, batch_size=128, epochs=199)
    """

    method_name = "coteaching"
    reference_augment = None  # the reference trains on unaugmented images
    log_names = ("loss", "accuracy", "accuracy_2", "forget_rate")

    def __init__(
        self,
        networks,
        num_classes: int,
        forget_rate: float | None = None,
        estimate_after: int = 2,
        gradual_epochs: int = 10,
        exponent: float = 1.0,
        decay_start: int = 80,
        total_epochs: int = 200,
        **kwargs,
    ):
        if forget_rate is not None and not 0.0 <= forget_rate < 1.0:
            raise ValueError(f"forget_rate must be in [0, 1); got {forget_rate}.")
        if estimate_after < 1:
            raise ValueError(f"estimate_after must be at least 1 epoch; got {estimate_after}.")
        if gradual_epochs < 1 or exponent <= 0:
            raise ValueError("gradual_epochs must be >= 1 and exponent > 0.")
        if not 0 < decay_start < total_epochs:
            raise ValueError("Need 0 < decay_start < total_epochs.")
        super().__init__(networks, num_classes, **kwargs)
        self.final_forget_rate = None if forget_rate is None else float(forget_rate)
        self.estimate_after = int(estimate_after)
        self.gradual_epochs = int(gradual_epochs)
        self.exponent = float(exponent)
        self.decay_start, self.total_epochs = int(decay_start), int(total_epochs)
        self.forget_rate = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="forget_rate"
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "forget_rate": self.final_forget_rate,
            "estimate_after": self.estimate_after,
            "gradual_epochs": self.gradual_epochs,
            "exponent": self.exponent,
            "decay_start": self.decay_start,
            "total_epochs": self.total_epochs,
        }

    def forget_rate_at(self, epoch: int) -> float:
        """The forget rate of Keras epoch `epoch` (0 while an estimate is pending)."""
        if self.final_forget_rate is None:
            return 0.0
        return forget_rate_at(epoch, self.final_forget_rate, self.gradual_epochs, self.exponent)

    def set_forget_rate(self, rate: float) -> None:
        """Sets the final forget rate `tau` (used by the estimate when none was given)."""
        self.final_forget_rate = float(rate)

    def default_optimizer(self):
        optimizer = keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999)
        schedule = AdamDecaySchedule(0.001, self.decay_start, self.total_epochs)
        return optimizer, schedule, 0.0

    def scores(self, images, training: bool = False):
        """Network 1's scores (the network the reference reports)."""
        return self.network_scores(0, images, training)[1]

    def compute_test_logs(self, data):
        logs = self.cross_entropy_logs(data[0], data[1], training=False)[1]
        logs["accuracy_2"] = losses.accuracy(
            self.network_scores(1, data[0], training=False)[1], data[1]
        )
        return logs

    # -------------------------------------------------------------------- step
    def keep_count(self, batch_size):
        """`floor((1 - tau_e) * B)`, at least 1."""
        keep = ops.floor((1.0 - self.forget_rate) * ops.cast(batch_size, "float32"))
        return ops.maximum(keep, 1.0)

    def compute_train_loss(self, data, phase):
        images, labels = data[0], data[1]
        targets = ops.one_hot(ops.cast(labels, "int32"), self.num_classes)
        per_sample = []
        scores = []
        for k in (0, 1):
            out = self.network_scores(k, images, training=True)[1]
            scores.append(out)
            per_sample.append(losses.soft_cross_entropy(out, targets, self.from_logits))
        keep = self.keep_count(ops.shape(images)[0])
        kept = [small_loss_selection(per_sample[k], keep) for k in (0, 1)]
        # Network k learns from the samples its peer kept.
        network_losses = [ops.sum(kept[1 - k] * per_sample[k]) / keep for k in (0, 1)]
        loss = network_losses[0] + network_losses[1]
        return loss, {
            "loss": loss,
            "accuracy": losses.accuracy(scores[0], labels),
            "accuracy_2": losses.accuracy(scores[1], labels),
            "forget_rate": ops.convert_to_tensor(self.forget_rate),
        }

    def method_callbacks(self, source):
        callbacks = [ForgetRateSchedule(self.forget_rate_at)] + super().method_callbacks(source)
        if self.final_forget_rate is None:
            callbacks.insert(0, NoiseRateEstimate(
                source, self.estimate_after, "forget_rate",
                lambda: self.final_forget_rate, self.set_forget_rate))
        return callbacks


@keras.saving.register_keras_serializable(package="keras_sanm")
class SANMCoteachingTrainer(SANMBranch, CoteachingTrainer):
    """SANM(Co-teaching) (the package's design: SANM's official code covers DivideMix only).

    Small-loss selection runs on the clean images only. Each network masks
    the batch at its own feature map's peak and valley, with boxes sized by
    its *peer's* label quality `w` (per-network GMM on eval-pass losses,
    refitted every epoch from epoch 1; `w = 1` before), and is updated on
    its peer's selection `S`: `mean_S CE(x, y) + mean soft-CE over
    [m+_S; m-_S]` with the modulated targets, plus `reconstruction_weight`
    times its own decoder's MSE on all its masked images (label-free, so not
    restricted to `S`). The copies' targets are refined by default: each
    network's own prediction is mixed into the label as the peer's `w`
    falls (`masked_targets`). Needs sample identities (arrays or an
    `IndexedDataset`).

    Args:
        networks: two networks returning `(feature_map, scores)`.
        num_classes: number of classes.
        reconstruction_weight: weight of `L_rec` (0.02 CIFAR).
        clip_negative_targets: clip negative modulated targets (B4).
        mask_config: keyword arguments of `NoisyMask`.
        masked_targets: the masked copies' targets before modulation:
            `"refined"` (default; each network's own prediction mixed in as
            the peer's label quality falls) or `"label"` (`SANMBranch`).
        **kwargs: passed to `CoteachingTrainer`.
    """

    needs_sample_indices = True
    takes_masked_targets = True
    log_names = (CoteachingTrainer.log_names + ("classification_loss",)
                 + SANMBranch.sanm_log_names)

    def compute_train_loss(self, data, phase):
        images, labels, quality = data[0], data[1], data[2]
        targets = ops.one_hot(ops.cast(labels, "int32"), self.num_classes)
        batch = ops.shape(images)[0]
        keep = self.keep_count(batch)
        passes = []
        for k in (0, 1):
            features, scores = self.network_scores(k, images, training=True)
            clean_ce = losses.soft_cross_entropy(scores, targets, self.from_logits)
            passes.append((features, scores, clean_ce))
        kept = [small_loss_selection(passes[k][2], keep) for k in (0, 1)]
        loss, classification, reconstruction, ratio = 0.0, 0.0, 0.0, 0.0
        for k in (0, 1):
            features, _, clean_ce = passes[k]
            peer_kept = kept[1 - k]
            peer_quality = quality[:, 1 - k]
            masked_images, masked_targets, ratio_k = self.masked_copies(
                images, features, peer_quality,
                self.copy_targets(targets, passes[k][1], peer_quality),
            )
            masked_features, masked_scores = self.network_scores(k, masked_images, training=True)
            masked_ce = losses.soft_cross_entropy(masked_scores, masked_targets,
                                                  self.from_logits)
            masked_kept = ops.concatenate([peer_kept, peer_kept], axis=0)
            classification_k = (ops.sum(peer_kept * clean_ce) / keep
                                + ops.sum(masked_kept * masked_ce) / (2.0 * keep))
            reconstruction_k = self.reconstruction_term(k, masked_features, images)
            loss = loss + classification_k + self.reconstruction_weight * reconstruction_k
            classification = classification + classification_k / 2.0
            reconstruction = reconstruction + reconstruction_k / 2.0
            ratio = ratio + ratio_k / 2.0
        return loss, {
            "loss": loss,
            "accuracy": losses.accuracy(passes[0][1], labels),
            "accuracy_2": losses.accuracy(passes[1][1], labels),
            "forget_rate": ops.convert_to_tensor(self.forget_rate),
            "classification_loss": classification,
            "reconstruction_loss": reconstruction,
            "mask_ratio": ratio,
        }

