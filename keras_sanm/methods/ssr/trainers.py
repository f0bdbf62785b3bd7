"""SSR: neighbour-agreement selection, mixup on the clean samples, feature consistency.

See docs/algorithms.md, "SSR".
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_sanm.data.indexed_dataset import IndexedDataset
from keras_sanm.data.validation import check_class_count, is_dataset, is_image_array
from keras_sanm.methods.ssr import SPEC
from keras_sanm.methods.ssr.data import SSRData
from keras_sanm.methods.ssr.selection import SSRSelection
from keras_sanm.sanm.branch import SANMBranch
from keras_sanm.training import losses
from keras_sanm.training.callbacks import CosineEpochLearningRate
from keras_sanm.training.mixup import mix
from keras_sanm.training.trainer import NoisyLabelTrainer, Untracked


def _head(hidden: int, output: int, name: str) -> keras.Sequential:
    """Dense -> batch norm -> ReLU -> dense: SSR's projector and predictor."""
    return keras.Sequential([
        keras.layers.Dense(hidden, name=f"{name}_dense1"),
        keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn"),
        keras.layers.ReLU(name=f"{name}_relu"),
        keras.layers.Dense(output, name=f"{name}_dense2"),
    ], name=name)


@keras.saving.register_keras_serializable(package="keras_sanm")
class SSRTrainer(NoisyLabelTrainer):
    """SSR (Feng et al., BMVC 2022), as its official code trains.

    Every epoch starts with `SSRSelection` (relabel, neighbour vote, clean
    test). Each step then takes `SSRData`'s clean batch (two strong views of
    `B` class-balanced clean samples, their current labels) and its batch of
    all samples (a weak and a strong view), and minimises
    `L_ce + consistency_weight * L_fc`: soft cross-entropy on mixup of the
    `2B` clean views, and `-cos(h(g(f(strong))), stop_gradient(g(f(weak))))`
    with `f` the network's pooled feature map, `g` the projector and `h` the
    predictor.

    `fit` needs sample identities: numpy arrays (or `ImageFiles`), a
    dataset of `(images, labels)` (read once into an on-disk copy), an
    `IndexedDataset` or an `SSRData`.

    Args:
        network: a model returning `(feature_map, scores)`.
        num_classes: number of classes.
        relabel_threshold: `theta_r` (0.9 CIFAR-10, 0.95 Animal-10N, 0.99
            Clothing1M).
        select_threshold: `theta_s` (1.0).
        k: neighbours of the vote (200).
        class_prior: divide the votes by the class shares (off in the
            reference's Clothing1M script).
        alpha: mixup's Beta concentration (4 on CIFAR, else 0.5).
        consistency_weight: `lambda_fc` (1.0).
        hidden_dim, projection_dim: the heads' widths (256, 128 on CIFAR).
        batch_size: `B` (128).
        epochs: reference run length (300), the cosine schedule's length.
        **kwargs: passed to `NoisyLabelTrainer` (`from_logits`, `seed`, ...).

    Example:
    >>> model = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10), method="ssr",
    ...                         sanm=False)
    >>> model.fit(x_train, y_noisy, epochs=300, validation_data=(x_test, y_test))
    """

    method_name = "ssr"
    needs_sample_indices = True
    log_names = ("loss", "accuracy", "classification_loss", "consistency_loss")
    paper_optimizer = {**NoisyLabelTrainer.paper_optimizer, "minimum_learning_rate": 4e-4}

    def __init__(self, network, num_classes: int, relabel_threshold: float = 0.9,
                 select_threshold: float = 1.0, k: int = 200, class_prior: bool = True,
                 alpha: float = 4.0, consistency_weight: float = 1.0, hidden_dim: int = 256,
                 projection_dim: int = 128, batch_size: int = 128, epochs: int = SPEC.reference_epochs,
                 **kwargs):
        kwargs.pop("returns_features", None)  # always: the features are SSR's
        if len(getattr(network, "outputs", None) or ()) != 2:
            raise ValueError("SSR needs the network's feature map: pass a network returning "
                             "(feature_map, scores) (keras_sanm.backbones.feature_map."
                             "build_feature_network).")
        super().__init__(network, num_classes, returns_features=True, **kwargs)
        if not 0.0 < relabel_threshold <= 1.0 or not 0.0 <= select_threshold <= 1.0:
            raise ValueError("relabel_threshold must be in (0, 1] and select_threshold in "
                             "[0, 1].")
        if k < 1 or alpha <= 0 or consistency_weight < 0:
            raise ValueError("k must be >= 1, alpha > 0 and consistency_weight >= 0.")
        self.relabel_threshold, self.select_threshold = float(relabel_threshold), float(
            select_threshold)
        self.k, self.class_prior = int(k), bool(class_prior)
        self.alpha, self.consistency_weight = float(alpha), float(consistency_weight)
        self.hidden_dim, self.projection_dim = int(hidden_dim), int(projection_dim)
        self.batch_size, self.epochs = int(batch_size), int(epochs)
        feature_dim = network.outputs[0].shape[-1]
        self.projector = _head(hidden_dim, projection_dim, "projector")
        self.predictor = _head(hidden_dim, projection_dim, "predictor")
        self.projector.build((None, feature_dim))
        self.predictor.build((None, projection_dim))
        self.mix_seed = keras.random.SeedGenerator(seed=self.seed)
        self._selection = Untracked(model=None)

    def get_config(self) -> dict:
        return {**super().get_config(), "relabel_threshold": self.relabel_threshold,
                "select_threshold": self.select_threshold, "k": self.k,
                "class_prior": self.class_prior, "alpha": self.alpha,
                "consistency_weight": self.consistency_weight, "hidden_dim": self.hidden_dim,
                "projection_dim": self.projection_dim, "batch_size": self.batch_size,
                "epochs": self.epochs}

    @property
    def reference_epochs(self) -> int:
        """The `epochs` option: the cosine schedule's length."""
        return self.epochs

    def default_optimizer(self):
        """SGD 0.02 with momentum 0.9, a cosine decay to 4e-4 over the run, weight decay 5e-4."""
        settings = self.paper_optimizer
        optimizer = keras.optimizers.SGD(learning_rate=settings["learning_rate"],
                                         momentum=settings["momentum"])
        schedule = CosineEpochLearningRate(settings["learning_rate"],
                                           settings["minimum_learning_rate"],
                                           self.reference_epochs)
        return optimizer, schedule, settings["weight_decay"]

    # ----------------------------------------------------------------- step
    def pooled_features(self, images, training: bool):
        """`(pooled encoder features, scores)`: the feature map averaged over positions."""
        feature_map, scores = self.features_and_scores(images, training=training)
        return ops.mean(feature_map, axis=(1, 2)), scores

    def classification_term(self, inputs, targets, labels):
        """Soft cross-entropy on mixup of `inputs` (one lambda, one permutation).

        Args:
            inputs: `(R, H, W, C)` rows to mix (the clean views).
            targets: `(R, C)` their targets.
            labels: `(R,)` their labels, for the accuracy.

        Returns:
            `(loss, accuracy)`: the accuracy of the mixed rows against the
            label of the sample that dominates each (`lambda >= 0.5`).
        """
        mixed, mixed_targets, _, _ = mix(inputs, targets, self.alpha, self.mix_seed)
        scores = self.scores(mixed, training=True)
        loss = ops.mean(losses.soft_cross_entropy(scores, mixed_targets, self.from_logits))
        return loss, losses.accuracy(ops.stop_gradient(scores), labels)

    def consistency_term(self, weak, strong):
        """`-cos(h(g(f(strong))), stop_gradient(g(f(weak))))`, averaged."""
        weak_features, _ = self.pooled_features(weak, training=True)
        strong_features, _ = self.pooled_features(strong, training=True)
        target = self.projector(weak_features, training=True)
        prediction = self.predictor(self.projector(strong_features, training=True),
                                    training=True)
        return losses.negative_cosine_similarity(prediction, target)

    def clean_rows(self, batch):
        """The clean views stacked `[v1; v2]`, their one-hot targets and labels."""
        labels = ops.concatenate([batch["clean_labels"]] * 2, axis=0)
        inputs = ops.concatenate([batch["clean_views"][:, 0], batch["clean_views"][:, 1]], 0)
        return inputs, ops.one_hot(ops.cast(labels, "int32"), self.num_classes), labels

    def compute_train_loss(self, data, phase):
        batch = data[0]
        classification, accuracy = self.classification_term(*self.clean_rows(batch))
        consistency = self.consistency_term(batch["all_views"][:, 0], batch["all_views"][:, 1])
        loss = classification + self.consistency_weight * consistency
        return loss, {"loss": loss, "accuracy": accuracy,
                      "classification_loss": classification, "consistency_loss": consistency}

    def batch_size_of(self, data):
        batch = data[0]
        if isinstance(batch, dict):
            return ops.shape(batch["clean_labels"])[0]
        return ops.shape(batch)[0]

    # ------------------------------------------------------------ selection
    def selection_outputs(self, view) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features and class probabilities of every sample of `view` (inference)."""
        if self._selection.model is None:
            images = keras.Input(self.image_shape)
            features, scores = self.network(self.preprocessing(images), training=False)
            probabilities = ops.softmax(losses.log_probabilities(scores, self.from_logits))
            self._selection.model = keras.Model(
                images, [ops.mean(features, axis=(1, 2)), probabilities])
        features, probabilities = self._selection.model.predict(view, verbose=0)
        return np.asarray(features), np.asarray(probabilities)

    # ------------------------------------------------------------------ fit
    def training_data(self, x, y, batch_size=None, shuffle=True, verbose=1):
        """`SSRData` from arrays, an `IndexedDataset`, a dataset, or an `SSRData`."""
        if isinstance(x, SSRData):
            if y is not None or batch_size is not None:
                raise ValueError("An SSRData carries its labels and batch size.")
            data = x
        else:
            if is_dataset(x) and not isinstance(x, IndexedDataset):
                x, y, batch_size = self.input_pipeline.identified_samples(x, y, batch_size, verbose)
            clean_labels = None
            if isinstance(x, IndexedDataset):
                if y is not None:
                    raise ValueError("Pass labels inside the IndexedDataset, not as `y`.")
                x, y, clean_labels = x.images, x.labels, x.clean_labels
            if not is_image_array(x):
                raise ValueError(
                    f"method={self.method_name!r} trains on images `fit(x, y)`, a "
                    "tf.data.Dataset or keras.utils.PyDataset of (images, labels), an "
                    f"IndexedDataset or an SSRData; got {type(x).__name__}.")
            if y is None:
                raise ValueError("fit(x, y) needs labels `y` with numpy images.")
            views = ("autoaugment", "weak") if self.augment else ("none", "none")
            data = SSRData(x, y, batch_size or self.batch_size, self.num_classes,
                           strong=views[0], weak=views[1], seed=self.seed,
                           clean_labels=clean_labels)
        check_class_count(data.num_classes, self.num_classes)
        if self.image_shape is not None and data.images.shape[1:] != self.image_shape:
            raise ValueError(f"Images have shape {data.images.shape[1:]}; the model expects "
                             f"{self.image_shape}.")
        self.input_pipeline.decide_preprocessing(data.images)
        # Batches are dicts, which Keras cannot trace the model with; every
        # other sub-model is built already.
        self.preprocessing.build((None, *data.images.shape[1:]))
        return data

    def method_callbacks(self, source):
        selection = SSRSelection(source, self.relabel_threshold, self.select_threshold,
                                 self.k, self.class_prior)
        return [selection] + super().method_callbacks(source)


@keras.saving.register_keras_serializable(package="keras_sanm")
class SANMSSRTrainer(SANMBranch, SSRTrainer):
    """SANM(SSR): SSR with SANM's masked copies of the clean samples (a proposal).

    The SANM paper reports SANM(SSR) but publishes no code for it; this
    follows what its SANM(DivideMix) code does with its labeled samples.
    Each step masks the first strong view of the clean batch at its peak and
    valley (the boxes located on the network's feature map, computed without
    gradient; their size set by the selection score `w`, SSR's own measure of
    how much a label is trusted), gives the copies the sample's target
    softened by the mask ratio, and mixes them with the two clean views:
    `L = L_ce([v1; v2; m+; m-]) + lambda_fc L_fc + reconstruction_weight
    L_rec`, where the decoder reconstructs `v1` from both masked copies.

    Args:
        network: a model returning `(feature_map, scores)`.
        num_classes: number of classes.
        reconstruction_weight, clip_negative_targets, mask_config,
            mask_aspect: SANM's options (`SANMBranch`).
        **kwargs: `SSRTrainer`'s options.
    """

    log_names = SSRTrainer.log_names + SANMBranch.sanm_log_names
    # SSR's selection scores every sample each epoch: no GMM refit.
    estimates_label_quality = True

    def compute_train_loss(self, data, phase):
        batch = data[0]
        inputs, targets, labels = self.clean_rows(batch)
        first = batch["clean_views"][:, 0]
        features = ops.stop_gradient(self.features_and_scores(first, training=True)[0])
        b = ops.shape(first)[0]
        masked, masked_targets, ratio = self.masked_copies(
            first, features, batch["clean_quality"], targets[:b])
        classification, accuracy = self.classification_term(
            ops.concatenate([inputs, masked], axis=0),
            ops.concatenate([targets, masked_targets], axis=0),
            ops.concatenate([labels, labels], axis=0))
        masked_features = self.features_and_scores(masked, training=True)[0]
        reconstruction = self.reconstruction_term(0, masked_features, first)
        consistency = self.consistency_term(batch["all_views"][:, 0], batch["all_views"][:, 1])
        loss = (classification + self.consistency_weight * consistency
                + self.reconstruction_weight * reconstruction)
        return loss, {"loss": loss, "accuracy": accuracy,
                      "classification_loss": classification, "consistency_loss": consistency,
                      "reconstruction_loss": reconstruction, "mask_ratio": ratio}
