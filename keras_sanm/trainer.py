"""`NoisyLabelTrainer`: the Keras model every training method derives from."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_sanm import losses
from keras_sanm.backend import TrainStep
from keras_sanm.callbacks import EpochLearningRate, LabelQualityUpdate, NonFiniteLossGuard
from keras_sanm.data.dataset_cache import cache_dataset
from keras_sanm.data.image_files import ImageBatches
from keras_sanm.data.indexed_dataset import IndexedDataset
from keras_sanm.distribution import check_batch_size
from keras_sanm.label_quality import (
    clean_probability,
    per_sample_cross_entropy,
    split_statistics,
)
from keras_sanm.phases import TRAIN
from keras_sanm.preprocessing import ImagePreprocessing
from keras_sanm.validation import (
    check_class_count,
    check_dataset_batch,
    check_images,
    check_labels,
    is_dataset,
    is_image_array,
    is_lazy_images,
)

ACCURACY_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy")


class Untracked:
    """Holds objects that Keras' attribute tracking must not adopt."""

    def __init__(self, **items):
        self.__dict__.update(items)


def check_no_float16(model: keras.Model) -> None:
    """Refuses float16 computation, which would train without loss scaling.

    Under `mixed_float16` Keras' own `train_step` multiplies the loss by a
    dynamic scale so that small gradients survive float16; the methods'
    steps do not, so their updates would be wrong without any error.
    `mixed_bfloat16` has float32's range and needs no scaling.
    """
    pending, seen = [model, getattr(model, "network", model)], set()
    while pending:
        layer = pending.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if getattr(layer.dtype_policy, "compute_dtype", None) == "float16":
            raise ValueError(
                f"Layer {layer.name!r} computes in float16 (dtype policy "
                f"{layer.dtype_policy.name!r}). The noisy-label steps do not scale the loss, "
                "which float16 training needs; use keras.config.set_dtype_policy("
                "'mixed_bfloat16') (the same speed-up on GPUs with bfloat16 units, no "
                "scaling needed) or float32, before creating the base model and calling wrap().")
        pending.extend(getattr(layer, "layers", []))  # a model's layers, nested models'


class NoisyLabelTrainer(TrainStep, keras.Model):
    """Base class of the training wrappers returned by `keras_sanm.wrap`.

    A subclass implements `compute_train_loss(data, phase) -> (loss, logs)` with
    `keras.ops` only; `TrainStep` (chosen for the current backend in
    `keras_sanm.backend`) turns it into gradients and an optimizer update.
    The class adds what every method shares: paper-default `compile()`,
    input checks and epoch callbacks in `fit`, tracked logs, evaluation.

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
    # belongs to a 300-epoch run and scales with the length of `fit`.
    paper_optimizer = {
        "learning_rate": 0.02,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "drop_epochs": (150,),
        "drop_factor": 0.1,
        "reference_epochs": 300,
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

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        """The constructor arguments, with the network(s) serialized (for `model.save`).

        Subclasses add their own options; `SANMBranch` adds SANM's.
        """
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "from_logits": self.from_logits,
            "seed": self.seed,
            "preprocessing": self.preprocessing.get_config(),
            "augment": self.augment,
            **self.network_config(),
        }
        return config

    def network_config(self) -> dict:
        """The serialized network(s), under the constructor's argument name."""
        return {"network": keras.saving.serialize_keras_object(self.network)}

    @staticmethod
    def deserialize_networks(config: dict, custom_objects=None) -> dict:
        """`config` with its `network` / `networks` entries rebuilt as models."""
        config = dict(config)

        def load(item):
            return keras.saving.deserialize_keras_object(item, custom_objects=custom_objects)

        if "network" in config:
            config["network"] = load(config["network"])
        if "networks" in config:
            config["networks"] = [load(item) for item in config["networks"]]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        # Models saved before they owned their preprocessing took network
        # inputs as they were given.
        config.setdefault("preprocessing", "none")
        return cls(**cls.deserialize_networks(config, custom_objects))

    def seed_generators(self) -> list:
        """Every `SeedGenerator` of the model and its layers, in a fixed order.

        Their states (masks, mixing weights, dropout) are training state that
        Keras does not write by itself; `save_own_variables` adds them.
        """
        generators, seen = [], set()
        for layer in self._flatten_layers(include_self=True):
            for generator in layer._seed_generators:
                if id(generator) not in seen:
                    seen.add(id(generator))
                    generators.append(generator)
        return generators

    def save_own_variables(self, store) -> None:
        """The model's own variables, then every random-seed state (`seed_<i>`)."""
        super().save_own_variables(store)
        for i, generator in enumerate(self.seed_generators()):
            store[f"seed_{i}"] = generator.state

    def load_own_variables(self, store) -> None:
        """Inverse of `save_own_variables`; files without seed states load the variables only."""
        seeds = {key: store[key] for key in store.keys() if str(key).startswith("seed_")}
        super().load_own_variables({key: store[key] for key in store.keys() if key not in seeds})
        generators = self.seed_generators()
        if seeds and len(seeds) != len(generators):
            raise ValueError(
                f"The saved model has {len(seeds)} random-seed states; this one has "
                f"{len(generators)}. Load it into a model wrapped with the same method, "
                "SANM setting and backbone."
            )
        for i, generator in enumerate(generators):
            if f"seed_{i}" in seeds:
                value = keras.ops.convert_to_numpy(seeds[f"seed_{i}"])
                generator.state.assign(value.astype(generator.state.dtype))

    def get_compile_config(self) -> dict | None:
        """The arguments of the last `compile()` (`None` before it).

        `optimizer=None` (the method's reference optimizer and schedule) is
        kept as `None`, so a loaded model trains on with the same schedule.
        """
        return None if self._compile_arguments is None else dict(self._compile_arguments)

    def compile_from_config(self, config) -> None:
        """Compiles a loaded model as it was compiled when saved, optimizer state built."""
        config = dict(config)
        if config.get("optimizer") is not None:
            config["optimizer"] = keras.saving.deserialize_keras_object(config["optimizer"])
        self.compile(**config)
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

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
        """`(loss, logs)` of one training step of `phase` (a `keras_sanm.phases.Phase`)."""
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
    def reference_run_length(self) -> int:
        """The epoch count the reference learning-rate drops belong to."""
        return self.paper_optimizer["reference_epochs"]

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
            reference_epochs=self.reference_run_length(),
        )
        return optimizer, schedule, settings["weight_decay"]

    def fit_schedule_to_run(self, epochs: int) -> None:
        """Places the default schedule's learning-rate drops for a `fit` of `epochs`."""
        if self._lr_schedule is not None and hasattr(self._lr_schedule, "fit_to_run"):
            self._lr_schedule.fit_to_run(int(epochs))

    def compile(self, optimizer=None, weight_decay: float | None = None, loss=None,
                metrics=None, lr_drop_epochs=None, **kwargs):
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
            loss: not accepted: the method defines its loss.
            metrics: `None` or `["accuracy"]` (accuracy is always reported).
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, `run_eagerly`, ...).
        """
        if loss is not None:
            raise ValueError(
                f"method={self.method_name!r} defines its own loss; call compile() "
                "without `loss`."
            )
        check_no_float16(self)
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
            **kwargs,
        }
        for metric in metrics or []:
            if metric not in ACCURACY_NAMES:
                raise ValueError(
                    f"Unsupported metric {metric!r}: the wrapper reports loss, "
                    "accuracy and the method's own terms. Evaluate other metrics "
                    "on model.predict(x)."
                )
        if optimizer is None:
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
        super().compile(optimizer=optimizer, **kwargs)

    # --------------------------------------------------------------------- fit
    def training_source(self, x, y, batch_size, shuffle, verbose=1):
        """Wraps `fit`'s input into what the step consumes, after checking it.

        `verbose` 0 hides the progress bar of a dataset's on-disk copy."""
        if batch_size is not None and (isinstance(x, IndexedDataset) or is_dataset(x)):
            raise ValueError("batch_size is set by the dataset; pass it only with arrays.")
        if isinstance(x, IndexedDataset):
            if y is not None:
                raise ValueError("Pass labels inside the IndexedDataset, not as `y`.")
            check_class_count(x.num_classes, self.num_classes)
            check_labels(x.labels, None, self.num_classes)
        else:
            if is_dataset(x):
                if y is not None:
                    raise ValueError("A dataset yields its own labels; do not pass `y`.")
                if not self.needs_sample_indices:
                    self.decide_preprocessing(self.first_images(x))
                    return x
                x, y, batch_size = self.identified_samples(x, verbose=verbose)
            if not is_image_array(x) and y is None:
                raise ValueError(
                    "fit() takes numpy arrays `fit(x, y)`, a keras_sanm.data.IndexedDataset, "
                    "or a tf.data.Dataset / keras.utils.PyDataset of (x, y); got "
                    f"{type(x).__name__}."
                )
            if y is None:
                raise ValueError("fit(x, y) needs labels `y` with numpy images.")
            # IndexedDataset checks the arrays (rank, NaN/Inf, labels) once.
            x = IndexedDataset(
                x, y, batch_size or 32, num_classes=self.num_classes,
                augment=self.augment, shuffle=shuffle, seed=self.seed,
            )
        check_images(x.images[:1], self.image_shape)
        self.decide_preprocessing(x.images)
        self.prepare_label_quality(x)
        return x

    def identified_samples(self, dataset, y=None, batch_size=None, verbose=1):
        """`(images, labels, batch_size)` of an `(x, y)` dataset, with sample identities.

        Methods with per-sample state read a `tf.data.Dataset` or
        `keras.utils.PyDataset` once into an on-disk copy
        (`keras_sanm.data.cache_dataset`): sample `i` is the `i`-th image of
        that pass. The batch size is the dataset's (its first batch). A
        later `fit` on the same dataset object reuses the copy. `y` and
        `batch_size` (what `fit` was given besides) must be `None`;
        `verbose` 0 hides the copy's progress bar (`fit(verbose=0)`).
        """
        if y is not None or batch_size is not None:
            raise ValueError("A dataset carries its labels and batch size; pass neither "
                             "`y` nor `batch_size`.")
        cached = self._held_cache
        if cached is not None and cached[0] is dataset:
            return cached[1]
        print(f"method={self.method_name!r} keeps per-sample state, so the training dataset "
              "is read once into an on-disk copy (sample i = the i-th image of this pass; "
              "keras_sanm.data.cache_dataset).")
        images, labels = cache_dataset(dataset, image_shape=self.image_shape,
                                       num_classes=self.num_classes,
                                       verbose=0 if verbose == 0 else 1)
        batch_size = min(images.source_batch_size, len(labels))
        print(f"{len(labels)} training samples of shape {images.shape[1:]}, in batches of "
              f"{batch_size} (the dataset's).")
        object.__setattr__(self, "_held_cache", (dataset, (images, labels, batch_size)))
        return images, labels, batch_size

    _held_cache = None

    def decide_preprocessing(self, images) -> None:
        """Fixes the input preprocessing from training images at the first `fit`.

        Later fits check the images against the decision instead. What was
        inferred is printed once.

        Args:
            images: `(N, H, W, C)` training images, or a sample of them.
        """
        message = self.preprocessing.decide(images)
        if message:
            print(message)

    def first_images(self, dataset, count: int = 1024) -> np.ndarray:
        """The images of a dataset's first batches (at least `count` where it has
        them), each batch checked as `(images, labels)` before training starts."""
        parts, total = [], 0
        for images, _ in self.iterate_batches(dataset, checked=True):
            parts.append(images)
            total += len(images)
            if total >= count:
                break
        if not parts:
            raise ValueError("The dataset yields no batches.")
        return np.concatenate(parts)

    def check_inputs(self, x, what: str = "images") -> None:
        """Refuses images (an array or the first batch of a dataset) of another scale
        than the model was trained on, before any step; a model used before any
        `fit` fixes its preprocessing from them instead."""
        if x is None:
            return
        if is_dataset(x) and not isinstance(x, IndexedDataset):
            batch = x[0] if isinstance(x, keras.utils.PyDataset) else next(iter(x))
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            x = keras.ops.convert_to_numpy(x)
        elif isinstance(x, IndexedDataset):
            x = x.images
        if hasattr(x, "shape") and len(x.shape) == 4:
            if not self.preprocessing.decided:
                # Used before any fit: these images fix it, as a first fit would.
                self.decide_preprocessing(x)
                return
            self.preprocessing.check(x, what)

    def decide_preprocessing_from_batch(self, batch) -> None:
        """Before any `fit`, the first image tensor of `batch` fixes the preprocessing."""
        if not self.preprocessing.decided:
            images = next((np.asarray(t) for t in keras.tree.flatten(batch)
                           if len(np.shape(t)) >= 4), None)
            if images is not None:
                self.decide_preprocessing(images.reshape((-1, *images.shape[-3:])))

    def train_on_batch(self, x=None, y=None, *args, **kwargs):
        """See `keras.Model.train_on_batch`; before any `fit`, the batch's images
        fix the input preprocessing (as a first `fit` would)."""
        self.decide_preprocessing_from_batch(x)
        return super().train_on_batch(x, y, *args, **kwargs)

    def check_validation_data(self, validation_data) -> None:
        """`check_inputs` for `fit`'s `validation_data` (arrays or a dataset)."""
        if validation_data is not None:
            self.check_inputs(validation_data[0] if isinstance(validation_data, (tuple, list))
                              else validation_data, "validation images")

    def keras_readable(self, x, y=None, batch_size=None):
        """`(x, y, batch_size)` as Keras' own loops read them.

        Keras reads numpy arrays and datasets but not array-likes read on
        access (`keras_sanm.data.ImageFiles`): those become `ImageBatches` of
        `batch_size` images (with their checked labels), which carry `y` and
        the batch size themselves. Anything else passes through.
        """
        if not is_lazy_images(x):
            return x, y, batch_size
        labels = None if y is None else check_labels(y, len(x), self.num_classes)
        return ImageBatches(x, labels, batch_size), None, None

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """See `keras.Model.evaluate`; takes images as `fit` does (raw, any pixel scale
        the model was trained with)."""
        self.check_inputs(x)
        x, y, batch_size = self.keras_readable(x, y, kwargs.pop("batch_size", None))
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """The base model's class scores of raw images (see `keras.Model.predict`)."""
        self.check_inputs(x)
        x, _, batch_size = self.keras_readable(x, None, kwargs.pop("batch_size", None))
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

    def prepare_label_quality(self, source) -> None:
        """Gives an `IndexedDataset` one `label_quality` column per network (1 = clean).

        A step of a two-network method reads its peer's column.
        """
        members = len(self.quality_members())
        if source.label_quality.shape[1] != members:
            source.label_quality = np.ones((len(source.images), members), np.float32)

    def iterate_batches(self, dataset, checked: bool = False):
        """`(images, labels)` numpy batches of an `(x, y)` dataset, one pass
        (each checked by `check_dataset_batch` when `checked`)."""
        if isinstance(dataset, keras.utils.PyDataset):
            batches = (dataset[i] for i in range(len(dataset)))
        else:
            batches = iter(dataset)
        for batch in batches:
            if checked:
                yield check_dataset_batch(batch, self.image_shape, self.num_classes)
            else:
                images, labels = batch
                yield keras.ops.convert_to_numpy(images), keras.ops.convert_to_numpy(labels)

    # SANM methods refit each sample's label quality (GMM) every epoch from epoch 1.
    refits_label_quality = False

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

    # ----------------------------------------------------------- label quality
    def quality_members(self):
        """Models whose per-sample losses estimate label quality (one per network)."""
        return [self]

    def label_quality(self, x, y=None, batch_size: int = 256) -> np.ndarray:
        """Each sample's probability that its given label is correct.

        Per-sample cross-entropy of the model's predictions (inference mode)
        and the clean posterior of a two-component GMM fitted on them, as the
        methods' own division (docs/algorithms.md, "Label quality"); with two networks, the
        mean of both networks' posteriors.

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
        members = self.quality_members()
        if is_dataset(x):
            if y is not None:
                raise ValueError("A dataset yields its own labels; do not pass `y`.")
            self.check_inputs(x)
            losses_ = self.dataset_member_losses(x, members)
        else:
            images = check_images(x, self.image_shape)
            self.check_inputs(images)
            labels = check_labels(y, len(images), self.num_classes)
            losses_ = [self.member_losses(member, images, labels, batch_size)
                       for member in members]
        qualities = [clean_probability(loss, seed=self.seed)[0] for loss in losses_]
        return np.mean(qualities, axis=0).astype(np.float32)

    def dataset_member_losses(self, dataset, members) -> list[np.ndarray]:
        """Each member's inference-mode cross-entropy of every sample of an
        `(images, labels)` dataset, in one pass (every batch checked)."""
        parts: list[list] = [[] for _ in members]
        for images, labels in self.iterate_batches(dataset, checked=True):
            for part, member in zip(parts, members):
                scores = keras.ops.convert_to_numpy(member.predict_on_batch(images))
                part.append(per_sample_cross_entropy(scores, labels, self.from_logits))
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
        inputs, _, batch_size = self.keras_readable(inputs, None, batch_size)
        options = {} if batch_size is None else {"batch_size": batch_size}
        scores = member.predict(inputs, verbose=0, **options)
        return per_sample_cross_entropy(scores, labels, self.from_logits)

    def dataset_losses(self, source):
        """Cross-entropy of every sample of an `(x, y)` dataset, read once as it comes."""
        parts = [(self.predict_on_batch(x), y) for x, y in self.iterate_batches(source)]
        scores = np.concatenate([keras.ops.convert_to_numpy(p[0]) for p in parts])
        labels = np.concatenate([p[1] for p in parts]).reshape(-1)
        return per_sample_cross_entropy(scores, labels, self.from_logits), labels

    def update_label_quality(self, source, seed: int | None = None) -> dict:
        """Refits the clean probabilities of `source` and returns split statistics.

        `source.label_quality` becomes an `(N, networks)` array whose column
        `k` is network `k`'s clean posterior (a step of a two-network method
        reads its peer's column). The statistics are those of the mean over
        networks.
        """
        members = self.quality_members()
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
        self.store_loss_gmm(losses_, gmm)
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
        return clean_probability(losses_, seed=self.seed)[0].astype(np.float32)

    def store_loss_gmm(self, losses_, gmm):
        """Keeps a fitted GMM for methods that evaluate quality inside the step."""
        raise NotImplementedError(
            f"method={self.method_name!r} needs sample indices for label quality."
        )


def _rank(tensor) -> int | None:
    """The rank of a tensor or array; `None` when unknown (or not a tensor)."""
    shape = getattr(tensor, "shape", None)
    if shape is None:
        return None
    try:
        return len(shape)
    except (TypeError, ValueError):  # a TensorFlow shape of unknown rank
        return None
