"""Dynamic loss scaling for float16 training, shared by every backend's step.

float16 keeps about 3 significant digits and nothing below 6e-8, so many of a
network's gradients would round to zero under `mixed_float16`. The trainers
then give every optimizer a step uses a Keras `LossScaleOptimizer`
(`with_loss_scaling`, in `compile`), and the step of each backend
(`keras_sanm.backend`):

1. multiplies the loss by the optimizer's current scale (`loss_scale`)
   inside the differentiated function, so the float16 backward pass
   carries gradients `scale` times larger;
2. runs the method's `transform_gradients` on the true gradients
   (`transform_unscaled`: divided by the scale first; weight decay, CDR's
   masks and clipping are defined on them) and hands the result back
   multiplied by the scale;
3. applies them with the optimizer's `apply` (`stateless_apply` on JAX),
   which divides by the scale again, skips the update (weights and slots
   unchanged) and halves the scale when a gradient is not finite, and
   doubles the scale after `dynamic_growth_steps` finite steps in a row.

Keras' scale is a power of two, so dividing by it and multiplying back is
exact. Other dtype policies (`float32`, `mixed_bfloat16`) leave the
optimizer as it is and the steps unchanged.
"""

from __future__ import annotations

import keras
from keras import ops

LossScaleOptimizer = keras.optimizers.LossScaleOptimizer


def computes_in_float16(model: keras.Model) -> bool:
    """Whether any layer of `model` (nested models and their layers included) computes in float16.

    Args:
        model: a trainer (its sub-models are walked) or any Keras layer.

    Returns:
        `True` when some layer's dtype policy has a float16 compute dtype
        (`mixed_float16` or `float16`).
    """
    pending, seen = [model, getattr(model, "network", model)], set()
    while pending:
        layer = pending.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if getattr(layer.dtype_policy, "compute_dtype", None) == "float16":
            return True
        pending.extend(getattr(layer, "layers", []))  # a model's layers, nested models'
    return False


def with_loss_scaling(optimizer):
    """`optimizer` wrapped in a `LossScaleOptimizer` with Keras' defaults; itself if it is one.

    Args:
        optimizer: a Keras optimizer.

    Returns:
        A `keras.optimizers.LossScaleOptimizer`.
    """
    if isinstance(optimizer, LossScaleOptimizer):
        return optimizer
    return LossScaleOptimizer(optimizer, name="loss_scale_optimizer")


def rewrapped(scaling, inner):
    """A `LossScaleOptimizer` with the settings of `scaling` around another optimizer.

    Args:
        scaling: a `LossScaleOptimizer` (its initial scale, growth interval and name).
        inner: the optimizer to wrap instead of `scaling.inner_optimizer`.

    Returns:
        A new, unbuilt `LossScaleOptimizer`.
    """
    return LossScaleOptimizer(inner, initial_scale=scaling.initial_scale,
                              dynamic_growth_steps=scaling.dynamic_growth_steps,
                              name=scaling.name)


def loss_scale(optimizer):
    """What a step multiplies its loss by: the optimizer's scale, or `None` when it scales nothing.

    Args:
        optimizer: the optimizer of the step (`step_variables(phase)[1]`).

    Returns:
        The `dynamic_scale` variable of a built `LossScaleOptimizer` (the
        JAX step reads its value from the step's state), its initial scale
        before it is built, else `None`.
    """
    if not isinstance(optimizer, LossScaleOptimizer):
        return None
    return optimizer.dynamic_scale if optimizer.built else float(optimizer.initial_scale)


def transform_unscaled(transform, gradients, scale):
    """`transform` of the true gradients, multiplied back by `scale` for the optimizer.

    A transform may drop entries (CDR's mask multiplies some by zero), so
    when any scaled gradient is not finite the result is NaN throughout:
    the `LossScaleOptimizer` then skips the step, as it would have.

    Args:
        transform: `gradients -> gradients` (the method's `transform_gradients`
            with its other arguments bound).
        gradients: gradients of the scaled loss.
        scale: the loss scale (a scalar tensor or variable), or `None`:
            then `transform(gradients)`.

    Returns:
        The transformed gradients, times `scale`.
    """
    if scale is None:
        return transform(gradients)
    finite = ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in gradients]))
    scale = ops.cast(scale, "float32")
    unscaled = transform([g / ops.cast(scale, g.dtype) for g in gradients])
    factor = ops.where(finite, scale, float("nan"))
    return [g * ops.cast(factor, g.dtype) for g in unscaled]
