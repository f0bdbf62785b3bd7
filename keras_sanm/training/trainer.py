"""`NoisyLabelTrainer`: the Keras model every training method derives from."""

from __future__ import annotations

import keras
from keras import ops

from keras_sanm import methods, protocols
from keras_sanm.backend import TrainStep
from keras_sanm.data.preprocessing import ImagePreprocessing
from keras_sanm.distribution import check_batch_size
from keras_sanm.messages import reports_under_fit_verbosity
from keras_sanm.training import losses
from keras_sanm.training.callbacks import EpochLearningRate, LabelQualityUpdate, NonFiniteLossGuard
from keras_sanm.training.input import TrainingInput
from keras_sanm.training.label_quality import LabelQualityEstimation
from keras_sanm.training.loss_scaling import computes_in_float16, with_loss_scaling
from keras_sanm.training.phases import TRAIN
from keras_sanm.training.saving import TrainerSaving

ACCURACY_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy")


class Untracked:
    """Holds objects that Keras' attribute tracking must not adopt."""

    def __init__(self, **items):
        self.__dict__.update(items)


class NoisyLabelTrainer(TrainStep, TrainerSaving, TrainingInput, LabelQualityEstimation,
                        keras.Model):
    """Base class of the training wrappers returned by `keras_sanm.wrap`.

    A subclass implements `compute_train_loss(data, phase) -> (loss, logs)` with
    `keras.ops` only; `TrainStep` (chosen for the current backend in
    `keras_sanm.backend`) turns it into gradients and an optimizer update.
    The class adds what every method shares: paper-default `compile()`,
    epoch callbacks in `fit`, forward passes and tracked logs. Three parts
    live in their own files: saving (`TrainerSaving`), input checking and
    wrapping (`TrainingInput`) and label quality (`LabelQualityEstimation`).

    Args:
        network: the classifier (a Keras model whose call returns class
            scores, or `(feature_map, scores)` when `returns_features`).
        num_classes: number of classes.
        from_logits: whether the network outputs logits (else probabilities).
        returns_features: whether `network` returns `(feature_map, scores)`.
        seed: seed of the data order, augmentation and GMM initialisation.
        preprocessing: how raw images become network inputs (see
            `ImagePreprocessing.create`); by default inferred at the first
            `fit` and applied by the model in every later call.
        augment: augmentation of training images given as arrays:
            `"weak"` (pad-4 crop and flip) or `None`; by default the
            method's reference (`reference_augment`).
    """

    method_name = ""
    # The augmentation the method's reference code trains with.
    reference_augment: str | None = "weak"
    # Whether `fit` needs sample identities (per-sample state between epochs).
    needs_sample_indices = False
    # Whether the step runs `after_step()` after the optimizer update.
    has_after_step = False
    log_names: tuple[str, ...] = ("loss", "accuracy")
    # The phase of the steps Keras' `fit` and `train_on_batch` run.
    default_phase = TRAIN
    # Reference optimisation for CIFAR (SANM-code / DM-code): the drop at 150
    # belongs to a run of `reference_epochs` (300) and scales with the length of `fit`.
    paper_optimizer = {
        "learning_rate": 0.02,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "drop_epochs": (150,),
        "drop_factor": 0.1,
    }

    def __init__(
        self,
        network: keras.Model,
        num_classes: int,
        from_logits: bool = True,
        returns_features: bool = False,
        seed: int | None = None,
        preprocessing=None,
        augment: str | None = "reference",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if augment == "reference":
            augment = self.reference_augment
        if augment not in ("weak", None):
            raise ValueError(f"augment must be 'weak', None or 'reference'; got {augment!r}.")
        self.augment = augment
        self.preprocessing = ImagePreprocessing.create(preprocessing)
        self.network = network
        self.num_classes = int(num_classes)
        self.from_logits = bool(from_logits)
        self.returns_features = returns_features
        self.seed = seed
        self.l2_weight_decay = 0.0
        self._lr_schedule = None
        self._compile_arguments = None
        # The training data and method callbacks of the `fit` in progress.
        self._active_fit = None
        self._trackers = {name: keras.metrics.Mean(name=name) for name in self.log_names}
        shape = network.inputs[0].shape if getattr(network, "inputs", None) else None
        self.image_shape = tuple(shape[1:]) if shape is not None else None
        # Every sub-model is built when it is created (save_weights works before fit).
        self.built = True

    def network_list(self) -> list:
        """The model's networks, in order (one here; two-network models have two)."""
        return [self.network]

    def after_step(self, phase):
        """State updates after the optimizer step of `phase` (weight averages); none by default.

        Runs in the compiled step on every backend, with the updated weights.
        """

    def build(self, input_shape=None):
        # Every sub-model is built at construction.
        self.built = True

    # ----------------------------------------------------------------- forward
    def features_and_scores(self, images, training: bool = False):
        """`(feature_map, scores)` of the wrapped network."""
        if not self.returns_features:
            raise ValueError("This network was wrapped without a feature map.")
        features, scores = self.network(images, training=training)
        return features, scores

    def scores(self, images, training: bool = False):
        """Class scores (logits or probabilities, as the base model outputs)."""
        out = self.network(images, training=training)
        return out[1] if self.returns_features else out

    def call(self, images, training: bool = False):
        """Class scores of raw images (preprocessed by the model first)."""
        return self.scores(self.preprocessing(images), training=training)

    def model_inputs(self, data):
        """A batch as the step computes on it: every image tensor preprocessed.

        Pipelines hand raw (augmented) images to the step, in the user's
        pixel scale; every tensor of rank 4 or more in the batch (images,
        or `(B, V, H, W, C)` views) goes through `self.preprocessing` here,
        so training, evaluation and prediction see the same inputs. Labels
        of shape `(B, 1)` (as some pipelines give them) become `(B,)`.
        """
        data = keras.tree.map_structure(
            lambda t: self.preprocessing(t) if (_rank(t) or 0) >= 4 else t, data)
        if isinstance(data, (tuple, list)) and len(data) > 1 and data[1] is not None:
            labels, rank = data[1], _rank(data[1])
            # (A traced step may see labels of unknown rank: TensorFlow relaxes
            # shapes when it retraces.)
            if rank is None or (rank == 2 and labels.shape[1] == 1):
                data = (data[0], ops.reshape(labels, (-1,)), *data[2:])
        return data

    # ------------------------------------------------------------ step pieces
    def compute_train_loss(self, data, phase):  # pragma: no cover - abstract
        """`(loss, logs)` of one training step of `phase` (a `keras_sanm.training.phases.Phase`)."""
        raise NotImplementedError

    def cross_entropy_logs(self, images, labels, training: bool):
        """Mean cross-entropy of the network on integer labels, and its logs."""
        scores = self.scores(images, training=training)
        targets = ops.one_hot(ops.cast(labels, "int32"), self.num_classes)
        loss = ops.mean(losses.soft_cross_entropy(scores, targets, self.from_logits))
        return loss, {"loss": loss, "accuracy": losses.accuracy(scores, labels)}

    def compute_test_logs(self, data):
        return self.cross_entropy_logs(data[0], data[1], training=False)[1]

    def step_variables(self, phase):
        """The variables a training step of `phase` updates, and the optimizer that does it."""
        return self.trainable_variables, self.optimizer

    def batch_size_of(self, data):
        """Number of samples in a batch (the weight of its logs)."""
        return ops.shape(data[0])[0]

    def transform_gradients(self, gradients, values, phase):
        """Coupled (PyTorch-style) L2 weight decay: `g + wd * w` for every weight."""
        if not self.l2_weight_decay:
            return list(gradients)
        wd = self.l2_weight_decay
        return [g + wd * ops.cast(v, g.dtype) for g, v in zip(gradients, values)]

    @property
    def metrics(self):
        return list(self._trackers.values())

    def update_trackers(self, logs, data):
        """Adds one batch's logs to the running means, weighted by batch size."""
        weight = ops.cast(self.batch_size_of(data), "float32")
        for name, value in logs.items():
            self._trackers[name].update_state(value, sample_weight=weight)
        return {name: self._trackers[name].result() for name in logs}

    # ----------------------------------------------------------------- compile
    @property
    def reference_epochs(self) -> int:
        """The reference run length in epochs (the method's `MethodSpec`): the
        command line's default, and the run the reference learning-rate drops
        belong to. A method with an `epochs` option returns that option."""
        return methods.get(self.method_name).reference_epochs

    def default_optimizer(self):
        """The method's reference optimizer, its epoch schedule and weight decay.

        Returns:
            `(optimizer, schedule_callback, weight_decay)`: SGD with momentum
            and a step-wise learning rate from `paper_optimizer`, its drops
            scaled to the length of each `fit`.
        """
        settings = self.paper_optimizer
        optimizer = keras.optimizers.SGD(
            learning_rate=settings["learning_rate"], momentum=settings["momentum"]
        )
        schedule = EpochLearningRate(
            settings["learning_rate"], settings["drop_epochs"], settings["drop_factor"],
            reference_epochs=self.reference_epochs,
        )
        return optimizer, schedule, settings["weight_decay"]

    def fit_schedule_to_run(self, epochs: int) -> None:
        """Places the default schedule's learning-rate drops for a `fit` of `epochs`."""
        if self._lr_schedule is not None and hasattr(self._lr_schedule, "fit_to_run"):
            self._lr_schedule.fit_to_run(int(epochs))

    def compile(self, optimizer=None, weight_decay: float | None = None, loss=None,
                metrics=None, lr_drop_epochs=None, protocol=None, **kwargs):
        """Configures training; with no optimizer, the paper's settings.

        The reference schedule multiplies the learning rate by 0.1 at half of
        the reference run (CE: epoch 150 of 300); its drops scale with the
        `epochs` of each `fit`, so a 100-epoch fit drops at epoch 50. The
        learning rate of every epoch is logged as `learning_rate`.

        Args:
            optimizer: a Keras optimizer, or `None` for the method's reference
                optimizer (SGD with momentum, its learning rate and schedule,
                coupled weight decay).
            weight_decay: coupled L2 weight decay added to every gradient
                (reference default with `optimizer=None`, else 0).
            lr_drop_epochs: with `optimizer=None`, fixed epochs (0-based) from
                which the reference learning rate is divided by 10, instead
                of the scaled reference drops. A user optimizer brings its
                own schedule (a `keras.optimizers.schedules` object).
            protocol: a real-world dataset's training protocol
                (`keras_sanm.protocols`: `"clothing1m"`, `"animal10n"`):
                its optimizer, learning rate, drops at fixed epochs and
                weight decay, instead of the method's reference ones.
            loss: not accepted: the method defines its loss.
            metrics: `None` or `["accuracy"]` (accuracy is always reported).
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, `run_eagerly`, ...). When a layer
                computes in float16 (`mixed_float16`), the optimizer is
                wrapped in a `keras.optimizers.LossScaleOptimizer`, as Keras
                does, unless it is one or `auto_scale_loss=False`.
        """
        if loss is not None:
            raise ValueError(
                f"method={self.method_name!r} defines its own loss; call compile() "
                "without `loss`."
            )
        if protocol is not None:
            protocol = protocols.get(protocol)
            if optimizer is not None or lr_drop_epochs is not None:
                raise ValueError(
                    f"protocol={protocol.name!r} sets the optimizer and its schedule; "
                    "pass either it or optimizer / lr_drop_epochs.")
        if lr_drop_epochs is not None:
            if optimizer is not None:
                raise ValueError(
                    "lr_drop_epochs sets the reference optimizer's schedule; with your own "
                    "optimizer, give it a keras.optimizers.schedules learning rate instead."
                )
            lr_drop_epochs = tuple(int(e) for e in lr_drop_epochs)
            if any(e < 1 for e in lr_drop_epochs):
                raise ValueError(f"lr_drop_epochs must be epochs >= 1; got {lr_drop_epochs}.")
        # Kept serialized (plain values) for `get_compile_config`.
        self._compile_arguments = {
            "optimizer": None if optimizer is None else keras.saving.serialize_keras_object(optimizer),
            "weight_decay": weight_decay,
            "lr_drop_epochs": lr_drop_epochs,
            "protocol": None if protocol is None else protocol.name,
            **kwargs,
        }
        for metric in metrics or []:
            if metric not in ACCURACY_NAMES:
                raise ValueError(
                    f"Unsupported metric {metric!r}: the wrapper reports loss, "
                    "accuracy and the method's own terms. Evaluate other metrics "
                    "on model.predict(x)."
                )
        if protocol is not None:
            optimizer, self._lr_schedule, default_decay = protocol.optimizer_and_schedule()
            if weight_decay is None:
                weight_decay = default_decay
        elif optimizer is None:
            optimizer, self._lr_schedule, default_decay = self.default_optimizer()
            if lr_drop_epochs is not None:
                if not isinstance(self._lr_schedule, EpochLearningRate):
                    raise ValueError(
                        f"method={self.method_name!r} has no step-wise reference schedule "
                        "for lr_drop_epochs to change."
                    )
                self._lr_schedule = EpochLearningRate(
                    self._lr_schedule.base, lr_drop_epochs, self._lr_schedule.factor
                )
            if weight_decay is None:
                weight_decay = default_decay
        else:
            self._lr_schedule = None
        if weight_decay is not None and weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {weight_decay}.")
        self.l2_weight_decay = float(weight_decay or 0.0)
        optimizer = keras.optimizers.get(optimizer)
        # float16 needs loss scaling (keras_sanm/training/loss_scaling.py); decided
        # here from the layers, whatever the policy this model was made under.
        if kwargs.pop("auto_scale_loss", True) and computes_in_float16(self):
            optimizer = with_loss_scaling(optimizer)
        super().compile(optimizer=optimizer, auto_scale_loss=False, **kwargs)

    # --------------------------------------------------------------------- fit
    # SANM methods refit each sample's label quality (GMM) every epoch from epoch 1
    # (`SANMBranch`), unless the method estimates it itself (DivideMix's co-divide).
    refits_label_quality = False
    estimates_label_quality = False

    def method_callbacks(self, source):
        """Callbacks the method needs in every `fit` (added before the user's)."""
        callbacks = [self._lr_schedule] if self._lr_schedule is not None else []
        if self.refits_label_quality:
            callbacks.insert(0, LabelQualityUpdate(source, start_epoch=1, seed=self.seed))
        return callbacks + [NonFiniteLossGuard()]

    def start_fit(self, source, callbacks) -> None:
        """Records the data and method callbacks of the `fit` that starts (for backups)."""
        self._active_fit = Untracked(source=source, callbacks=list(callbacks))

    def resumable_state(self) -> dict:
        """Objects of the running `fit` with state outside the model's variables.

        Returns:
            `{name: object}` for the training data and each method callback
            that has `get_state()` / `set_state(state)` (e.g. the data's
            random state and order, DivideMix's loss history);
            `TrainingBackup` saves and restores them.
        """
        fit = self._active_fit
        if fit is None:
            return {}
        objects = {"data": fit.source} if hasattr(fit.source, "get_state") else {}
        for callback in fit.callbacks:
            if hasattr(callback, "get_state"):
                objects[type(callback).__name__] = callback
        return objects

    @reports_under_fit_verbosity
    def fit(self, x=None, y=None, batch_size=None, epochs=1, callbacks=None,
            shuffle=True, **kwargs):
        """Trains on noisy labels; see `keras.Model.fit`.

        Args:
            x: images `(N, H, W, C)` with `y` (a numpy array, or a
                `keras_sanm.data.ImageFiles` read from disk batch by batch),
                an `IndexedDataset`, or a `tf.data.Dataset` /
                `keras.utils.PyDataset` of `(x, y)`.
            y: integer (noisy) labels `(N,)` when `x` is an array.
            batch_size: batch size for array input (default 32).
            epochs: last epoch index (as in Keras).
            callbacks: user callbacks, run after the method's own.
            shuffle: reshuffle array input every epoch.
            **kwargs: passed to `keras.Model.fit` (`validation_data`,
                `initial_epoch`, `verbose`, ...).

        Returns:
            The Keras `History`.
        """
        if not self.compiled:
            self.compile()
        if "sample_weight" in kwargs or "class_weight" in kwargs:
            raise ValueError("sample_weight/class_weight are not supported by the wrappers.")
        source = self.training_source(x, y, batch_size, shuffle,
                                      verbose=kwargs.get("verbose", "auto"))
        self.check_validation_data(kwargs.get("validation_data"))
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) == 2:
            x_val, y_val, kwargs["validation_batch_size"] = self.keras_readable(
                *validation, kwargs.get("validation_batch_size"))
            kwargs["validation_data"] = (x_val, y_val) if y_val is not None else x_val
        check_batch_size(getattr(source, "batch_size", None))
        self.fit_schedule_to_run(epochs)
        method = self.method_callbacks(source)
        self.start_fit(source, method)
        return super().fit(source, epochs=epochs, callbacks=method + list(callbacks or []),
                           shuffle=False, **kwargs)

def _rank(tensor) -> int | None:
    """The rank of a tensor or array; `None` when unknown (or not a tensor)."""
    shape = getattr(tensor, "shape", None)
    if shape is None:
        return None
    try:
        return len(shape)
    except (TypeError, ValueError):  # a TensorFlow shape of unknown rank
        return None
