"""One optimizer per network, for methods that train two networks in turn."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_sanm")
class NetworkOptimizers(keras.optimizers.MultiOptimizer):
    """A `MultiOptimizer` with one inner optimizer per group of variables.

    Methods with two networks (DivideMix) train one network per step; each
    network keeps its own optimizer state (momentum), as two separate
    optimizers would. The wrapper calls `assign_groups` with each network's
    variables before the optimizer is built; a step then applies only the
    inner optimizer of the network it trains (`optimizers[k]` on
    `groups[k]`).

    Args:
        optimizers: one Keras optimizer per group, in group order.
        name: optimizer name.

    Example:
    >>> opt = NetworkOptimizers([keras.optimizers.SGD(0.02), keras.optimizers.SGD(0.02)])
    >>> opt.assign_groups([net1.trainable_variables, net2.trainable_variables])
    """

    def __init__(self, optimizers, name: str = "network_optimizers", **kwargs):
        optimizers = list(optimizers)
        if len({id(o) for o in optimizers}) != len(optimizers):
            raise ValueError("Each network needs its own optimizer instance.")
        super().__init__(optimizer_map=self._optimizer_for, name=name, **kwargs)
        self._inner_optimizers = optimizers
        self._group_of: dict[int, int] = {}
        # A plain holder: the optimizer's attribute tracker would otherwise
        # adopt the model's variables as optimizer variables.
        self._groups = _VariableGroups()

    def assign_groups(self, groups) -> None:
        """Declares which variables each inner optimizer updates.

        Args:
            groups: one list of variables per inner optimizer.
        """
        if len(groups) != len(self._inner_optimizers):
            raise ValueError(
                f"{len(groups)} variable groups for {len(self._inner_optimizers)} optimizers."
            )
        self._group_of = {id(v): k for k, group in enumerate(groups) for v in group}

    def _optimizer_index(self, variable) -> int:
        if id(variable) not in self._group_of:
            raise ValueError(
                f"Variable {variable.path} belongs to no network's optimizer group."
            )
        return self._group_of[id(variable)]

    def _optimizer_for(self, variable):
        return self._inner_optimizers[self._optimizer_index(variable)]

    def build(self, var_list):
        # As `MultiOptimizer.build` (its bookkeeping for `apply` included),
        # which refuses inner `LossScaleOptimizer`s: under mixed_float16 each
        # network's optimizer scales its own steps' loss.
        if self.built:
            return
        groups = [[] for _ in self._inner_optimizers]
        self._var_to_optimizer_idx, self._trainable_variables_indices = {}, {}
        for i, variable in enumerate(var_list):
            k = self._optimizer_index(variable)
            groups[k].append(variable)
            self._var_to_optimizer_idx[self._var_key(variable)] = k
            self._trainable_variables_indices[self._var_key(variable)] = i
        for optimizer, group in zip(self._inner_optimizers, groups):
            if group:
                optimizer.build(group)
        self._groups.lists = groups
        super(keras.optimizers.MultiOptimizer, self).build(var_list)

    @property
    def groups(self) -> list[list]:
        """Variables of each inner optimizer, in build order (after `build`)."""
        return self._groups.lists

    def get_config(self):
        return {
            "optimizers": [
                keras.saving.serialize_keras_object(o) for o in self._inner_optimizers
            ],
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        optimizers = [
            keras.saving.deserialize_keras_object(o, custom_objects=custom_objects)
            for o in config["optimizers"]
        ]
        return cls(optimizers, name=config.get("name", "network_optimizers"))


def base_optimizers(optimizer) -> list:
    """The optimizers that update the variables, inside loss scaling and per-network wrappers.

    Args:
        optimizer: a Keras optimizer, a `LossScaleOptimizer` or a
            `NetworkOptimizers` (of either).

    Returns:
        The innermost optimizers (e.g. one SGD per network), in order.
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return base_optimizers(optimizer.inner_optimizer)
    inner = getattr(optimizer, "optimizers", None)
    if inner:
        return [base for o in inner for base in base_optimizers(o)]
    return [optimizer]


def set_learning_rate(optimizer, rate: float) -> None:
    """Sets the learning rate of an optimizer, or of every inner optimizer."""
    for inner in base_optimizers(optimizer):
        inner.learning_rate.assign(rate)


class _VariableGroups:
    def __init__(self):
        self.lists: list[list] = []
