"""`NoisyLabelTrainer`: the Keras model every training method derives from."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_sanm import methods, protocols
from keras_sanm.backend import TrainStep
from keras_sanm.data.preprocessing import ImagePreprocessing
from keras_sanm.distribution import check_batch_size
from keras_sanm.messages import reports_under_fit_verbosity
from keras_sanm.training import losses, saving, seed_state
from keras_sanm.training.callbacks import EpochLearningRate, LabelQualityUpdate, NonFiniteLossGuard
from keras_sanm.training.input import InputPipeline
from keras_sanm.training.label_quality import LabelQualityEstimator
from keras_sanm.training.loss_scaling import computes_in_float16, with_loss_scaling
from keras_sanm.training.phases import TRAIN

ACCURACY_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy")


class Untracked:
    """Holds objects that Keras' attribute tracking must not adopt."""

    def __init__(self, **items):
        self.__dict__.update(items)


class NoisyLabelTrainer(keras.Model):
    """Base class of the training wrappers returned by `keras_sanm.wrap`.

    A subclass implements `compute_train_loss(data, phase) -> (loss, logs)` with
    `keras.ops` only. The class adds what every method shares: paper-default
    `compile()`, `fit` with the method's epoch callbacks, forward passes and
    tracked logs. It holds three parts as objects it calls, each in its own
    file: `backend_step` (a `keras_sanm.backend.TrainStep` for the current
    backend, which turns the loss into gradients and an optimizer update),
    `input_pipeline` (an `InputPipeline`: checks and wraps what `fit`,
    `evaluate` and `predict` take) and `label_quality_estimator` (a
    `LabelQualityEstimator`: per-sample losses and their GMM). Saving calls
    the functions of `training/saving.py` and `training/seed_state.py`.

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
        self.backend_step = TrainStep(self)
        self.input_pipeline = InputPipeline(self)
        self.label_quality_estimator = LabelQualityEstimator(self)
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

    # ------------------------------------------------------------------ steps
    def train_step(self, *args):
        """Keras' step (`backend_step`): one training step of `default_phase`."""
        return self.backend_step.train_step(*args)

    def test_step(self, *args):
        """Keras' evaluation step (`backend_step`): `compute_test_logs` of one batch."""
        return self.backend_step.test_step(*args)

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
        if self.one_step_per_call and kwargs.get("steps_per_execution", 1) != 1:
            raise ValueError(
                f"method={self.method_name!r} runs one step per call; "
                "steps_per_execution must be 1."
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
        self.arrange_optimizer()

    # Whether every step is its own call (methods that run their steps in turns).
    one_step_per_call = False

    def arrange_optimizer(self) -> None:
        """Shapes the compiled optimizer for the steps; one optimizer for every weight here.

        Two-network methods give each network its own copy
        (`TwoNetworkTrainer`).
        """

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
    def fit(self, x=None, y=None, batch_size=None, epochs=None, callbacks=None,
            shuffle=True, **kwargs):
        """Trains on noisy labels; see `keras.Model.fit`.

        Args:
            x: images `(N, H, W, C)` with `y` (a numpy array, or a
                `keras_sanm.data.ImageFiles` read from disk batch by batch),
                an `IndexedDataset`, or a `tf.data.Dataset` /
                `keras.utils.PyDataset` of `(x, y)`.
            y: integer (noisy) labels `(N,)` when `x` is an array.
            batch_size: batch size for array input (default 32, or the
                method's).
            epochs: last epoch index (as in Keras); default `default_epochs`
                (1, as Keras; the reference run for methods that run their
                own epochs).
            callbacks: user callbacks, run after the method's own.
            shuffle: reshuffle array input every epoch.
            **kwargs: passed to `keras.Model.fit` (`validation_data`,
                `initial_epoch`, `verbose`, ...).

        Returns:
            The Keras `History`.
        """
        self.check_fit_options(shuffle, kwargs)
        if not self.compiled:
            self.compile()
        epochs = self.default_epochs if epochs is None else int(epochs)
        data = self.training_data(x, y, batch_size, shuffle,
                                  verbose=kwargs.get("verbose", "auto"))
        self.input_pipeline.check_validation_data(kwargs.get("validation_data"))
        check_batch_size(getattr(data, "batch_size", None))
        check_batch_size(getattr(data, "warmup_batch_size", None), "warmup_batch_size")
        self.fit_schedule_to_run(epochs)
        method_callbacks = self.method_callbacks(data)
        self.start_fit(data, method_callbacks)
        return self.run_epochs(data, epochs, method_callbacks, list(callbacks or []), kwargs)

    @property
    def default_epochs(self) -> int:
        """The epochs of a `fit` that names none: one, as in Keras."""
        return 1

    def check_fit_options(self, shuffle: bool, options: dict) -> None:
        """Refuses `fit` options the method cannot honour, before any step."""
        if "sample_weight" in options or "class_weight" in options:
            raise ValueError("sample_weight/class_weight are not supported by the wrappers.")

    def training_data(self, x, y, batch_size=None, shuffle: bool = True, verbose="auto"):
        """`fit`'s input, checked and wrapped into what the steps consume (`input_pipeline`)."""
        return self.input_pipeline.training_source(x, y, batch_size, shuffle, verbose=verbose)

    def run_epochs(self, data, epochs: int, method_callbacks: list, callbacks: list,
                   options: dict):
        """Runs the epochs of a `fit`: Keras' own loop over `data`.

        Args:
            data: what `training_data` returned.
            epochs: the last epoch index.
            method_callbacks: the method's callbacks (`method_callbacks`).
            callbacks: the user's callbacks, run after the method's.
            options: the other `fit` arguments (`validation_data`, `verbose`, ...).

        Returns:
            The Keras `History`.
        """
        options = dict(options)
        validation = options.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) == 2:
            x_val, y_val, options["validation_batch_size"] = self.input_pipeline.keras_readable(
                *validation, options.get("validation_batch_size"))
            options["validation_data"] = (x_val, y_val) if y_val is not None else x_val
        return super().fit(data, epochs=epochs, callbacks=method_callbacks + callbacks,
                           shuffle=False, **options)

    # ----------------------------------------------------------------- input
    def train_on_batch(self, x=None, y=None, *args, **kwargs):
        """See `keras.Model.train_on_batch`; before any `fit`, the batch's images
        fix the input preprocessing (as a first `fit` would)."""
        self.input_pipeline.decide_preprocessing_from_batch(x)
        return super().train_on_batch(x, y, *args, **kwargs)

    @reports_under_fit_verbosity
    def evaluate(self, x=None, y=None, *args, **kwargs):
        """See `keras.Model.evaluate`; takes images as `fit` does (raw, any pixel scale
        the model was trained with)."""
        self.input_pipeline.check_input_images(x)
        x, y, batch_size = self.input_pipeline.keras_readable(x, y, kwargs.pop("batch_size", None))
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        return super().evaluate(x, y, *args, **kwargs)

    @reports_under_fit_verbosity
    def predict(self, x, *args, **kwargs):
        """The base model's class scores of raw images (see `keras.Model.predict`)."""
        self.input_pipeline.check_input_images(x)
        x, _, batch_size = self.input_pipeline.keras_readable(x, None, kwargs.pop("batch_size", None))
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        return super().predict(x, *args, **kwargs)

    def predict_proba(self, x, batch_size: int | None = None, verbose="auto") -> np.ndarray:
        """Class probabilities of raw images (a softmax of logits, or the model's own).

        Args:
            x: images or a dataset of images, as for `predict`.
            batch_size: prediction batch size for arrays.
            verbose: as in `keras.Model.predict`.

        Returns:
            `(N, classes)` float32 probabilities.

        Example:
        >>> probabilities = model.predict_proba(x_test)
        """
        scores = self.predict(x, batch_size=batch_size, verbose=verbose)
        if self.from_logits:
            scores = keras.ops.convert_to_numpy(keras.ops.softmax(scores, axis=-1))
        return np.asarray(scores, dtype=np.float32)

    # --------------------------------------------------------- label quality
    def quality_members(self) -> list:
        """Models whose per-sample losses estimate label quality (one per network)."""
        return [self]

    def label_quality(self, x, y=None, batch_size: int = 256) -> np.ndarray:
        """Each sample's probability that its given label is correct.

        Per-sample cross-entropy of the model's predictions (inference mode)
        and the clean posterior of a two-component GMM fitted on them, as the
        methods' own division (docs/algorithms.md, "Label quality"); with two
        networks, the mean of both networks' posteriors
        (`label_quality_estimator`).

        Args:
            x: `(N, H, W, C)` raw images, in the pixel scale the model was
                trained on (preprocessed by the model, as in `fit`); or a
                `tf.data.Dataset` / `keras.utils.PyDataset` of
                `(images, labels)`, read once in its own order (the values
                come in that order: iterate it unshuffled to match them
                to samples).
            y: `(N,)` given integer labels (with images only).
            batch_size: prediction batch size for images.

        Returns:
            `(N,)` float32 clean probabilities.

        Example:
        >>> quality = model.label_quality(x_train, y_noisy)
        """
        return self.label_quality_estimator.label_quality(x, y, batch_size)

    def update_label_quality(self, source, seed: int | None = None) -> dict:
        """Refits the clean probabilities of `fit`'s data (an epoch callback's work).

        Returns:
            The split statistics of the fitted GMM.
        """
        return self.label_quality_estimator.update_label_quality(source, seed)

    def training_label_quality(self, source) -> np.ndarray:
        """Each training sample's clean probability under the model as it is now."""
        return self.label_quality_estimator.training_label_quality(source)

    def store_loss_gmm(self, losses_, gmm) -> None:
        """Keeps a fitted GMM for methods that evaluate quality inside the step."""
        raise NotImplementedError(
            f"method={self.method_name!r} needs sample indices for label quality."
        )

    # ---------------------------------------------------------------- saving
    def get_config(self) -> dict:
        """The constructor arguments, the network(s) serialized (for `model.save`).

        Method classes add their own options.
        """
        return saving.base_config(self)

    def network_config(self) -> dict:
        """The serialized network(s), under the constructor's argument name."""
        return {"network": keras.saving.serialize_keras_object(self.network)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**saving.constructor_arguments(config, custom_objects))

    def get_compile_config(self) -> dict | None:
        """The arguments of the last `compile()` (`None` before it).

        `optimizer=None` (the method's reference optimizer and schedule) is
        kept as `None`, so a loaded model trains on with the same schedule.
        """
        return None if self._compile_arguments is None else dict(self._compile_arguments)

    def compile_from_config(self, config) -> None:
        """Compiles a loaded model as it was compiled when saved, optimizer state built."""
        saving.compile_like_saved(self, config)

    def save_own_variables(self, store) -> None:
        """The model's own variables, then every random-seed state (`seed_<i>`)."""
        super().save_own_variables(store)
        seed_state.save_seed_states(self, store)

    def load_own_variables(self, store) -> None:
        """Inverse of `save_own_variables`; files without seed states load the variables only."""
        variables, seeds = seed_state.split_seed_states(store)
        super().load_own_variables(variables)
        seed_state.load_seed_states(self, seeds)


def _rank(tensor) -> int | None:
    """The rank of a tensor or array; `None` when unknown (or not a tensor)."""
    shape = getattr(tensor, "shape", None)
    if shape is None:
        return None
    try:
        return len(shape)
    except (TypeError, ValueError):  # a TensorFlow shape of unknown rank
        return None
