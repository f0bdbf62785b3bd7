"""CDR and SANM(CDR) (docs/algorithms.md, "CDR" and "SANM with each method")."""

from __future__ import annotations

import keras
from keras import ops

from keras_sanm.methods.cdr.order_statistics import kth_largest
from keras_sanm.methods.ce.trainers import CrossEntropyTrainer, SANMCrossEntropyTrainer
from keras_sanm.training.callbacks import NoiseRateEstimate


def critical_gradient_mask(gradients, values, noise_rate):
    """CDR's update rule for the weight tensors of a network.

    Pools all given tensors, ranks entries by `|w * g|`, keeps the top
    `floor((1 - noise_rate) * N)` (the critical parameters) with their
    gradient scaled by `1 - noise_rate`, and zeroes the gradient of the rest
    (which then only decay towards 0 through weight decay). Entries tied with
    the threshold count as critical, as in the reference.

    Args:
        gradients: gradients of the pooled tensors (conv kernels and dense
            matrices).
        values: the tensors' current values, in the same order.
        noise_rate: `tau` (a float, or a scalar variable read when the step
            runs); `kappa = 1 - tau` is the critical fraction.

    Returns:
        The masked gradients, in the same order.

    Example:
    >>> g = critical_gradient_mask([ops.ones((2, 2))], [ops.eye(2)], 0.5)
    """
    gradients = [ops.convert_to_tensor(g) for g in gradients]
    importance = [ops.abs(ops.cast(v, g.dtype) * g) for g, v in zip(gradients, values)]
    pooled = ops.concatenate([ops.reshape(i, (-1,)) for i in importance], axis=0)
    total = int(pooled.shape[0])
    if isinstance(noise_rate, (int, float)):
        kappa = 1.0 - float(noise_rate)
        keep = max(int(kappa * total), 1)
    else:
        kappa = ops.cast(1.0 - noise_rate, "float32")
        keep = ops.maximum(ops.cast(ops.floor(kappa * float(total)), "int32"), 1)
    threshold = kth_largest(pooled, keep)  # the sort's (total - keep)-th entry, unsorted
    return [
        g * ops.cast(ops.greater_equal(i, threshold), g.dtype) * ops.cast(kappa, g.dtype)
        for g, i in zip(gradients, importance)
    ]


class _CriticalParameters(CrossEntropyTrainer):
    """CDR's gradient rule applied to the classifier's conv/dense kernels.

    Biases and normalisation parameters keep their full gradient; so does
    the SANM decoder (PROPOSAL: it learns a label-free task, and CDR's rule is
    about memorising labels). Coupled weight decay is added after the mask,
    as the reference's SGD does.
    """

    def __init__(self, network, num_classes: int, noise_rate: float | None = None,
                 estimate_after: int = 2, **kwargs):
        super().__init__(network, num_classes, **kwargs)
        if noise_rate is not None and not 0.0 <= noise_rate < 1.0:
            raise ValueError(f"noise_rate must be in [0, 1); got {noise_rate}.")
        if estimate_after < 1:
            raise ValueError(f"estimate_after must be at least 1 epoch; got {estimate_after}.")
        self.noise_rate = None if noise_rate is None else float(noise_rate)
        self.estimate_after = int(estimate_after)
        # The step reads the rate from a variable, so an estimate made between
        # epochs (noise_rate=None) takes effect without recompiling.
        self.noise_rate_value = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.noise_rate or 0.0),
            trainable=False, name="noise_rate")

    def get_config(self) -> dict:
        return {**super().get_config(), "noise_rate": self.noise_rate,
                "estimate_after": self.estimate_after}

    def set_noise_rate(self, rate: float) -> None:
        """Sets `tau` (used by the estimate when none was given)."""
        self.noise_rate = float(rate)
        self.noise_rate_value.assign(self.noise_rate)

    def method_callbacks(self, source):
        callbacks = super().method_callbacks(source)
        if self.noise_rate is None:
            callbacks.insert(0, NoiseRateEstimate(
                source, self.estimate_after, "noise_rate",
                lambda: self.noise_rate, self.set_noise_rate))
        return callbacks

    def critical_positions(self, phase) -> list[int]:
        """Positions, among the step's variables, of the pooled network kernels."""
        network = {id(v) for v in self.network.trainable_variables}
        variables = self.step_variables(phase)[0]
        return [i for i, v in enumerate(variables)
                if id(v) in network and len(v.shape) in (2, 4)]

    def transform_gradients(self, gradients, values, phase):
        gradients = list(gradients)
        positions = self.critical_positions(phase)
        masked = critical_gradient_mask(
            [gradients[i] for i in positions], [values[i] for i in positions],
            self.noise_rate_value,
        )
        for i, g in zip(positions, masked):
            gradients[i] = g
        return super().transform_gradients(gradients, values, phase)


# Reference optimisation (CDR-code): SGD 0.01, momentum 0.9, weight decay 1e-3,
# x0.1 at epochs 40 and 80; the scheduler is stepped before each epoch, so the
# drops act from epochs 39 and 79 (0-based).
_CDR_OPTIMIZER = {
    "learning_rate": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-3,
    "drop_epochs": (39, 79),
    "drop_factor": 0.1,
}


@keras.saving.register_keras_serializable(package="keras_sanm")
class CDRTrainer(_CriticalParameters):
    """CDR: cross-entropy where only critical parameters learn from the labels.

    Every step computes the cross-entropy gradient, ranks the network's conv
    and dense kernel entries by `|w * g|` over all of them together, keeps
    the top `1 - noise_rate` fraction with gradient `(1 - noise_rate) g`
    and zeroes the rest (`critical_gradient_mask`); `compile()` with no
    optimizer uses the reference SGD (0.01, momentum 0.9, weight decay 1e-3,
    /10 from epochs 39 and 79; 200 epochs, batch 64, ResNet-50 in the
    reference).

    Args:
        network: the classifier.
        num_classes: number of classes.
        noise_rate: `tau`, the expected fraction of wrong labels. `None`
            (default): estimated from the model's own label quality after
            `estimate_after` epochs of cross-entropy (printed; see
            `NoiseRateEstimate`). With synthetic noise, pass its rate.
        estimate_after: epochs before that estimate (2).
        **kwargs: passed to `CrossEntropyTrainer`.

    Example:
    >>> model = keras_sanm.wrap(base, method="cdr", sanm=False, noise_rate=0.4)
    >>> model.fit(x_train, y_noisy, batch_size=64, epochs=200)
    """

    method_name = "cdr"
    paper_optimizer = _CDR_OPTIMIZER


@keras.saving.register_keras_serializable(package="keras_sanm")
class SANMCDRTrainer(_CriticalParameters, SANMCrossEntropyTrainer):
    """SANM(CDR) (the package's design): SANM(CE)'s loss with CDR's update rule.

    The loss is SANM(CE)'s (cross-entropy over `[x; m+; m-]` with
    `[e_y; e~; e~]` plus `reconstruction_weight * L_rec`); the critical
    parameters are ranked by the gradient of that total loss.

    Args:
        network: model returning `(feature_map, scores)`.
        num_classes: number of classes.
        noise_rate: `tau`; `None` (default) estimates it as `CDRTrainer` does.
        estimate_after: epochs before that estimate (2).
        **kwargs: passed to `SANMCrossEntropyTrainer`.
    """

    method_name = "cdr"
    paper_optimizer = _CDR_OPTIMIZER
