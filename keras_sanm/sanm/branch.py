"""`SANMBranch`: SANM added the same way to every method (docs/algorithms.md, "SANM")."""

from __future__ import annotations

from keras import ops

from keras_sanm.methods.spec import MASKED_TARGETS, MASKED_TARGETS_BEFORE_THE_OPTION
from keras_sanm.sanm.decoder import ReconstructionDecoder, reconstruction_loss
from keras_sanm.sanm.masking import aspect_range, modulate_labels
from keras_sanm.sanm.noisy_mask import NoisyMask
from keras_sanm.training import losses
from keras_sanm.training.refinement import co_refine
from keras_sanm.training.trainer import NoisyLabelTrainer


class SANMBranch(NoisyLabelTrainer):
    """SANM's branch: one `NoisyMask` and one reconstruction decoder per network.

    `SANM(X)` is `class SANMX(SANMBranch, X)` for every method `X`: the
    branch takes SANM's options, builds `X` on networks that return
    `(feature_map, scores)`, then adds the `noisy_mask` layer and
    `decoders` (decoder `k` reconstructs images from network `k`'s feature
    map and trains in network `k`'s optimizer group). The method's step
    uses `masked_copies` and `reconstruction_term`, and logs
    `sanm_log_names`. The branch also makes the model refit each sample's
    label quality (which sizes the boxes) every epoch, unless the method
    estimates it itself (`estimates_label_quality`: DivideMix's co-divide
    split).

    Args:
        *args: the method's positional arguments (network(s), num_classes).
        reconstruction_weight: weight of the reconstruction loss `L_rec`
            (0.02 for CIFAR).
        clip_negative_targets: clip negative modulated targets to 0.
        mask_config: keyword arguments of `NoisyMask` (its `seed` defaults
            to the model's).
        mask_aspect: the boxes' aspect ratio (height / width), the mask-shape
            ablation of the SANM paper: `"uniform:d"` draws it per sample
            from `U(d, 1/d)`, `"fixed:d"` (or the number `d`) fixes it.
            Default (`None`): `NoisyMask`'s, `"uniform:0.8"`.
        masked_targets: only for methods whose masked copies would otherwise
            be trained towards the given label (`takes_masked_targets`: CE,
            CDR, Co-teaching, ELR+); what the copies are trained towards
            before modulation. `"refined"` (default): `Sharpen(w e_y + (1 - w)
            p, 0.5)`, with `p` the network's own prediction on the clean
            image (no gradient) and `w` the label quality that sizes the
            boxes, the label refinement SANM's official code gives its
            masked copies; a sample whose label looks wrong (`w` near 0) is
            then not pulled towards that label by its copies. `"label"`: the
            given label `e_y`, as for the clean image. docs/results.md
            measures both on SANM(CE).
        **kwargs: the method's keyword arguments.

    Example:
    >>> class SANMCoteachingTrainer(SANMBranch, CoteachingTrainer):
    ...     def compute_train_loss(self, data, phase): ...
    """

    sanm_log_names = ("reconstruction_loss", "mask_ratio")
    # The method's masked copies start from the given label, so `masked_targets`
    # chooses between it and its refinement (DivideMix and SSR bring their own
    # refined targets and do not take the option).
    takes_masked_targets = False

    @property
    def refits_label_quality(self) -> bool:
        """Boxes need each sample's label quality: refit it, unless the method estimates it."""
        return not self.estimates_label_quality

    def __init__(self, *args, reconstruction_weight: float = 0.02,
                 clip_negative_targets: bool = False, mask_config: dict | None = None,
                 mask_aspect: str | float | None = None, masked_targets: str | None = None,
                 **kwargs):
        if reconstruction_weight < 0:
            raise ValueError("reconstruction_weight must be >= 0.")
        if not self.takes_masked_targets:
            if masked_targets is not None:
                raise ValueError(
                    f"{type(self).__name__} has no masked_targets option: its masked copies "
                    "already take the method's own refined targets.")
        elif masked_targets is None:
            masked_targets = MASKED_TARGETS[0]
        elif masked_targets not in MASKED_TARGETS:
            raise ValueError(f"masked_targets must be one of {MASKED_TARGETS}; "
                             f"got {masked_targets!r}.")
        self.masked_targets = masked_targets
        mask_config = dict(mask_config or {})
        if mask_aspect is not None:
            if "aspect_range" in mask_config:
                raise ValueError("Give the box shape once: mask_aspect or "
                                 "mask_config['aspect_range'], not both.")
            mask_config["aspect_range"] = aspect_range(mask_aspect)
        super().__init__(*args, returns_features=True, **kwargs)
        self.reconstruction_weight = float(reconstruction_weight)
        self.clip_negative_targets = bool(clip_negative_targets)
        mask_config.setdefault("seed", self.seed)
        self.noisy_mask = NoisyMask(**mask_config, name="noisy_mask")
        self.noisy_mask.build(None)
        networks = self.network_list()
        decoders = []
        for k, network in enumerate(networks):
            name = "decoder" if len(networks) == 1 else f"decoder_{k + 1}"
            decoder = ReconstructionDecoder(self.image_shape, name=name)
            decoder.build(tuple(network.outputs[0].shape))
            decoders.append(decoder)
        if len(networks) == 1:
            # The attribute name under which saved one-network models keep it.
            self.decoder = decoders[0]
        self.decoders = decoders

    def get_config(self) -> dict:
        mask = self.noisy_mask.get_config()
        for key in ("name", "trainable", "dtype"):
            mask.pop(key, None)
        config = {
            **super().get_config(),
            "reconstruction_weight": self.reconstruction_weight,
            "clip_negative_targets": self.clip_negative_targets,
            "mask_config": mask,
        }
        if self.takes_masked_targets:
            config["masked_targets"] = self.masked_targets
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if cls.takes_masked_targets and "masked_targets" not in config:
            # Saved before the option existed: those copies trained on the label.
            config = {**config, "masked_targets": MASKED_TARGETS_BEFORE_THE_OPTION}
        return super().from_config(config, custom_objects)

    def copy_targets(self, one_hot_labels, scores, quality):
        """What the masked copies are trained towards, before modulation (`masked_targets`).

        Args:
            one_hot_labels: `(B, C)` the given labels, one-hot.
            scores: `(B, C)` the network's scores of the clean images (read
                without gradient).
            quality: `(B,)` the label quality `w` that sizes the boxes.

        Returns:
            `(B, C)` targets: the labels, or `Sharpen(w e_y + (1 - w) p, 0.5)`.
        """
        if self.masked_targets == "label":
            return one_hot_labels
        probabilities = ops.exp(losses.log_probabilities(scores, self.from_logits))
        return co_refine(ops.stop_gradient(probabilities), one_hot_labels, quality, 0.5)

    def masked_copies(self, images, features, quality, targets):
        """SANM's peak- and valley-masked copies of a batch with modulated targets.

        Args:
            images: `(B, H, W, C)` images to mask.
            features: `(B, h, w, K)` feature map of the same images (used
                without gradient).
            quality: `(B,)` label quality `w` (larger boxes as it falls).
            targets: `(B, C)` targets to modulate (one-hot or soft).

        Returns:
            `(masked_images, masked_targets, mask_ratio)`: `(2B, H, W, C)`
            peak then valley copies, their `(2B, C)` modulated targets and
            the scalar mean mask ratio.
        """
        masked = self.noisy_mask(images, features, quality)
        peak_targets = modulate_labels(targets, masked["peak_ratio"], self.clip_negative_targets)
        valley_targets = modulate_labels(
            targets, masked["valley_ratio"], self.clip_negative_targets
        )
        masked_images = ops.concatenate([masked["peak_images"], masked["valley_images"]], axis=0)
        masked_targets = ops.concatenate([peak_targets, valley_targets], axis=0)
        ratio = 0.5 * (ops.mean(masked["peak_ratio"]) + ops.mean(masked["valley_ratio"]))
        return masked_images, ops.stop_gradient(masked_targets), ratio

    def reconstruction_term(self, k: int, masked_features, images):
        """`L_rec` of network `k`: summed MSE of both masked copies' reconstructions against `images`.

        Args:
            k: the network whose decoder reconstructs.
            masked_features: `(2B, h, w, K)` feature maps of the peak then
                valley copies.
            images: `(B, H, W, C)` the unmasked images.
        """
        reconstructions = self.decoders[k](masked_features)
        # Two equal-sized copies: the sum of their MSEs is twice the joint mean.
        return 2.0 * reconstruction_loss(reconstructions, ops.concatenate([images, images], axis=0))
