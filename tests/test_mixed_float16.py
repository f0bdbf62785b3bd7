"""float16 mixed precision: every method's steps scale the loss, as Keras' `fit` does.

Under `mixed_float16` every step optimizer is a `LossScaleOptimizer`
(keras_sanm/training/loss_scaling.py). One epoch on tiny data from the float32 run's
weights, on the same batches, moves the weights as float32 does up to
float16 rounding; a step whose scaled gradients overflow changes neither the
weights nor the optimizer slots and halves the scale; the scale doubles
after `dynamic_growth_steps` finite steps.
"""

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm import cli, methods
from keras_sanm.training.alternating import AlternatingTrainer
from keras_sanm.training.loss_scaling import LossScaleOptimizer
from keras_sanm.training.optimizers import base_optimizers

from conftest import learnable_problem, small_cnn, small_data_options

N, BATCH = 16, 8
TOLERANCE = 0.08
# method -> wrap options (the registry's for small data: DivideMix's first epoch is its warm-up).
METHODS = {name: small_data_options(name, N, BATCH) for name in methods.names()}
# Every method plain; SANM(CE) and SANM(DivideMix) (its warm-up clips the gradients).
# The loss scaling is in each backend's step, which every method shares: the
# three step kinds (Keras' fit with one optimizer, Co-teaching's one loss over
# two networks, the alternating networks with their own scales, and clipping)
# run on every backend, the others' gradient edits once, on TensorFlow, whose
# strict dtypes caught a float16 loss.
EVERY_BACKEND = {("ce", False), ("coteaching", False), ("dividemix", True)}
ONCE = pytest.mark.only_backend(
    "tensorflow", reason="the method's own gradient edits, under the backend step that "
    "CE, Co-teaching and SANM(DivideMix) check on every backend")
CASES = [pytest.param(method, sanm, id=f"{method}{'_sanm' if sanm else ''}",
                      marks=() if (method, sanm) in EVERY_BACKEND else ONCE)
         for method, sanm in [(m, False) for m in METHODS] + [("ce", True), ("dividemix", True)]]


@pytest.fixture(autouse=True)
def _restore_dtype_policy():
    previous = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(previous)


def numpy(variables) -> np.ndarray:
    """The variables' values, flattened into one float32 vector."""
    return np.concatenate([np.asarray(keras.ops.convert_to_numpy(v), "float32").ravel()
                           for v in variables])


def step_optimizers(model) -> list:
    """The optimizers the model's steps apply: one per network, or one for the model."""
    if isinstance(model, AlternatingTrainer):
        return list(model.optimizer.optimizers)
    return [model.optimizer]


def slots(model) -> np.ndarray:
    """Every optimizer slot (momentum) of the model's base optimizers."""
    return numpy([v for o in base_optimizers(model.optimizer) for v in o.variables
                  if v.name not in ("iteration", "iterations", "learning_rate")])


def scale(optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.dynamic_scale))


def sgd():
    return keras.optimizers.SGD(0.05, momentum=0.9)


def trained(method, sanm, policy, optimizer, start=None, weight_decay=0.0):
    """One epoch of `method` on tiny data under `policy`, from the weights `start` if given.

    Returns:
        `(model, its weights before, its trainable values before and after)`.
    """
    keras.config.set_dtype_policy(policy)
    x, y = learnable_problem(n=N, seed=3)
    model = keras_sanm.wrap(small_cnn(), method=method, sanm=sanm, seed=0, augment=None,
                            **METHODS[method])
    model.compile(optimizer=optimizer, weight_decay=weight_decay)
    if start is not None:
        model.set_weights(start)
    start, before = model.get_weights(), numpy(model.trainable_variables)
    if keras_sanm.methods.get(method).batch_size_option:
        model.fit(x, y, epochs=1, verbose=0)
    else:
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return model, start, before, numpy(model.trainable_variables)


@pytest.mark.parametrize("method,sanm", CASES)
def test_mixed_float16_steps_track_float32(method, sanm):
    # SGD for every method (Adam's steps hardly depend on the gradients'
    # scale) and a strong coupled weight decay, which must see unscaled gradients.
    reference, start, before, after32 = trained(method, sanm, "float32", sgd(),
                                                weight_decay=0.05)
    model, _, _, after16 = trained(method, sanm, "mixed_float16", sgd(), start=start,
                                   weight_decay=0.05)
    assert model.network.get_layer("conv1").compute_dtype == "float16"
    assert all(isinstance(o, LossScaleOptimizer) for o in step_optimizers(model))
    assert not any(isinstance(o, LossScaleOptimizer) for o in step_optimizers(reference))
    # No step overflowed: each optimizer kept Keras' initial scale.
    assert [scale(o) for o in step_optimizers(model)] == [2.0 ** 15] * len(step_optimizers(model))
    moved32, moved16 = after32 - before, after16 - before
    assert np.linalg.norm(moved32) > 1e-2
    # Relative differences from float16 rounding: at most 2.7% (weights) and
    # 3.7% (momentum), SSR on PyTorch. Weight decay or clipping applied to the
    # scaled gradients: 18% to 100%; gradients left scaled: 3 * 10^4 times.
    difference = np.linalg.norm(moved16 - moved32) / np.linalg.norm(moved32)
    assert difference < TOLERANCE, difference
    slots16, slots32 = slots(model), slots(reference)
    assert np.linalg.norm(slots16 - slots32) < TOLERANCE * np.linalg.norm(slots32)


@pytest.mark.parametrize("method", ["ce", "coteaching", "dividemix"])
def test_overflowing_steps_are_skipped_and_halve_the_scale(method):
    # A user's LossScaleOptimizer (one step optimizer, one around both
    # networks, one per network) whose scale makes every float16 gradient overflow.
    huge = LossScaleOptimizer(sgd(), initial_scale=2.0 ** 40)
    model, _, before, after = trained(method, False, "mixed_float16", huge)
    np.testing.assert_array_equal(after, before)
    assert not np.any(slots(model))  # any applied step would have moved the momentum
    halvings = [np.log2(2.0 ** 40 / scale(o)) for o in step_optimizers(model)]
    if isinstance(model, AlternatingTrainer):  # (the wrapper counts every step)
        steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    else:
        steps = N // BATCH
        assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    assert all(h >= 1 and h == int(h) for h in halvings) and sum(halvings) == steps


def test_scale_doubles_after_dynamic_growth_steps():
    scaled = LossScaleOptimizer(sgd(), initial_scale=2.0 ** 4, dynamic_growth_steps=N // BATCH)
    model, _, before, after = trained("ce", False, "mixed_float16", scaled)
    assert scale(model.optimizer) == 2.0 ** 5 and np.any(after != before)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == N // BATCH


def test_loss_scaling_follows_the_layers_and_the_command_line_takes_float16():
    args = cli.build_parser().parse_args(["train", "--dtype-policy", "mixed_float16"])
    assert args.dtype_policy == "mixed_float16"
    # A base model made under mixed_float16, wrapped under float32: its layers decide.
    keras.config.set_dtype_policy("mixed_float16")
    base = small_cnn()
    keras.config.set_dtype_policy("float32")
    for method, sanm in (("ce", False), ("elr_plus", True)):
        model = keras_sanm.wrap(base, method=method, sanm=sanm, **METHODS[method])
        model.compile()
        assert all(isinstance(o, LossScaleOptimizer) for o in step_optimizers(model))
        model.compile(auto_scale_loss=False)  # as Keras' compile: no scaling
        assert not any(isinstance(o, LossScaleOptimizer) for o in step_optimizers(model))
    model = keras_sanm.wrap(small_cnn(), sanm=False)  # float32 layers: no scaling
    model.compile()
    assert not isinstance(model.optimizer, LossScaleOptimizer)
