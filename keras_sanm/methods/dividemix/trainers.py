"""DivideMix and SANM inside it: two networks, co-divide, MixMatch.

See docs/algorithms.md, "DivideMix" and "SANM with each method".
"""

from __future__ import annotations

import keras
from keras import ops

from keras_sanm.backend import device_kind, no_gradient
from keras_sanm.data.augment import black_level
from keras_sanm.data.indexed_dataset import IndexedDataset
from keras_sanm.data.validation import is_dataset, is_image_array
from keras_sanm.methods.dividemix import SPEC, WARMUP_AUGMENTS, device_views
from keras_sanm.methods.dividemix.co_divide import CoDivide
from keras_sanm.methods.dividemix.data import CoDivideData
from keras_sanm.methods.dividemix.mixmatch import mixmatch_losses, rampup_weight
from keras_sanm.sanm.branch import SANMBranch
from keras_sanm.sanm.masking import modulate_labels
from keras_sanm.training import losses
from keras_sanm.training.alternating import AlternatingTrainer
from keras_sanm.training.mixup import mix
from keras_sanm.training.refinement import co_refine, sharpen


@keras.saving.register_keras_serializable(package="keras_sanm")
class DivideMixTrainer(AlternatingTrainer):
    """DivideMix: two networks that divide the data for each other.

    Every epoch starts with warm-up (plain cross-entropy on all data, batch
    `2B`; plus the confidence penalty for asymmetric noise) until
    `warmup_epochs`; afterwards the `CoDivide` callback fits a GMM on each
    network's eval-pass losses, and network 1 then network 2 trains one pass
    over the labeled set its peer selected. A step refines labeled targets
    (`w * e_y + (1 - w) * p`, sharpened), co-guesses unlabeled targets with
    both networks, mixes all rows with one `Beta(alpha, alpha)` weight and one
    permutation, and minimises `L_x + lambda_u(t) * L_u + L_prior`. Each
    network has its own optimizer state (`NetworkOptimizers`). `predict`
    returns the mean of both networks' outputs (the reference tests on their
    sum: same arg-max).

    `fit` needs sample identities: numpy arrays, a `keras_sanm.data.CoDivideData`
    or an `IndexedDataset`.

    Args:
        networks: two networks of the same architecture (independently
            initialised, or both from one pretrained start), each returning class scores (or `(feature_map,
            scores)` when `returns_features`).
        num_classes: number of classes.
        warmup_epochs: epochs of warm-up (CIFAR-10 10, CIFAR-100 30).
        lambda_u: weight of the unlabeled loss after its ramp-up.
        threshold: `tau`, clean-probability threshold of the labeled set.
        alpha: Beta concentration of MixMatch.
        temperature: sharpening temperature `T`.
        confidence_penalty: add the negative-entropy penalty in warm-up
            (asymmetric noise).
        history_length: eval-pass loss vectors averaged for the GMM (5 at
            90% noise, else 1).
        rampup_length: epochs of the `lambda_u` ramp (16).
        batch_size: labeled (= unlabeled) batch size `B`.
        warmup_batch_size: warm-up batch size (default `2 * B`).
        warmup_clip_norm: clip the warm-up gradient to this global norm
            (SANM code: 1.0; DivideMix: none).
        epochs: default number of epochs of `fit` (reference: 301).
        view_augmentation: where the training views are drawn: `"host"`
            (NumPy/Pillow per image in the data pipeline, the reference's
            transforms), `"device"` (in the compiled step on the whole batch,
            `keras_sanm/methods/dividemix/device_views.py`: the same distributions; the data
            sends each image once instead of once per view) or `"auto"`
            (device on a GPU/TPU, host on a CPU, where Pillow is faster:
            docs/benchmarks.md, "Strong views"; host for images the user
            standardised, which the device views cannot take).
        **kwargs: passed to `NoisyLabelTrainer` (`from_logits`, `seed`, ...).

    Example:
    >>> model = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10),
    ...                         method="dividemix", sanm=False)
    >>> model.fit(x_train, y_noisy, epochs=300, validation_data=(x_test, y_test))
    """

    method_name = "dividemix"
    phase_kinds = ("warmup", "train")
    # The co-divide split (`CoDivide`) estimates each sample's label quality.
    estimates_label_quality = True
    log_names = (
        "loss",
        "accuracy",
        "confidence_penalty",
        "labeled_loss",
        "unlabeled_loss",
        "prior_loss",
        "unlabeled_weight",
    )
    views = ("weak", "weak")
    warmup_augment = "weak"

    def __init__(
        self,
        networks,
        num_classes: int,
        warmup_epochs: int = 10,
        lambda_u: float = 25.0,
        threshold: float = 0.5,
        alpha: float = 4.0,
        temperature: float = 0.5,
        confidence_penalty: bool = False,
        history_length: int = 1,
        rampup_length: float = 16.0,
        batch_size: int = 64,
        warmup_batch_size: int | None = None,
        warmup_clip_norm: float | None = None,
        epochs: int = SPEC.reference_epochs,
        view_augmentation: str = "auto",
        **kwargs,
    ):
        super().__init__(networks, num_classes, **kwargs)
        if view_augmentation not in ("auto", "host", "device"):
            raise ValueError(
                f"view_augmentation must be 'auto', 'host' or 'device'; got {view_augmentation!r}.")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1); got {threshold}.")
        if alpha <= 0 or temperature <= 0 or rampup_length <= 0:
            raise ValueError("alpha, temperature and rampup_length must be > 0.")
        if lambda_u < 0 or warmup_epochs < 0:
            raise ValueError("lambda_u and warmup_epochs must be >= 0.")
        self.warmup_epochs = int(warmup_epochs)
        self.lambda_u = float(lambda_u)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.use_confidence_penalty = bool(confidence_penalty)
        self.history_length = int(history_length)
        self.rampup_length = float(rampup_length)
        self.batch_size = int(batch_size)
        self.warmup_batch_size = int(warmup_batch_size or 2 * batch_size)
        self.warmup_clip_norm = warmup_clip_norm
        self.epochs = int(epochs)
        self.view_augmentation = view_augmentation
        self.views_on_device = (
            view_augmentation == "device"
            or (view_augmentation == "auto" and device_kind() != "cpu")
        )
        # The 8-bit scale of the training images (set by `training_data`).
        self.view_pixel_scale = None
        # Mixing draws; with views on the device, their draws too.
        self.mix_seed = keras.random.SeedGenerator(seed=self.seed)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "warmup_epochs": self.warmup_epochs,
            "lambda_u": self.lambda_u,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "temperature": self.temperature,
            "confidence_penalty": self.use_confidence_penalty,
            "history_length": self.history_length,
            "rampup_length": self.rampup_length,
            "batch_size": self.batch_size,
            "warmup_batch_size": self.warmup_batch_size,
            "warmup_clip_norm": self.warmup_clip_norm,
            "epochs": self.epochs,
            "view_augmentation": self.view_augmentation,
        }

    @property
    def reference_epochs(self) -> int:
        """The `epochs` option: the reference drops the learning rate at epoch 150
        of it (301, SANM 361)."""
        return self.epochs

    def epoch_log_names(self) -> list[str]:
        names = super().epoch_log_names()
        return [n for n in names if n != "confidence_penalty" or self.use_confidence_penalty]

    # -------------------------------------------------------------------- step
    def compute_train_loss(self, data, phase):
        batch = data[0]
        kind, k = phase
        if kind == "warmup":
            return self.warmup_loss(batch, k)
        return self.division_loss(batch, k)

    def warmup_loss(self, batch, k: int):
        """Cross-entropy on all data (+ confidence penalty for asymmetric noise)."""
        scores = self.network_scores(k, batch["images"], training=True)[1]
        targets = ops.one_hot(ops.cast(batch["labels"], "int32"), self.num_classes)
        loss = ops.mean(losses.soft_cross_entropy(self.logits(scores), targets))
        logs = {"accuracy": losses.accuracy(scores, batch["labels"])}
        if self.use_confidence_penalty:
            penalty = losses.confidence_penalty(self.logits(scores))
            loss = loss + penalty
            logs["confidence_penalty"] = penalty
        logs["loss"] = loss
        return loss, logs

    def guess_targets(self, batch, k: int, labeled_views, unlabeled_views):
        """Co-refined labeled and co-guessed unlabeled targets (no gradient, §2.6).

        The trained network runs in training mode (its batch-norm statistics
        update), the peer in inference mode, in the reference's order.

        Returns:
            `(t_x, t_u, features_x, features_u)`; the feature maps are those of
            the trained network on the first view of each part (or `None`).
        """
        peer = 1 - k
        u1, u2 = unlabeled_views
        x1, x2 = labeled_views
        with no_gradient():
            features_u, scores_u1 = self.network_scores(k, u1, training=True)
            p_u = (
                ops.softmax(self.logits(scores_u1), axis=-1)
                + self.probabilities(k, u2, training=True)
                + self.probabilities(peer, u1, training=False)
                + self.probabilities(peer, u2, training=False)
            ) / 4.0
            features_x, scores_x1 = self.network_scores(k, x1, training=True)
            p_x = (
                ops.softmax(self.logits(scores_x1), axis=-1)
                + self.probabilities(k, x2, training=True)
            ) / 2.0
            one_hot = ops.one_hot(ops.cast(batch["labels"], "int32"), self.num_classes)
            t_x = co_refine(p_x, one_hot, batch["labeled_quality"], self.temperature)
            t_u = sharpen(p_u, self.temperature)
        stop = ops.stop_gradient
        features_x = None if features_x is None else stop(features_x)
        features_u = None if features_u is None else stop(features_u)
        return stop(t_x), stop(t_u), features_x, features_u

    def mixmatch_loss(self, k: int, inputs, targets, num_labeled: int, progress):
        """Mixes all rows, one forward pass, and DivideMix's loss terms."""
        mixed_inputs, mixed_targets, _, _ = mix(inputs, targets, self.alpha, self.mix_seed)
        scores = self.network_scores(k, mixed_inputs, training=True)[1]
        labeled, unlabeled, prior = mixmatch_losses(
            self.logits(scores), mixed_targets, num_labeled
        )
        weight = rampup_weight(
            progress[0], self.warmup_epochs, self.lambda_u, self.rampup_length
        )
        loss = labeled + weight * unlabeled + prior
        logs = {
            "labeled_loss": labeled,
            "unlabeled_loss": unlabeled,
            "prior_loss": prior,
            "unlabeled_weight": weight,
        }
        return loss, logs

    def view_names(self) -> tuple:
        """The training views' augmentations; all `"none"` with `augment=None` (wrap)."""
        return self.views if self.augment else ("none",) * len(self.views)

    def step_views(self, batch, part: str) -> list:
        """The training views of `batch[part]` (`"labeled_views"` or `"unlabeled_views"`)."""
        views = batch[part]
        return [views[:, v] for v in range(len(self.views))]

    def model_inputs(self, data):
        """With `views_on_device`, draws each training batch's views (before preprocessing).

        The data sends each image once (`(B, 1, H, W, C)`); the views are
        drawn from its 8-bit pixels here, inside the compiled step, and then
        preprocessed as views from the data pipeline are.
        """
        batch = data[0] if isinstance(data, (tuple, list)) and data else None
        if self.views_on_device and isinstance(batch, dict) and "labeled_views" in batch:
            batch = dict(batch)
            rows = batch["labeled_views"].shape[0]
            images = ops.concatenate(
                [batch["labeled_views"][:, 0], batch["unlabeled_views"][:, 0]], axis=0)
            views = ops.stack(device_views.training_views(
                images, self.view_names(), self.mix_seed, self.view_pixel_scale), axis=1)
            batch["labeled_views"], batch["unlabeled_views"] = views[:rows], views[rows:]
            data = (batch, *data[1:])
        return super().model_inputs(data)

    def division_loss(self, batch, k: int):
        """One DivideMix step of network `k` on its peer's split."""
        labeled = self.step_views(batch, "labeled_views")
        unlabeled = self.step_views(batch, "unlabeled_views")
        t_x, t_u, _, _ = self.guess_targets(batch, k, labeled, unlabeled)
        inputs = ops.concatenate(labeled + unlabeled, axis=0)
        targets = ops.concatenate([t_x, t_x, t_u, t_u], axis=0)
        loss, logs = self.mixmatch_loss(
            k, inputs, targets, 2 * _rows(batch), batch["progress"]
        )
        logs["loss"] = loss
        return loss, logs

    def transform_gradients(self, gradients, values, phase):
        if phase.kind == "warmup" and self.warmup_clip_norm:
            # As torch's clip_grad_norm_, before the optimizer's weight decay.
            norm = ops.sqrt(sum(ops.sum(ops.square(g)) for g in gradients))
            scale = ops.minimum(1.0, self.warmup_clip_norm / (norm + 1e-6))
            gradients = [g * ops.cast(scale, g.dtype) for g in gradients]
        return super().transform_gradients(gradients, values, phase)

    # --------------------------------------------------------------------- fit
    def training_data(self, x, y, batch_size=None, shuffle=True, verbose=1) -> CoDivideData:
        """The `CoDivideData` to train on, from arrays or an indexed dataset."""
        if isinstance(x, CoDivideData):
            if y is not None or batch_size is not None:
                raise ValueError("A CoDivideData carries its labels and batch size.")
            data = x
            self.views_for(data.images)
        elif isinstance(x, IndexedDataset) or is_image_array(x) or is_dataset(x):
            if is_dataset(x) and not isinstance(x, IndexedDataset):
                x, y, batch_size = self.input_pipeline.identified_samples(x, y, batch_size, verbose)
            if isinstance(x, IndexedDataset):
                if y is not None:
                    raise ValueError("Pass labels inside the IndexedDataset, not as `y`.")
                arrays = dict(images=x.images, labels=x.labels, clean_labels=x.clean_labels)
            else:
                if y is None:
                    raise ValueError("fit(x, y) needs labels `y` with numpy images.")
                arrays = dict(images=x, labels=y)
            self.views_for(arrays["images"])
            # With views on the device: each image once; the step draws them.
            views = ("none",) if self.views_on_device else self.view_names()
            data = CoDivideData(
                **arrays, batch_size=batch_size or self.batch_size,
                num_classes=self.num_classes,
                warmup_batch_size=None if batch_size else self.warmup_batch_size,
                views=views,
                warmup_augment=self.warmup_augment if self.augment else "none",
                seed=self.seed,
            )
        else:
            raise ValueError(
                f"method={self.method_name!r} trains on images `fit(x, y)` (numpy or "
                "keras_sanm.data.ImageFiles), a tf.data.Dataset or keras.utils.PyDataset "
                "of (images, labels), a keras_sanm.data.CoDivideData or a "
                f"keras_sanm.data.IndexedDataset; got {type(x).__name__}."
            )
        self.check_training_data(data)
        if self.views_on_device:
            self.view_pixel_scale = self._device_view_scale(data)
        elif len(data.views) < len(self.views):
            raise ValueError(
                f"This method needs {len(self.views)} views per sample; the CoDivideData "
                f"has {len(data.views)}.")
        return data

    def views_for(self, images) -> None:
        """Draws the views on the host from now on when `"auto"` meets standardised images.

        The device draws views from 8-bit pixels; the host's views take images
        the user standardised. The model keeps host views for later fits (its
        compiled steps take host views).
        """
        if (self.views_on_device and self.view_augmentation == "auto"
                and black_level(images) is not None):
            self.views_on_device = False

    @staticmethod
    def _device_view_scale(data: CoDivideData) -> float:
        """The 8-bit scale of `data`'s images, which must come as one raw view."""
        if tuple(data.views) != ("none",):
            raise ValueError(
                "With view_augmentation='device' the step draws the training views "
                "itself: build the CoDivideData with views=('none',) (each image once), "
                f"or use view_augmentation='host'; got views={tuple(data.views)}.")
        if data.pixel_scale is None and data.images.dtype.name != "uint8":
            raise ValueError(
                "view_augmentation='device' draws the views from 8-bit pixels, but these "
                "images look standardised (negative values); pass raw images (uint8, or "
                "floats in [0, 1] or [0, 255]) or use view_augmentation='host'.")
        return 255.0 if data.pixel_scale is None else float(data.pixel_scale)

    def method_callbacks(self, source):
        divide = CoDivide(
            source, self.warmup_epochs, self.threshold, self.history_length, self.seed
        )
        return [divide] + super().method_callbacks(source)

    def epoch_plan(self, data: CoDivideData, epoch: int):
        """`[(phase, steps, make_batch), ...]`: network 1's pass, then network 2's."""
        plan = []
        for k in (0, 1):
            if epoch < self.warmup_epochs:
                plan.append((("warmup", k), data.warmup_batches(), data.warmup_batch))
            else:
                steps = data.training_plan(k, self.threshold, epoch)
                plan.append(
                    (("train", k), steps, lambda step, k=k: data.training_batch(k, step))
                )
        return plan


def sanm_mixmatch_groups(labeled_views, unlabeled_views, peak, valley, t_x, t_u, modulated):
    """The MixMatch groups of SANM(DivideMix): the training views, then the masked copies.

    With the reference's four training views this is its twelve-group batch.

    Args:
        labeled_views: the labeled training views, e.g. `[xa1, xa2, xr1, xr2]`,
            each `(B, H, W, C)`.
        unlabeled_views: the unlabeled ones, e.g. `[ua1, ua2, ur1, ur2]`.
        peak, valley: `(2B, H, W, C)` masked `[xc1; uc1]`, or `None` for
            no masked groups.
        t_x, t_u: `(B, C)` refined and guessed targets.
        modulated: `(2B, C)` modulated `[t_x; t_u]` (unused without masks).

    Returns:
        `(inputs, targets)`: labeled groups `xa1, xa2, xr1, xr2, m+_x, m-_x`
        then the same for the unlabeled part; the first
        `B * (len(labeled_views) + 2)` rows (without masks
        `B * len(labeled_views)`) are labeled.
    """
    x_groups, u_groups = list(labeled_views), list(unlabeled_views)
    x_targets, u_targets = [t_x] * len(x_groups), [t_u] * len(u_groups)
    if peak is not None:
        b = ops.shape(t_x)[0]
        x_groups += [peak[:b], valley[:b]]
        u_groups += [peak[b:], valley[b:]]
        x_targets += [modulated[:b]] * 2
        u_targets += [modulated[b:]] * 2
    return (ops.concatenate(x_groups + u_groups, axis=0),
            ops.concatenate(x_targets + u_targets, axis=0))


STRONG_VIEWS = ("autoaugment", "autoaugment", "randaugment", "randaugment",
                "autoaugment", "autoaugment")


@keras.saving.register_keras_serializable(package="keras_sanm")
class SANMDivideMixTrainer(SANMBranch, DivideMixTrainer):
    """SANM(DivideMix): the reference CIFAR batch of the official SANM code.

    Each sample comes with six views: two AutoAugment (`xa`), two
    RandAugment + Cutout (`xr`) and two more AutoAugment (`xc`). Targets are
    refined/guessed from the `xc` views; the trained network's feature maps
    of `xc1` / `uc1` place the peak and valley boxes, sized by the peer's
    clean probability `w`; the modulated targets go with the masked copies.
    MixMatch mixes twelve groups of `B` rows (`xa1, xa2, xr1, xr2, m+_x, m-_x`
    labeled, the same for unlabeled), and the network's decoder reconstructs
    `[xc1; uc1]` from both masked copies: `L = L_x + lambda_u(t) L_u + L_prior
    + reconstruction_weight * L_rec`. Warm-up is plain (no masking), on the
    SANM code's warm-up augmentation (colour jitter, crop/flip, random
    affine), with the gradient clipped to norm 1.0.

    SANM(DivideMix) differs from DivideMix in three ways at once; each can be
    switched off to measure its share (an ablation):

    * `strong_views=False`: DivideMix's two weak views (crop and flip) per
      sample; targets are guessed from them, the first one is masked and
      reconstructed, and MixMatch mixes eight groups (`x1, x2, m+_x, m-_x`
      and the same for unlabeled).
    * `strong_warmup=False`: DivideMix's warm-up (weak augmentation, no
      gradient clipping unless `warmup_clip_norm` says otherwise).
    * `masking=False`: no masked copies, no modulated targets and no
      reconstruction loss (the decoders stay, untrained).

    With all three off, a step is DivideMix's step.

    Args:
        networks: two networks returning `(feature_map, scores)`.
        num_classes: number of classes.
        reconstruction_weight: weight of `L_rec` (0.02 CIFAR).
        clip_negative_targets: clip negative modulated targets.
        mask_config: keyword arguments of `NoisyMask`.
        warmup_clip_norm: global-norm clip of warm-up gradients;
            `"reference"`: 1.0 with the strong warm-up, none without.
        strong_views: the six strong views (else two weak ones).
        strong_warmup: the SANM code's warm-up augmentation and clipping.
        masking: the masked copies and the reconstruction loss.
        warmup_augment: the warm-up's augmentation, as an experiment arm:
            `"strong_warmup"` (the SANM code's today: colour jitter, crop,
            flip and a random affine, with gradients clipped to norm 1),
            `"autoaugment"` (the CIFAR AutoAugment policy without the clip,
            what the SANM code ran when the paper came out) or `"weak"`
            (DivideMix's crop and flip; the same as `strong_warmup=False`).
            `None`: from `strong_warmup`.
        **kwargs: passed to `DivideMixTrainer`.

    Example:
    >>> model = keras_sanm.wrap(base, method="dividemix", masking=False)  # ablation
    """

    log_names = DivideMixTrainer.log_names + SANMBranch.sanm_log_names

    def __init__(
        self,
        networks,
        num_classes: int,
        reconstruction_weight: float = 0.02,
        clip_negative_targets: bool = False,
        mask_config: dict | None = None,
        warmup_clip_norm: float | None | str = "reference",
        strong_views: bool = True,
        strong_warmup: bool = True,
        masking: bool = True,
        warmup_augment: str | None = None,
        **kwargs,
    ):
        if warmup_augment is None:
            warmup_augment = "strong_warmup" if strong_warmup else "weak"
        if warmup_augment not in WARMUP_AUGMENTS:
            raise ValueError(f"warmup_augment must be one of {WARMUP_AUGMENTS}; "
                             f"got {warmup_augment!r}.")
        if not strong_warmup and warmup_augment != "weak":
            raise ValueError("strong_warmup=False is DivideMix's weak warm-up; give "
                             f"warmup_augment={warmup_augment!r} without it.")
        if warmup_clip_norm == "reference":
            warmup_clip_norm = 1.0 if warmup_augment == "strong_warmup" else None
        super().__init__(
            networks, num_classes, reconstruction_weight=reconstruction_weight,
            clip_negative_targets=clip_negative_targets, mask_config=mask_config,
            warmup_clip_norm=warmup_clip_norm, **kwargs,
        )
        self.strong_views, self.strong_warmup = bool(strong_views), bool(strong_warmup)
        self.masking = bool(masking)
        self.views = STRONG_VIEWS if self.strong_views else DivideMixTrainer.views
        self.warmup_augment = warmup_augment

    def get_config(self) -> dict:
        return {**super().get_config(), "strong_views": self.strong_views,
                "strong_warmup": self.strong_warmup, "masking": self.masking,
                "warmup_augment": self.warmup_augment}

    def division_loss(self, batch, k: int):
        count = len(self.views)
        x_views = self.step_views(batch, "labeled_views")
        u_views = self.step_views(batch, "unlabeled_views")
        # Targets come from the last two views (xc1, xc2; with weak views, the
        # two views that are also trained on, as in DivideMix).
        x_train, u_train = (x_views[:-2], u_views[:-2]) if count > 2 else (x_views, u_views)
        t_x, t_u, features_x, features_u = self.guess_targets(
            batch, k, x_views[-2:], u_views[-2:]
        )
        b = _rows(batch)
        logs = {}
        peak = valley = modulated = None
        reconstruction = 0.0
        if self.masking:
            # Masking of [xc1; uc1] with the peer's w.
            images = ops.concatenate([x_views[-2], u_views[-2]], axis=0)
            quality = ops.concatenate(
                [batch["labeled_quality"], batch["unlabeled_quality"]], axis=0
            )
            masked = self.noisy_mask(
                images, ops.concatenate([features_x, features_u], axis=0), quality
            )
            modulated = ops.stop_gradient(
                modulate_labels(
                    ops.concatenate([t_x, t_u], axis=0),
                    masked["peak_ratio"],
                    self.clip_negative_targets,
                )
            )
            peak, valley = masked["peak_images"], masked["valley_images"]
            # Reconstruction: one training-mode pass of all 4B masked images.
            masked_features = self.network_scores(
                k, ops.concatenate([peak, valley], axis=0), training=True
            )[0]
            reconstruction = self.reconstruction_term(k, masked_features, images)
            logs.update(reconstruction_loss=reconstruction,
                        mask_ratio=ops.mean(masked["peak_ratio"]))

        inputs, targets = sanm_mixmatch_groups(
            x_train, u_train, peak, valley, t_x, t_u, modulated
        )
        labeled_groups = len(x_train) + (2 if self.masking else 0)
        loss, mix_logs = self.mixmatch_loss(
            k, inputs, targets, labeled_groups * b, batch["progress"]
        )
        loss = loss + self.reconstruction_weight * reconstruction
        logs.update(mix_logs, loss=loss)
        return loss, logs


def _rows(batch) -> int:
    """Labeled rows of this step's batch (a replica's slice under data parallelism)."""
    return int(batch["labels"].shape[0])
