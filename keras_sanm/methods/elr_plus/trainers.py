"""ELR+ and SANM(ELR+) (docs/algorithms.md, "ELR+" and "SANM with each method")."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_sanm.backend import gather_replicas, no_gradient
from keras_sanm.data.indexed_dataset import IndexedDataset
from keras_sanm.data.validation import is_dataset, is_image_array
from keras_sanm.messages import inform
from keras_sanm.methods.elr_plus import SPEC
from keras_sanm.sanm.branch import SANMBranch
from keras_sanm.training import losses
from keras_sanm.training.alternating import AlternatingTrainer
from keras_sanm.training.callbacks import EpochLearningRate
from keras_sanm.training.mixup import mix


def exponential_rampup(step, length: float):
    """`exp(-5 (1 - min(step, L)/L)^2)`, or 1 when `L = 0` (`ELR-code` sigmoid_rampup)."""
    if not length:
        return ops.ones_like(ops.cast(step, "float32"))
    phase = 1.0 - ops.clip(ops.cast(step, "float32"), 0.0, float(length)) / float(length)
    return ops.exp(-5.0 * phase * phase)


def elr_regulariser(logits, ensemble_targets):
    """ELR's term `mean log(1 - <t, p>)`, with `p` clipped to `[1e-4, 1 - 1e-4]`.

    Args:
        logits: `(B, C)` network outputs (logits or log-probabilities).
        ensemble_targets: `(B, C)` temporal-ensemble targets `t` (no gradient).

    Returns:
        Scalar; its gradient pulls `p` towards `t`.
    """
    p = ops.clip(ops.softmax(logits, axis=-1), 1e-4, 1.0 - 1e-4)
    targets = ops.stop_gradient(ops.convert_to_tensor(ensemble_targets))
    agreement = ops.sum(targets * p, axis=-1)
    return ops.mean(ops.log(1.0 - agreement))


@keras.saving.register_keras_serializable(package="keras_sanm")
class ELRPlusTrainer(AlternatingTrainer):
    """ELR+: early-learning regularisation with two networks, weight averages and mixup.

    Each network `f` has a weight-averaged copy `f_bar` (non-trainable model
    state, updated after every step of `f`: `a f_bar + (1 - a) f` with
    `a = ema_decay * rampup(step + 1, ema_step)`). Per sample and network a
    temporal-ensemble target `t` (model state `ensemble_targets`, shape
    `(2, num_samples, C)`, saved with the model) is updated whenever the
    sample is in `f`'s batch: `t <- beta t + (1 - beta) p_hat` with `p_hat`
    the peer's averaged network's softmax on the un-mixed batch (training
    mode). The batch is mixed (`lam ~ Beta(alpha, alpha)`, `max(lam, 1 -
    lam)`, one permutation) and `f` minimises the soft cross-entropy of the
    mixed one-hot labels plus `rampup(step, coef_step) * lambda_elr *
    mean log(1 - <t_mixed, p>)`. For 100 classes the mixed labels are
    reweighted by `t_mixed` (`target_weighted_labels`). Network 1 trains a
    full pass, then network 2, every epoch; `predict` averages both raw
    networks. `compile()` with no optimizer: SGD 0.02, momentum 0.9, weight
    decay 5e-4, /10 from `drop_epoch`.

    Deviations: batches have a fixed size (the last partial batch of each
    pass is dropped); the reference's 45k/5k train/validation split is left
    to the user (pass `validation_data`).

    Args:
        networks: two networks, returning class scores (or `(feature_map,
            scores)` with SANM).
        num_classes: number of classes.
        num_samples: number of training samples (size of the target state);
            by default set by the first `fit` from its data (and said in
            the log); later fits check it.
        beta: temporal-ensemble momentum (CIFAR-10 sym 0.7, asym / CIFAR-100 0.9).
        lambda_elr: weight of the ELR term (3; asym 1; CIFAR-100 7).
        alpha: mixup Beta concentration (1).
        coef_step: ramp-up steps of the ELR weight (0: none; CIFAR-100 40000).
        ema_decay: weight-average decay (0.997).
        ema_step: ramp-up steps of the decay (40000).
        target_weighted_labels: reweight mixed labels by the targets
            (default: when `num_classes == 100`, as the reference).
        batch_size: batch size for array input (128).
        drop_epoch: epoch of the /10 learning-rate drop in a run of `epochs`
            epochs (150; CIFAR-100 200); it moves with the length of `fit`.
        epochs: default number of epochs of `fit` (200; CIFAR-100 250).
        **kwargs: passed to `AlternatingTrainer` (`from_logits`, `seed`, ...).

    Example:
    >>> model = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10),
    ...                         method="elr_plus", sanm=False)
    >>> model.fit(x_train, y_noisy, epochs=200, validation_data=(x_test, y_test))
    """

    method_name = "elr_plus"
    needs_sample_indices = True
    has_after_step = True
    log_names = ("loss", "accuracy", "classification_loss", "elr_loss", "elr_weight")

    def __init__(
        self,
        networks,
        num_classes: int,
        num_samples: int | None = None,
        beta: float = 0.7,
        lambda_elr: float = 3.0,
        alpha: float = 1.0,
        coef_step: int = 0,
        ema_decay: float = 0.997,
        ema_step: int = 40000,
        target_weighted_labels: bool | None = None,
        batch_size: int = 128,
        drop_epoch: int = 150,
        epochs: int = SPEC.reference_epochs,
        **kwargs,
    ):
        super().__init__(networks, num_classes, **kwargs)
        if num_samples is not None and int(num_samples) < 1:
            raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}.")
        if not 0.0 <= beta < 1.0 or not 0.0 <= ema_decay < 1.0:
            raise ValueError("beta and ema_decay must be in [0, 1).")
        if alpha <= 0 or lambda_elr < 0 or coef_step < 0 or ema_step < 0:
            raise ValueError("Need alpha > 0 and lambda_elr, coef_step, ema_step >= 0.")
        self.num_samples = None if num_samples is None else int(num_samples)
        self.beta, self.lambda_elr, self.alpha = float(beta), float(lambda_elr), float(alpha)
        self.coef_step, self.ema_decay, self.ema_step = int(coef_step), float(ema_decay), int(ema_step)
        self.target_weighted_labels = (
            num_classes == 100 if target_weighted_labels is None else bool(target_weighted_labels)
        )
        self.batch_size, self.drop_epoch, self.epochs = int(batch_size), int(drop_epoch), int(epochs)
        self.mix_seed = keras.random.SeedGenerator(seed=self.seed)
        if self.num_samples is not None:
            self.create_sample_state()

    def create_sample_state(self) -> None:
        """The model state sized by the training set: the per-sample ensemble
        targets, then the step counts and the weight averages (always in this
        order, so models that created it at construction or at `fit` save alike)."""
        self.ensemble_targets = self.add_weight(
            shape=(2, self.num_samples, self.num_classes), initializer="zeros",
            trainable=False, name="ensemble_targets", aggregation="only_first_replica",
        )
        # Written with values equal on every replica (tf.distribute: first replica's).
        self.step_counts = self.add_weight(
            shape=(2,), initializer="zeros", trainable=False, name="step_counts",
            aggregation="only_first_replica",
        )
        averages_per_network = []
        for k, net in enumerate(self.networks):
            averages = []
            for variable in net.trainable_variables:
                average = self.add_weight(
                    shape=variable.shape, initializer="zeros", trainable=False,
                    name=f"average_{k + 1}_{variable.name}",
                    aggregation="only_first_replica",
                )
                # A copy (not the same buffer): the averaged copy starts as the network.
                average.assign(ops.copy(variable.value))
                averages.append(average)
            averages_per_network.append(averages)
        # Tracked once, as the model's weights; held here by network.
        self._held.averages = averages_per_network

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_samples": self.num_samples,
            "beta": self.beta,
            "lambda_elr": self.lambda_elr,
            "alpha": self.alpha,
            "coef_step": self.coef_step,
            "ema_decay": self.ema_decay,
            "ema_step": self.ema_step,
            "target_weighted_labels": self.target_weighted_labels,
            "batch_size": self.batch_size,
            "drop_epoch": self.drop_epoch,
            "epochs": self.epochs,
        }

    def default_optimizer(self):
        optimizer = keras.optimizers.SGD(learning_rate=0.02, momentum=0.9)
        return optimizer, EpochLearningRate(
            0.02, (self.drop_epoch,), 0.1, reference_epochs=self.reference_epochs), 5e-4

    @property
    def reference_epochs(self) -> int:
        """The `epochs` option (the drop at `drop_epoch` belongs to it)."""
        return self.epochs

    # -------------------------------------------------------------------- step
    def averaged_scores(self, k: int, images):
        """Scores of network `k`'s weight-averaged copy (training mode, no gradient)."""
        network = self.networks[k]
        with no_gradient():
            out, _ = network.stateless_call(
                [v.value for v in self._held.averages[k]],
                [v.value for v in network.non_trainable_variables],
                images,
                training=True,
            )
        scores = out[1] if self.returns_features else out
        return ops.stop_gradient(scores)

    def update_targets(self, k: int, indices, peer_probabilities):
        """`t[k, i] <- beta t[k, i] + (1 - beta) p_hat_i` for the batch; returns the new rows."""
        indices = ops.cast(indices, "int32")
        old = ops.take(self.ensemble_targets[k], indices, axis=0)
        p_hat = peer_probabilities / ops.sum(peer_probabilities, axis=-1, keepdims=True)
        new = ops.stop_gradient(self.beta * old + (1.0 - self.beta) * p_hat)
        # With several replicas, each holds a slice of the batch: every one
        # writes the rows of the whole global batch, so the state stays equal.
        all_indices, all_new = gather_replicas(indices), gather_replicas(new)
        where = ops.stack([ops.full_like(all_indices, k), all_indices], axis=1)
        self.ensemble_targets.assign(
            ops.scatter_update(self.ensemble_targets.value, where, all_new)
        )
        return new

    def sanm_pool(self, k: int, batch, one_hot):
        """Extra rows for the mixup pool (none without SANM)."""
        return None

    def compute_train_loss(self, data, phase):
        batch = data[0]
        k = phase.network
        images = batch["images"]
        one_hot = ops.one_hot(ops.cast(batch["labels"], "int32"), self.num_classes)
        peer = ops.softmax(self.logits(self.averaged_scores(1 - k, images)), axis=-1)
        targets = self.update_targets(k, batch["indices"], peer)
        inputs, labels, ensemble = images, one_hot, targets
        extra = self.sanm_pool(k, batch, one_hot)
        if extra is not None:
            inputs = ops.concatenate([images, extra["images"]], axis=0)
            labels = ops.concatenate([one_hot, extra["targets"]], axis=0)
            ensemble = ops.concatenate([targets, targets, targets], axis=0)
        mixed_inputs, mixed_labels, lam, order = mix(inputs, labels, self.alpha, self.mix_seed)
        lam = ops.cast(lam, ensemble.dtype)
        mixed_ensemble = lam * ensemble + (1.0 - lam) * ops.take(ensemble, order, axis=0)
        if self.target_weighted_labels:
            mixed_labels = mixed_labels * mixed_ensemble
            mixed_labels = mixed_labels / ops.sum(mixed_labels, axis=-1, keepdims=True)
        logits = self.logits(self.network_scores(k, mixed_inputs, training=True)[1])
        classification = ops.mean(losses.soft_cross_entropy(logits, mixed_labels))
        step = self.step_counts[k] + 1.0
        weight = exponential_rampup(step, self.coef_step) * self.lambda_elr
        regulariser = elr_regulariser(logits, mixed_ensemble)
        loss = classification + weight * regulariser
        logs = {
            "classification_loss": classification,
            "elr_loss": regulariser,
            "elr_weight": weight,
            "accuracy": losses.accuracy(logits, ops.argmax(mixed_labels, axis=-1)),
        }
        if extra is not None:
            loss = loss + self.reconstruction_weight * extra["reconstruction"]
            logs.update(reconstruction_loss=extra["reconstruction"], mask_ratio=extra["ratio"])
        logs["loss"] = loss
        return loss, logs

    def after_step(self, phase):
        """Counts the step and moves network `k`'s weight average towards it."""
        k = phase.network
        self.step_counts.assign(self.step_counts.value + ops.one_hot(k, 2))
        count = self.step_counts[k]
        decay = self.ema_decay * exponential_rampup(count + 1.0, self.ema_step)
        for average, variable in zip(self._held.averages[k], self.networks[k].trainable_variables):
            value = ops.cast(variable.value, average.dtype)
            average.assign(decay * average.value + (1.0 - decay) * value)

    # --------------------------------------------------------------------- fit
    def training_data(self, x, y, batch_size=None, shuffle=True, verbose=1) -> IndexedDataset:
        if isinstance(x, IndexedDataset):
            if y is not None or batch_size is not None:
                raise ValueError("An IndexedDataset carries its labels and batch size.")
            data = x
        elif is_image_array(x) or is_dataset(x):
            if is_dataset(x):
                x, y, batch_size = self.input_pipeline.identified_samples(x, y, batch_size, verbose)
            if y is None:
                raise ValueError("fit(x, y) needs labels `y` with numpy images.")
            data = IndexedDataset(x, y, batch_size or self.batch_size,
                                  num_classes=self.num_classes, augment=self.augment, seed=self.seed)
        else:
            raise ValueError(
                f"method={self.method_name!r} trains on images `fit(x, y)` (numpy or "
                "keras_sanm.data.ImageFiles), a tf.data.Dataset or keras.utils.PyDataset "
                "of (images, labels), or a keras_sanm.data.IndexedDataset; got "
                f"{type(x).__name__}."
            )
        if self.num_samples is None:
            self.num_samples = len(data.images)
            inform(f"ELR+ keeps a target per sample: num_samples={self.num_samples}, from the "
                   "training data.")
            # A built model refuses new state; Keras' own `quantize` adds state
            # after build by opening its tracker the same way.
            locked = self._tracker.locked
            self._tracker.unlock()
            try:
                self.create_sample_state()
            finally:
                if locked:
                    self._tracker.lock()
        if len(data.images) != self.num_samples:
            raise ValueError(
                f"The model keeps targets for num_samples={self.num_samples} samples; "
                f"the data has {len(data.images)}."
            )
        self.check_training_data(data)
        self.input_pipeline.prepare_label_quality(data)
        return data

    def make_batch(self, data: IndexedDataset, indices):
        images, labels, quality = data.batch_at(indices)
        return {"images": images, "labels": labels, "indices": indices.astype(np.int32),
                "quality": quality}

    def epoch_plan(self, data: IndexedDataset, epoch: int):
        """Network 1's pass, then network 2's, each over its own shuffle of the data."""
        plan = []
        size = data.batch_size
        for k in (0, 1):
            order = data.rng.permutation(len(data.images))
            steps = [order[i * size:(i + 1) * size] for i in range(len(order) // size)]
            plan.append((("train", k), steps, lambda idx: self.make_batch(data, idx)))
        return plan


@keras.saving.register_keras_serializable(package="keras_sanm")
class SANMELRPlusTrainer(SANMBranch, ELRPlusTrainer):
    """SANM(ELR+) (the package's design: SANM's official code covers DivideMix only).

    Network `f` masks its batch at the peak and valley of its own feature
    map (a no-gradient training-mode pass, as SANM(DivideMix)'s guessing
    passes), with boxes sized by the peer's label quality `w` (per-network
    GMM on eval-pass losses, refitted every epoch from epoch 1; `w = 1`
    before). The masked copies join the mixup pool: inputs `[x; m+; m-]`,
    labels `[e_y; e~+; e~-]` (`e~` the modulated refined label by default,
    see `masked_targets`), ensemble targets `[t; t; t]`, one `lam` and one
    permutation over all `3B` rows; the decoder reconstructs `x` from both
    masked copies (one training-mode pass of the `2B` masked images) with
    weight `reconstruction_weight`.

    Args:
        networks: two networks returning `(feature_map, scores)`.
        num_classes: number of classes.
        reconstruction_weight: weight of `L_rec` (0.02 CIFAR).
        clip_negative_targets: clip negative modulated targets (B4).
        mask_config: keyword arguments of `NoisyMask`.
        masked_targets: the masked copies' labels before modulation:
            `"refined"` (default; the network's own prediction of the clean
            image, from the pass that locates the boxes, mixed in as the
            peer's label quality falls) or `"label"` (`SANMBranch`).
        **kwargs: passed to `ELRPlusTrainer`.
    """

    log_names = ELRPlusTrainer.log_names + SANMBranch.sanm_log_names
    takes_masked_targets = True

    def sanm_pool(self, k: int, batch, one_hot):
        images = batch["images"]
        with no_gradient():
            features, scores = self.network_scores(k, images, training=True)
        quality = batch["quality"][:, 1 - k]
        masked_images, masked_targets, ratio = self.masked_copies(
            images, ops.stop_gradient(features), quality,
            self.copy_targets(one_hot, scores, quality),
        )
        masked_features = self.network_scores(k, masked_images, training=True)[0]
        reconstruction = self.reconstruction_term(k, masked_features, images)
        return {"images": masked_images, "targets": masked_targets,
                "reconstruction": reconstruction, "ratio": ratio}

