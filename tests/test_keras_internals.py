"""The Keras and JAX internals the package still reads, each checked where it lives.

Where Keras or JAX has no public way, the package reads these; pyproject.toml
bounds Keras to the minor versions this test passed on. A failure here names
the internal that moved, before the feature that reads it breaks elsewhere:

* `Layer._flatten_layers(include_self=True)`: every layer of a model, nested
  ones included, in Keras' order (`keras_sanm.training.seed_state.seed_generators`, the
  order of the saved `seed_<i>` states). `Model.layers` lists only a model's
  direct layers, and a plain layer has no public list of its sublayers.
* `Layer._seed_generators`: a layer's `SeedGenerator`s (same place); Keras
  saves the weights but not the seed states, and lists no generators.
* `Layer._tracker` with `locked`, `lock()` and `unlock()`: ELR+ adds its
  per-sample targets to a built model (`ELRPlusTrainer`), as Keras' own
  `quantize` does.
* `Model._inbound_nodes[-1].output_tensors`: the output of a nested model's
  call in the outer model (`keras_sanm.backbones.feature_map`).
* `Model._initial_epoch`: read by `fit` as its first epoch; `TrainingBackup`
  resumes through it, as Keras' `BackupAndRestore` does.
* `Variable._value`: the backend tensor of a variable, replaced on PyTorch by
  one stored `(out, in, h, w)` (`keras_sanm.backend.store_conv_kernel_natively`,
  optimizer slots alike) and `None` while a variable is deferred.
* `MultiOptimizer._inner_optimizers`: the inner optimizers, set in group order
  by `NetworkOptimizers` (Keras' `optimizers` property returns this list).
* `MultiOptimizer._var_to_optimizer_idx`, `._trainable_variables_indices`
  and `Optimizer._var_key`: the bookkeeping `MultiOptimizer.apply` reads,
  written by `NetworkOptimizers.build` itself (Keras' own `build` refuses
  inner `LossScaleOptimizer`s, which each network has under mixed_float16).
* `jax._src.xla_bridge._backends`: whether JAX's client has started, read only
  to warn that an XLA flag comes too late (`keras_sanm.backend.xla_cpu`).
"""

import inspect

import keras
import pytest
from keras import layers


def _fail(internal: str, expected: str) -> str:
    return (f"Keras internal `{internal}` moved: the package expects {expected}. Adapt the "
            "code that reads it (tests/test_keras_internals.py lists where) and the keras "
            "bound in pyproject.toml.")


def nested_model() -> keras.Model:
    inner_inputs = keras.Input((4,))
    inner = keras.Model(inner_inputs, layers.Dropout(0.5, name="drop")(
        layers.Dense(3, name="dense")(inner_inputs)), name="inner")
    inputs = keras.Input((4,))
    return keras.Model(inputs, layers.Dense(2, name="head")(inner(inputs)), name="outer")


def test_flatten_layers_lists_every_nested_layer_in_order():
    parameters = inspect.signature(keras.Layer._flatten_layers).parameters
    assert "include_self" in parameters, _fail("Layer._flatten_layers", "an include_self argument")
    model = nested_model()
    names = [layer.name for layer in model._flatten_layers(include_self=True)]
    assert names[0] == "outer" and names.index("inner") < names.index("drop"), _fail(
        "Layer._flatten_layers", "the model, then its layers depth first")
    assert {"dense", "drop", "head"} <= set(names), _fail("Layer._flatten_layers",
                                                          "nested layers included")


def test_seed_generators_are_listed_per_layer():
    model = nested_model()
    dropout = model.get_layer("inner").get_layer("drop")
    generators = getattr(dropout, "_seed_generators", None)
    assert isinstance(generators, list) and len(generators) == 1, _fail(
        "Layer._seed_generators", "a list of the layer's SeedGenerators")
    assert isinstance(generators[0], keras.random.SeedGenerator), _fail(
        "Layer._seed_generators", "SeedGenerator items")
    assert isinstance(generators[0].state, keras.Variable)


def test_tracker_can_be_unlocked_to_add_state_after_build():
    layer = layers.Dense(2)
    layer.build((None, 3))
    tracker = getattr(layer, "_tracker", None)
    assert tracker is not None and tracker.locked, _fail("Layer._tracker",
                                                         "a tracker locked after build")
    tracker.unlock()
    layer.extra = layer.add_weight(shape=(1,), initializer="zeros", trainable=False)
    tracker.lock()
    assert tracker.locked and any(v is layer.extra for v in layer.non_trainable_variables)


def test_inbound_nodes_give_a_nested_models_call_output():
    model = nested_model()
    nodes = getattr(model.get_layer("inner"), "_inbound_nodes", None)
    assert nodes, _fail("Model._inbound_nodes", "the nested model's call nodes")
    outputs = nodes[-1].output_tensors
    assert len(outputs) == 1 and tuple(outputs[0].shape) == (None, 3), _fail(
        "Node.output_tensors", "the call's output tensors")
    assert outputs[0] is model.get_layer("head").input


def test_fit_starts_at_the_initial_epoch_attribute():
    model = keras.Sequential([keras.Input((2,)), layers.Dense(1)])
    assert hasattr(model, "_initial_epoch"), _fail("Model._initial_epoch", "an attribute")
    model.compile(optimizer="sgd", loss="mse")
    model._initial_epoch = 2
    epochs = []
    model.fit(keras.ops.ones((4, 2)), keras.ops.ones((4, 1)), epochs=3, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(
                  on_epoch_begin=lambda epoch, logs: epochs.append(epoch))])
    assert epochs == [2], _fail("Model._initial_epoch", "fit to start at that epoch")


def test_variables_hold_their_backend_tensor_in_value():
    variable = keras.Variable(keras.ops.zeros((2, 3)))
    assert getattr(variable, "_value", None) is not None, _fail(
        "Variable._value", "the variable's backend tensor")
    if keras.backend.backend() == "torch":
        import torch

        assert isinstance(variable._value, torch.nn.Parameter), _fail(
            "Variable._value", "a torch.nn.Parameter on PyTorch")
        variable._value = torch.nn.Parameter(torch.ones(2, 3), requires_grad=True)
        assert keras.ops.convert_to_numpy(variable.value).sum() == 6.0, _fail(
            "Variable._value", "the tensor the variable reads")


def test_multi_optimizer_keeps_its_inner_optimizers_in_one_list():
    optimizers = [keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.2)]
    multi = keras.optimizers.MultiOptimizer(optimizer_map=lambda variable: optimizers[0])
    assert getattr(multi, "_inner_optimizers", None) == [], _fail(
        "MultiOptimizer._inner_optimizers", "an empty list for a callable map")
    multi._inner_optimizers = optimizers
    assert list(multi.optimizers) == optimizers, _fail("MultiOptimizer._inner_optimizers",
                                                 "the list `optimizers` returns")


def test_jax_reports_whether_its_client_started():
    pytest.importorskip("jax")
    from jax._src import xla_bridge

    assert isinstance(getattr(xla_bridge, "_backends", None), dict), _fail(
        "jax._src.xla_bridge._backends", "a dict of started backends")


def test_network_optimizers_route_each_group_to_its_own_optimizer():
    from keras_sanm.training.optimizers import NetworkOptimizers

    first, second = keras.Variable([1.0, 1.0], name="first"), keras.Variable([1.0], name="second")
    optimizer = NetworkOptimizers([keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.5)])
    optimizer.assign_groups([[first], [second]])
    optimizer.build([first, second])
    for attribute in ("_var_to_optimizer_idx", "_trainable_variables_indices"):
        assert isinstance(getattr(optimizer, attribute, None), dict), _fail(
            f"MultiOptimizer.{attribute}", "a dict that apply() reads, keyed by _var_key")
    optimizer.apply([keras.ops.ones((2,)), keras.ops.ones((1,))], [first, second])
    moved = [keras.ops.convert_to_numpy(v) for v in (first, second)]
    assert moved[0].tolist() == pytest.approx([0.9, 0.9]) and moved[1].tolist() == pytest.approx(
        [0.5]), _fail("MultiOptimizer.apply", "each variable updated by its own group's optimizer")
