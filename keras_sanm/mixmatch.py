"""DivideMix's target refinement and MixMatch (docs/algorithms.md, "DivideMix"), in `keras.ops`."""

from __future__ import annotations

import keras
from keras import ops


def sharpen(probabilities, temperature: float):
    """Temperature sharpening `p^(1/T) / sum_k p_k^(1/T)` along the last axis.

    Args:
        probabilities: `(B, C)` distributions.
        temperature: `T` (0.5 in DivideMix).

    Returns:
        `(B, C)` sharpened distributions.

    Example:
    >>> sharpen(ops.array([[0.6, 0.4]]), 0.5)   # [[0.692, 0.308]]
    """
    powered = ops.power(probabilities, 1.0 / temperature)
    return powered / ops.sum(powered, axis=-1, keepdims=True)


def co_refine(mean_probabilities, one_hot_labels, clean_probability, temperature):
    """Label co-refinement: `Sharpen(w * e_y + (1 - w) * p)` (§2.6).

    Args:
        mean_probabilities: `(B, C)` average prediction over the two views.
        one_hot_labels: `(B, C)` noisy labels.
        clean_probability: `(B,)` the peer's clean probability `w`.
        temperature: sharpening temperature.

    Returns:
        `(B, C)` refined targets.
    """
    w = ops.expand_dims(ops.cast(clean_probability, mean_probabilities.dtype), -1)
    return sharpen(w * one_hot_labels + (1.0 - w) * mean_probabilities, temperature)


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


def mixmatch_losses(logits, targets, num_labeled: int):
    """`L_x`, `L_u` and the uniform-prior penalty of DivideMix (§2.8).

    Args:
        logits: `(N, C)` outputs on the mixed rows.
        targets: `(N, C)` mixed targets.
        num_labeled: the first `num_labeled` rows are labeled, the rest
            unlabeled.

    Returns:
        `(L_x, L_u, L_prior)`: soft cross-entropy over labeled rows, mean
        squared error of probabilities over unlabeled rows and classes, and
        `sum_c pi_c log(pi_c / mean_p_c)` with a uniform `pi` over all rows.
    """
    logits = ops.cast(logits, "float32")
    targets = ops.cast(targets, "float32")
    log_probs = ops.log_softmax(logits, axis=-1)
    probs = ops.softmax(logits, axis=-1)
    labeled_loss = -ops.mean(
        ops.sum(targets[:num_labeled] * log_probs[:num_labeled], axis=-1)
    )
    unlabeled_loss = ops.mean(ops.square(probs[num_labeled:] - targets[num_labeled:]))
    num_classes = ops.shape(logits)[-1]
    prior = ops.ones((num_classes,), "float32") / ops.cast(num_classes, "float32")
    mean_probs = ops.mean(probs, axis=0)
    prior_penalty = ops.sum(prior * ops.log(prior / mean_probs))
    return labeled_loss, unlabeled_loss, prior_penalty


def rampup_weight(progress, warmup_epochs: int, lambda_u: float, length: float = 16.0):
    """`lambda_u * clip((t - warm_up) / length, 0, 1)` (§2.8).

    Args:
        progress: `t = epoch + batch_index / (floor(|L| / B) + 1)`.
        warmup_epochs: number of warm-up epochs.
        lambda_u: weight of the unlabeled loss after the ramp.
        length: ramp length in epochs (16).

    Returns:
        The weight of `L_u` at `t`.
    """
    progress = ops.convert_to_tensor(progress, "float32")
    ramp = ops.clip((progress - warmup_epochs) / length, 0.0, 1.0)
    return lambda_u * ramp
