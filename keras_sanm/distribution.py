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

import contextlib
import os

import keras

from keras_sanm.backend import replica_count

_TF_STRATEGIES: dict = {}


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
    backend = keras.backend.backend()
    if backend == "jax":
        distribution = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(distribution)
        return distribution.scope()
    if backend == "tensorflow":
        import tensorflow as tf

        # One strategy per device set and process: strategies created side by
        # side in one process can mix up their collective operations.
        key = None if devices is None else tuple(devices)
        if key not in _TF_STRATEGIES:
            _TF_STRATEGIES[key] = tf.distribute.MirroredStrategy(devices)
        return _TF_STRATEGIES[key].scope()
    if backend == "torch":
        _init_torch_process_group()
        return contextlib.nullcontext()
    raise ValueError(f"Unsupported backend {backend!r}.")  # pragma: no cover


def _init_torch_process_group() -> None:
    """Joins the `torchrun` process group (nccl with CUDA, else gloo) if not yet done."""
    import torch

    if torch.distributed.is_initialized():
        return
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError(
            "With KERAS_BACKEND=torch, data parallelism runs one process per device: "
            "launch the script with `torchrun --nproc_per_node=<devices> script.py` "
            "(or initialise torch.distributed yourself before building the model)."
        )
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch.distributed.init_process_group("nccl")
    else:
        torch.distributed.init_process_group("gloo")


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
