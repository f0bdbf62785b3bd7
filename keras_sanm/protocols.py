"""Training protocols: a real-world dataset's reference backbone, batch, epochs and optimizer.

The SANM paper trains on two real-world noisy datasets with their own
settings (its supplementary material):

* `clothing1m`: ResNet-50 (ImageNet-pretrained in the literature's
  protocol), batch 64, 80 epochs, Adam at 0.002 divided by 10 after
  epoch 40.
* `animal10n`: VGG-19, batch 64, 150 epochs, SGD at 0.02 (momentum 0.9,
  weight decay 5e-4 as the CIFAR reference: the paper gives neither)
  divided by 10 after epochs 50 and 100.

A protocol is not a method preset (`wrap(preset=...)`: a method's
hyper-parameters for one CIFAR noise cell) and not a keras-hub preset
(pretrained weights): it sets what is trained and with which optimizer,
whatever the method. `model.compile(protocol="animal10n")` takes its
optimizer and schedule; `wrap(..., protocol="animal10n")` the method's own
settings for that dataset where its reference code has them (SSR: the
relabelling threshold, mixup's alpha, and on Clothing1M votes without the
class-share division); `keras-sanm train --protocol animal10n` does both and
also takes its backbone, batch size and epochs.

Not reproduced: the reference Clothing1M scripts of DivideMix and SSR train
each epoch on a fresh class-balanced subsample of the training set (64,000
and 32,000 images); the package trains on the whole set every epoch.

Example:
>>> protocol = keras_sanm.protocols.get("animal10n")
>>> base = protocol.backbone_model()                # VGG-19 for 64x64 images
>>> model = keras_sanm.wrap(base, method="ssr", protocol="animal10n")
>>> model.compile(protocol="animal10n")
>>> model.fit(data.images, data.labels, epochs=protocol.epochs)
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainingProtocol:
    """A dataset's reference training setup.

    Args:
        name: what `compile(protocol=...)` and `--protocol` take.
        dataset: the dataset it is for (a `keras-sanm train --dataset` name).
        backbone: a `keras_sanm.backbones` name.
        num_classes: the dataset's classes.
        image_shape: `(H, W, C)` the backbone is built for.
        batch_size: samples per step.
        epochs: training epochs.
        optimizer: `"sgd"` (with `momentum`) or `"adam"`.
        learning_rate: initial learning rate.
        lr_drop_epochs: epochs (0-based) from which the rate is divided by 10
            once more each.
        momentum: SGD momentum.
        weight_decay: coupled L2 weight decay (added to every gradient).
        source: where the settings come from.
    """

    name: str
    dataset: str
    backbone: str
    num_classes: int
    image_shape: tuple[int, int, int]
    batch_size: int
    epochs: int
    optimizer: str
    learning_rate: float
    lr_drop_epochs: tuple[int, ...]
    momentum: float = 0.9
    weight_decay: float = 0.0
    source: str = ""

    def backbone_model(self, weights: str | None = None):
        """The protocol's backbone for its dataset (random weights unless `weights`)."""
        from keras_sanm import backbones

        options = {} if weights is None else {"weights": weights}
        if weights is not None and self.backbone == "vgg19":
            options["batch_norm_layers"] = False  # the only VGG-19 with published weights
        return backbones.BACKBONES[self.backbone](
            num_classes=self.num_classes, input_shape=self.image_shape, **options)

    def method_options(self, method: str) -> dict:
        """A method's own reference options on this protocol's dataset (`wrap` takes them).

        Args:
            method: a method name (`keras_sanm.methods.names()`).

        Returns:
            Trainer options, e.g. SSR's relabelling threshold; `{}` for a
            method whose reference uses its defaults on every dataset.
        """
        from keras_sanm import methods

        spec = methods.get(method)
        return {} if spec.protocol_options is None else spec.protocol_options(self.dataset)

    def optimizer_and_schedule(self):
        """`(optimizer, schedule_callback, weight_decay)` as `compile` takes them."""
        import keras

        from keras_sanm.training.callbacks import EpochLearningRate

        if self.optimizer == "adam":
            optimizer = keras.optimizers.Adam(learning_rate=self.learning_rate)
        else:
            optimizer = keras.optimizers.SGD(learning_rate=self.learning_rate,
                                             momentum=self.momentum)
        schedule = EpochLearningRate(self.learning_rate, self.lr_drop_epochs, 0.1)
        return optimizer, schedule, self.weight_decay


PROTOCOLS = {
    "clothing1m": TrainingProtocol(
        name="clothing1m", dataset="clothing1m", backbone="resnet50", num_classes=14,
        image_shape=(224, 224, 3), batch_size=64, epochs=80, optimizer="adam",
        learning_rate=0.002, lr_drop_epochs=(40,),
        source="SANM paper, supplementary material (Clothing1M)"),
    "animal10n": TrainingProtocol(
        name="animal10n", dataset="animal10n", backbone="vgg19", num_classes=10,
        image_shape=(64, 64, 3), batch_size=64, epochs=150, optimizer="sgd",
        learning_rate=0.02, lr_drop_epochs=(50, 100), momentum=0.9, weight_decay=5e-4,
        source="SANM paper, supplementary material (Animal-10N); momentum and weight "
               "decay: the CIFAR reference's"),
}


def get(protocol) -> TrainingProtocol:
    """A `TrainingProtocol` by name (or the protocol itself); unknown names raise."""
    if isinstance(protocol, TrainingProtocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; available: {sorted(PROTOCOLS)}.")
    return PROTOCOLS[protocol]
