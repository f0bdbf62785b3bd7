"""Per-sample label quality from a two-component Gaussian mixture (docs/algorithms.md, "Label quality")."""

from __future__ import annotations

import warnings

import numpy as np
from keras import ops
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

# DivideMix's settings (DM-code): 2 components, max_iter 10, tol 1e-2, reg_covar 5e-4.
GMM_SETTINGS = {"max_iter": 10, "tol": 1e-2, "reg_covar": 5e-4}


def per_sample_cross_entropy(scores, labels, from_logits: bool = True) -> np.ndarray:
    """Cross-entropy of each row of `scores` against integer `labels`, in NumPy.

    Args:
        scores: `(N, C)` logits or probabilities.
        labels: `(N,)` integer labels.
        from_logits: whether `scores` are logits.

    Returns:
        `(N,)` float64 losses.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if from_logits:
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    else:
        log_probs = np.log(np.clip(scores, 1e-7, 1.0))
    return -log_probs[np.arange(len(labels)), labels]


def normalise_losses(losses) -> np.ndarray:
    """Min-max normalisation of per-sample losses to `[0, 1]` (constant input -> zeros)."""
    losses = np.asarray(losses, dtype=np.float64)
    low, high = losses.min(), losses.max()
    if high - low <= 0:
        return np.zeros_like(losses)
    return (losses - low) / (high - low)


def clean_probability(
    losses, seed: int | None = None, normalise: bool = True, **gmm_settings
):
    """Posterior of the low-loss component of a 2-component GMM on the losses.

    Args:
        losses: `(N,)` per-sample losses.
        seed: random state of the k-means initialisation (the reference is
            unseeded; a seed makes runs repeatable).
        normalise: min-max normalise first (`False` for inputs that are
            already averages of normalised losses, as DivideMix's history).
        **gmm_settings: overrides of `GMM_SETTINGS`.

    Returns:
        `(w, gmm)`: `(N,)` clean probabilities in `[0, 1]` and the fitted
        `sklearn.mixture.GaussianMixture` (`None`, with `w = 1`, when all
        losses are equal and there is nothing to separate).

    Example:
    >>> w, _ = clean_probability(np.r_[np.zeros(90), np.ones(10)] + 0.01 * np.random.rand(100))
    """
    losses = np.asarray(losses, dtype=np.float64)
    if not np.all(np.isfinite(losses)):
        raise ValueError(
            "Per-sample losses contain NaN or Inf, so the clean/noisy GMM cannot be fitted: "
            "the network's outputs are not finite (training diverged). Lower the learning "
            "rate and resume from the last checkpoint."
        )
    if losses.size < 2 or np.ptp(losses) <= 0:
        return np.ones_like(losses), None
    normalised = (normalise_losses(losses) if normalise else losses).reshape(-1, 1)
    settings = {**GMM_SETTINGS, **gmm_settings}
    gmm = GaussianMixture(n_components=2, random_state=seed, **settings)
    with warnings.catch_warnings():
        # max_iter=10 is the reference setting; stopping early is expected.
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(normalised)
    posterior = gmm.predict_proba(normalised)
    clean = int(np.argmin(gmm.means_.ravel()))
    return posterior[:, clean], gmm


def split_statistics(
    quality: np.ndarray, noisy_labels=None, clean_labels=None, threshold: float = 0.5
):
    """Summary of a clean/noisy split, and its quality when the true labels are known.

    Args:
        quality: `(N,)` clean probabilities.
        noisy_labels, clean_labels: `(N,)` given and true labels, or `None`.
        threshold: samples with `quality > threshold` count as clean (labeled).

    Returns:
        A dict: `label_quality` (mean), `clean_fraction` (share above the
        threshold) and, with true labels, `noise_auc` (ROC AUC of `quality`
        for "label is correct"), `clean_precision` and `clean_recall` of the
        samples kept as clean, and `quality_correct` / `quality_wrong`, the
        mean clean probability of samples whose label is correct / wrong
        (SANM's boxes grow as it falls).
    """
    quality = np.asarray(quality)
    kept = quality > threshold
    stats = {"label_quality": float(np.mean(quality)), "clean_fraction": float(np.mean(kept))}
    if clean_labels is not None:
        is_clean = np.asarray(noisy_labels) == np.asarray(clean_labels)
        if 0 < is_clean.sum() < len(is_clean):
            from sklearn.metrics import roc_auc_score

            stats["noise_auc"] = float(roc_auc_score(is_clean, quality))
        stats["clean_precision"] = float(is_clean[kept].mean()) if kept.any() else 0.0
        stats["clean_recall"] = float(kept[is_clean].mean()) if is_clean.any() else 0.0
        for name, group in (("quality_correct", is_clean), ("quality_wrong", ~is_clean)):
            stats[name] = float(quality[group].mean()) if group.any() else float("nan")
    return stats


# Layout of `gmm_parameters`: fitted flag, loss min and max, then mean,
# variance and weight of the clean (low-loss) and the noisy component.
GMM_PARAMETER_COUNT = 9


def gmm_parameters(losses, gmm) -> np.ndarray:
    """A fitted GMM (from `clean_probability`) packed as a float32 vector.

    Lets a training step evaluate clean probabilities of losses it computes
    itself (`gmm_clean_posterior`), for data without sample identities.
    `gmm=None` (nothing to separate) gives the all-zero "not fitted" vector.
    """
    if gmm is None:
        return np.zeros(GMM_PARAMETER_COUNT, "float32")
    means, variances = gmm.means_.ravel(), gmm.covariances_.ravel()
    clean = int(np.argmin(means))
    params = [1.0, float(np.min(losses)), float(np.max(losses))]
    for k in (clean, 1 - clean):
        params += [means[k], variances[k], gmm.weights_[k]]
    return np.asarray(params, "float32")


def gmm_clean_posterior(losses, params):
    """Clean posterior of per-sample losses under `gmm_parameters` (keras.ops).

    Args:
        losses: `(B,)` raw per-sample losses.
        params: the packed GMM (a tensor or variable).

    Returns:
        `(B,)` clean probabilities; all ones while `params` is not fitted.
    """
    losses = ops.stop_gradient(ops.convert_to_tensor(losses, "float32"))
    x = (losses - params[1]) / ops.maximum(params[2] - params[1], 1e-12)

    def log_density(mean, var, weight):
        var = ops.maximum(var, 1e-6)
        return ops.log(weight + 1e-12) - 0.5 * (ops.log(var) + ops.square(x - mean) / var)

    posterior = ops.sigmoid(
        log_density(params[3], params[4], params[5])
        - log_density(params[6], params[7], params[8])
    )
    return ops.where(params[0] > 0.5, posterior, ops.ones_like(posterior))
