"""Data-parallel training on several devices, through each backend's own engine.

| backend | engine | what a step sees |
| --- | --- | --- |
| jax | `keras.distribution.DataParallel` | one global program; the batch sharded over devices |
| tensorflow | `tf.distribute.MirroredStrategy` | one replica per device, a slice of the batch each |
| torch | `torch.distributed` (`torchrun`, gloo / nccl) | one process per device, a slice of the batch each |

On every backend the update is that of the global batch: gradients are
averaged over replicas before the method's gradient transforms, and
per-sample state written by sample index (ELR+'s targets) is gathered so
every replica holds all of it. Between epochs (label quality, DivideMix's
co-divide) every replica evaluates the whole training set itself, so the
per-sample GMM inputs are the complete loss vectors. See
docs/multi_device.md for what differs from one device.
"""

from __future__ import annotations

from keras_sanm.backend import data_parallel_scope, replica_count


def data_parallel(devices: list[str] | None = None):
    """Sets up data parallelism for the current backend.

    Build and compile the model inside the returned context; call `fit`
    anywhere after it.

    Args:
        devices: device names (jax: e.g. `["gpu:0", "gpu:1"]`, tensorflow:
            `["/gpu:0", "/gpu:1"]`); default every accelerator (every CPU
            device when there is none). Not used with torch, where each
            process owns one device.

    Returns:
        A context manager: the distribution's scope (jax, whose distribution
        is also set globally so `fit` shards the data), the strategy's scope
        (tensorflow) or a no-op (torch, once the process group is up).

    Raises:
        RuntimeError: torch outside a `torchrun` launch (no process group and
            no `RANK`/`WORLD_SIZE` in the environment).

    Example:
    >>> with keras_sanm.distribution.data_parallel():
    ...     model = keras_sanm.wrap(base, method="elr_plus", num_samples=len(x))
    ...     model.compile()
    >>> model.fit(x, y, batch_size=128)   # 128 = global batch, split over devices
    """
    return data_parallel_scope(None if devices is None else list(devices))


def check_batch_size(batch_size: int | None, what: str = "batch_size") -> None:
    """Refuses a global batch that the replicas cannot split evenly.

    Args:
        batch_size: global samples per step (`None`: unknown, not checked).
        what: the argument's name in the message.

    Raises:
        ValueError: when `batch_size` is not a multiple of `replica_count()`.

    Example:
    >>> keras_sanm.distribution.check_batch_size(128)
    """
    replicas = replica_count()
    if batch_size is not None and replicas > 1 and batch_size % replicas:
        raise ValueError(
            f"{what}={batch_size} is the global batch and must be divisible by the "
            f"{replicas} data-parallel replicas; use a multiple of {replicas}."
        )


__all__ = ["check_batch_size", "data_parallel", "replica_count"]
