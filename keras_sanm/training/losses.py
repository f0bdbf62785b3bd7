"""Loss functions shared by the training methods (all `keras.ops`)."""

from keras import ops


def log_probabilities(scores, from_logits: bool):
    """Log class probabilities from logits or from probabilities."""
    scores = ops.cast(scores, "float32")
    if from_logits:
        return ops.log_softmax(scores, axis=-1)
    return ops.log(ops.clip(scores, 1e-7, 1.0))


def soft_cross_entropy(scores, targets, from_logits: bool = True):
    """Per-sample cross-entropy against probability targets.

    Args:
        scores: `(B, C)` logits (or probabilities when `from_logits=False`).
        targets: `(B, C)` target distributions (one-hot or soft; entries may
            be slightly negative after label modulation, as in the reference).
        from_logits: whether `scores` are logits.

    Returns:
        `(B,)` losses.

    Example:
    >>> soft_cross_entropy(ops.zeros((1, 4)), ops.one_hot(ops.array([2]), 4))
    ... # [log 4]
    """
    return -ops.sum(ops.cast(targets, "float32") * log_probabilities(scores, from_logits), axis=-1)


def accuracy(scores, labels):
    """Fraction of rows whose arg-max equals the integer label."""
    predicted = ops.cast(ops.argmax(scores, axis=-1), "int32")
    return ops.mean(ops.cast(predicted == ops.cast(labels, "int32"), "float32"))


def confidence_penalty(scores, from_logits: bool = True):
    """Negative entropy `mean_i sum_c p_ic log p_ic` (DivideMix warm-up, asymmetric noise).

    Minimising it discourages over-confident predictions.

    Args:
        scores: `(B, C)` logits (or probabilities when `from_logits=False`).
        from_logits: whether `scores` are logits.

    Returns:
        Scalar penalty.
    """
    log_probs = log_probabilities(scores, from_logits)
    return ops.mean(ops.sum(ops.exp(log_probs) * log_probs, axis=-1))


def negative_cosine_similarity(predictions, targets):
    """SSR's (SimSiam's) consistency loss: `-mean_i cos(p_i, stop_gradient(z_i))`.

    Args:
        predictions: `(B, D)` predictor outputs of one view.
        targets: `(B, D)` projections of the other view (no gradient flows
            into them).

    Returns:
        A float32 scalar in `[-1, 1]` (computed in float32 under mixed precision).
    """
    predictions = ops.cast(predictions, "float32")
    targets = ops.stop_gradient(ops.cast(targets, "float32"))
    p = predictions / ops.maximum(ops.norm(predictions, axis=1, keepdims=True), 1e-12)
    z = targets / ops.maximum(ops.norm(targets, axis=1, keepdims=True), 1e-12)
    return -ops.mean(ops.sum(p * z, axis=1))
