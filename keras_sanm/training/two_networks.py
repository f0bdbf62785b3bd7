"""`TwoNetworkTrainer`: what every two-network method shares (Co-teaching, DivideMix, ELR+)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_sanm.training import losses
from keras_sanm.training.loss_scaling import LossScaleOptimizer, rewrapped
from keras_sanm.training.optimizers import NetworkOptimizers
from keras_sanm.training.trainer import NoisyLabelTrainer, Untracked


class TwoNetworkTrainer(NoisyLabelTrainer):
    """Two networks of one architecture inside one Keras model.

    The base model and a second network of its architecture (made by `wrap`:
    freshly initialised, or a copy of a pretrained base) are sub-models, so
    `fit`, `save`, callbacks and distribution see one model. Each network
    keeps its own optimizer state: `compile` turns the optimizer into a
    `NetworkOptimizers` with one copy per network, grouped by
    `network_variables(k)` (with SANM, network `k`'s decoder belongs to its
    group: `SANMBranch.decoders[k]`). Label quality is estimated per network
    (`quality_members`): the training data's `label_quality` has one column
    per network and a step reads its peer's.

    Args:
        networks: two networks returning class scores (or `(feature_map,
            scores)` when `returns_features`).
        num_classes: number of classes.
        **kwargs: passed to `NoisyLabelTrainer`.
    """

    network_count = 2

    def __init__(self, networks, num_classes: int, **kwargs):
        networks = list(networks)
        if len(networks) != 2:
            raise ValueError(
                f"method={self.method_name!r} trains two networks; got {len(networks)}."
            )
        super().__init__(networks[0], num_classes, **kwargs)
        self.networks = networks
        self._held = Untracked(
            score_models=[self.score_model(net) for net in networks],
            train_functions={},
            phase=None,
        )
        self.decoders = []

    def network_list(self) -> list:
        return list(self.networks)

    def score_model(self, network) -> keras.Model:
        """Raw images -> class scores of one network, through the model's preprocessing
        (for `predict` on evaluation views and label quality)."""
        images = keras.Input(tuple(network.inputs[0].shape[1:]))
        out = network(self.preprocessing(images))
        return keras.Model(images, out[1] if self.returns_features else out)

    def network_config(self) -> dict:
        return {"networks": [keras.saving.serialize_keras_object(n) for n in self.networks]}

    # ----------------------------------------------------------------- forward
    def network_scores(self, k: int, images, training: bool):
        """`(feature_map or None, scores)` of network `k`."""
        out = self.networks[k](images, training=training)
        return out if self.returns_features else (None, out)

    def logits(self, scores):
        """Log-probabilities usable as logits (scores as-is when `from_logits`)."""
        return losses.log_probabilities(scores, self.from_logits)

    def probabilities(self, k: int, images, training: bool):
        """Softmax probabilities of network `k`."""
        return ops.softmax(self.logits(self.network_scores(k, images, training)[1]), axis=-1)

    def scores(self, images, training: bool = False):
        """Mean of the two networks' outputs (the test ensemble)."""
        total = 0.0
        for k in (0, 1):
            total = total + self.network_scores(k, images, training)[1]
        return total / 2.0

    def network_variables(self, k: int) -> list:
        """Trainable variables of network `k`'s optimizer group (its decoder included)."""
        variables = list(self.networks[k].trainable_variables)
        if self.decoders:
            variables += list(self.decoders[k].trainable_variables)
        return variables

    # ----------------------------------------------------------------- compile
    # Whether each step trains one network (alternating methods); else a
    # step trains both from one loss.
    steps_train_one_network = False

    def arrange_optimizer(self) -> None:
        """Each network gets its own copy of the compiled optimizer (`NetworkOptimizers`).

        With loss scaling (`mixed_float16`), every step optimizer scales:
        each network's optimizer when a step trains one network, else one
        `LossScaleOptimizer` around both networks' optimizers (one loss).
        """
        first = self.optimizer
        scaling = first if isinstance(first, LossScaleOptimizer) else None
        if scaling is not None and not self.steps_train_one_network:
            first = scaling.inner_optimizer
        second = first.__class__.from_config(first.get_config())
        self.optimizer = NetworkOptimizers([first, second])
        self.optimizer.assign_groups([self.network_variables(k) for k in (0, 1)])
        if scaling is not None and not self.steps_train_one_network:
            self.optimizer = rewrapped(scaling, self.optimizer)
        # Built now: a step needs each network's group before any update.
        self.optimizer.build(self.trainable_variables)
        self._held.train_functions = {}

    # ----------------------------------------------------------- label quality
    def network_losses(self, k: int, data) -> np.ndarray:
        """Eval-pass cross-entropy of every sample of `data` under network `k`."""
        return self.label_quality_estimator.member_losses(
            self._held.score_models[k], data.eval_view(), data.labels)

    def quality_members(self):
        return [self._held.score_models[0], self._held.score_models[1]]
