"""MixMatch's losses and the ramp of the unlabeled weight (docs/algorithms.md,
"DivideMix"), in `keras.ops`."""

from __future__ import annotations

from keras import ops


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
