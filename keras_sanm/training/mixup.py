"""Mixup, as DivideMix, ELR+ and SSR draw it: a Beta-distributed weight and a
random partner per sample (docs/algorithms.md, "DivideMix"), in `keras.ops`."""

from __future__ import annotations

import keras
from keras import ops


def _gamma(shape_parameter: float, seed, candidates: int = 16):
    """One Gamma(a, 1) draw from uniforms and normals only (Marsaglia-Tsang).

    Every backend's compiler handles this (TensorFlow's XLA has no gamma
    sampler): `candidates` proposals are drawn at once and the first accepted
    one is kept. For `a >= 1` each is accepted with probability above 0.95,
    so all being rejected (the last is then used) has probability below
    1e-20. For `a < 1` it uses `Gamma(a) = Gamma(a + 1) * U^(1/a)`.
    """
    boost = shape_parameter < 1.0
    a = shape_parameter + 1.0 if boost else shape_parameter
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    z = keras.random.normal((candidates,), seed=seed)
    u = keras.random.uniform((candidates,), seed=seed)
    v = ops.power(1.0 + c * z, 3.0)
    safe_v = ops.maximum(v, 1e-12)
    accepted = (v > 0) & (
        ops.log(ops.maximum(u, 1e-30)) < 0.5 * z * z + d - d * safe_v + d * ops.log(safe_v)
    )
    accepted = ops.concatenate([accepted[:-1], ops.ones((1,), "bool")])
    first = ops.argmax(ops.cast(accepted, "int32"))
    sample = d * ops.take(safe_v, first)
    if boost:
        sample = sample * ops.power(keras.random.uniform((), seed=seed), 1.0 / shape_parameter)
    return sample


def beta_sample(alpha: float, beta: float, seed):
    """One `Beta(alpha, beta)` draw as `X / (X + Y)` of two Gamma draws.

    Args:
        alpha, beta: positive concentrations.
        seed: a `keras.random.SeedGenerator`.

    Returns:
        A scalar tensor in `(0, 1)`.
    """
    x = _gamma(alpha, seed)
    y = _gamma(beta, seed)
    return x / (x + y)


def random_permutation(n, seed):
    """A uniformly random permutation of `range(n)` (arg-sort of uniform keys)."""
    return ops.argsort(keras.random.uniform((n,), seed=seed))


def mix(inputs, targets, alpha: float, seed):
    """MixMatch's mixup: one `lam ~ Beta(a, a)`, `lam = max(lam, 1 - lam)`, one permutation.

    Args:
        inputs: `(N, ...)` all rows to mix (labeled first).
        targets: `(N, C)` their targets.
        alpha: Beta concentration (4 on CIFAR).
        seed: a `keras.random.SeedGenerator`.

    Returns:
        `(mixed_inputs, mixed_targets, lam, order)`: `order` is the
        permutation, so other per-row quantities can be mixed the same way.
    """
    lam = beta_sample(alpha, alpha, seed)
    lam = ops.maximum(lam, 1.0 - lam)
    # (A step traced without a static batch size, as Keras' own fit on
    # TensorFlow traces one, takes the size at run time.)
    rows = inputs.shape[0]
    order = random_permutation(ops.shape(inputs)[0] if rows is None else int(rows), seed)
    lam_x = ops.cast(lam, inputs.dtype)
    mixed_inputs = lam_x * inputs + (1.0 - lam_x) * ops.take(inputs, order, axis=0)
    lam_y = ops.cast(lam, targets.dtype)
    mixed_targets = lam_y * targets + (1.0 - lam_y) * ops.take(targets, order, axis=0)
    return mixed_inputs, mixed_targets, lam, order
