"""PyTorch: gradients with `loss.backward()`, update with `optimizer.apply`.

Keras has no distribution support for PyTorch, so data parallelism here is
`torch.distributed` (one process per device, launched by `torchrun`; gloo on
CPU, nccl on GPU) with DDP semantics: every process reads the same global
batch and trains on its contiguous slice; gradients are averaged with one
all-reduce before the method's gradient transforms; per-sample state
updates are all-gathered; batch-normalisation statistics are averaged after
each step, so every process holds the same model.
"""

import contextlib
import os
import weakref

import keras
import torch

from keras_sanm.training.loss_scaling import loss_scale, transform_unscaled

# Models whose variables were broadcast from rank 0 by their first step.
_SYNCED = weakref.WeakSet()
# Processes the running training step is split over (1 outside a step).
_STEP_REPLICAS = [1]
# Optimizers whose slot variables follow their variables' memory order.
_SLOTS_MATCHED = weakref.WeakSet()


def data_parallel_scope(devices: list[str] | None = None):
    """Joins the `torchrun` process group (nccl with CUDA, else gloo); a no-op context.

    Each process owns one device, so `devices` is not used.

    Raises:
        RuntimeError: outside a `torchrun` launch (no `RANK`/`WORLD_SIZE`).
    """
    if not torch.distributed.is_initialized():
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
    return contextlib.nullcontext()


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def replica_count() -> int:
    """Processes of the initialised `torch.distributed` group (1 without one)."""
    return torch.distributed.get_world_size() if _distributed() else 1


def gather_replicas(value):
    """`value` of every process, concatenated along axis 0 in rank order (no gradient)."""
    replicas = replica_count()
    if replicas == 1:
        return value
    value = value.detach().contiguous()
    parts = [torch.empty_like(value) for _ in range(replicas)]
    torch.distributed.all_gather(parts, value)
    return torch.cat(parts, dim=0)


def replicas_in_step() -> int:
    """Processes the running training step is split over (1 outside a step)."""
    return _STEP_REPLICAS[0]


def replica_rows(value):
    """This process's rows of a value drawn for the global batch (`replicas_in_step()` slices).

    Every process draws per-sample randomness (SANM's box sizes and fills)
    for the global batch from the same seed state and keeps its own rows,
    as a one-device step would draw them.
    """
    replicas = replicas_in_step()
    if replicas == 1:
        return value
    rows = value.shape[0] // replicas
    rank = torch.distributed.get_rank()
    return value[rank * rows:(rank + 1) * rows]


def distribute_batch(model, batch):
    """Identity: each process slices the global batch inside the step."""
    return batch


def _local_rows(data, replicas: int):
    """This process's contiguous slice of every batch-sized tensor of `data`."""
    rank = torch.distributed.get_rank()

    def part(x):
        if x is None or not hasattr(x, "shape") or len(x.shape) == 0:
            return x
        if x.shape[0] % replicas:
            raise ValueError(
                f"A batch part has {x.shape[0]} rows, not divisible by the {replicas} "
                f"processes; choose a batch size divisible by {replicas}."
            )
        size = x.shape[0] // replicas
        return x[rank * size:(rank + 1) * size]

    return keras.tree.map_structure(part, data)


def _all_reduce_mean(tensors):
    """Mean over processes of a list of tensors, with one all-reduce."""
    if not tensors:
        return tensors
    flat = torch.cat([t.reshape(-1).to(torch.float32) for t in tensors])
    torch.distributed.all_reduce(flat)
    flat = flat / replica_count()
    out, start = [], 0
    for t in tensors:
        out.append(flat[start:start + t.numel()].reshape(t.shape).to(t.dtype))
        start += t.numel()
    return out


def _broadcast_state(model) -> None:
    """Every variable of `model` and its optimizer as on rank 0."""
    variables = list(model.variables)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    with torch.no_grad():
        for v in variables:
            value = v.value.detach().clone().contiguous()
            torch.distributed.broadcast(value, src=0)
            v.assign(value)


def _average_statistics(model) -> None:
    """Averages float non-trainable state kept per process (batch-norm statistics).

    Variables declared `aggregation="only_first_replica"` are written with
    equal values on every process and are left as they are.
    """
    variables = [
        v for v in model.non_trainable_variables
        if "float" in str(v.dtype) and v.aggregation != "only_first_replica"
    ]
    for v, value in zip(variables, _all_reduce_mean([v.value for v in variables])):
        v.assign(value)


def _match_slot_layouts(optimizer, variables) -> None:
    """Stores the optimizer's per-variable slots (momentum, ...) in the memory
    order of kernels kept natively (`store_conv_kernel_natively`), after the
    optimizer's first step built them: an element-wise update of tensors in
    two memory orders reads one of them strided, which cost more than the
    kernel copies it replaces. Values are unchanged; a slot that matches no
    such kernel is left as it is."""
    orders = {tuple(v.shape): v.value.stride() for v in variables
              if v.value.ndim > 2 and not v.value.is_contiguous()}
    for slot in optimizer.variables:
        value = slot.value
        order = orders.get(tuple(value.shape))
        if order is None or value.stride() == order:
            continue
        restrided = torch.empty_strided(value.shape, order, dtype=value.dtype,
                                        device=value.device)
        with torch.no_grad():
            restrided.copy_(value)
        slot._value = torch.nn.Parameter(restrided, requires_grad=value.requires_grad)


class TrainStep:
    """Keras PyTorch `train_step`/`test_step` built from the method's loss.

    A `NoisyLabelTrainer` holds one and hands it Keras' `train_step` and
    `test_step`; it reads the model's `compute_train_loss`, `step_variables`,
    `transform_gradients`, `after_step` and `update_trackers`.

    Args:
        model: the training wrapper whose steps it runs.
    """

    def __init__(self, model):
        self.model = model

    def train_step(self, data):
        """Keras' step: one step of the model's `default_phase`."""
        return self.phase_train_step(self.model.default_phase, data)

    def phase_train_step(self, phase, data):
        """One training step of `phase` on `data` (this process's rows under DDP)."""
        model = self.model
        replicas = replica_count()
        full_data = data
        if replicas > 1:
            if model not in _SYNCED:
                _broadcast_state(model)
                _SYNCED.add(model)
            data = _local_rows(data, replicas)
        variables, optimizer = model.step_variables(phase)
        model.zero_grad()
        _STEP_REPLICAS[0] = replicas
        try:
            loss, logs = model.compute_train_loss(model.model_inputs(data), phase)
        finally:
            _STEP_REPLICAS[0] = 1
        scale = loss_scale(optimizer)  # (mixed_float16)
        (loss if scale is None else loss * scale).backward()
        grads = [
            torch.zeros_like(v.value) if v.value.grad is None else v.value.grad
            for v in variables
        ]
        with torch.no_grad():
            if replicas > 1:
                grads = _all_reduce_mean(grads)
            values = [v.value for v in variables]
            grads = transform_unscaled(
                lambda g: model.transform_gradients(g, values, phase), grads, scale)
            optimizer.apply(grads, variables)
            if optimizer not in _SLOTS_MATCHED:
                _match_slot_layouts(optimizer, variables)
                _SLOTS_MATCHED.add(optimizer)
            if optimizer is not model.optimizer:
                model.optimizer.iterations.assign_add(1)
            if model.has_after_step:
                model.after_step(phase)
            if replicas > 1:
                _average_statistics(model)
        logs = {name: value.detach() for name, value in logs.items()}
        if replicas > 1:
            # Scalar logs of equal-sized slices: the global batch's means.
            names = list(logs)
            logs = dict(zip(names, _all_reduce_mean([logs[n] for n in names])))
        return model.update_trackers(logs, full_data)

    def test_step(self, data):
        model = self.model
        with torch.no_grad():
            return model.update_trackers(
                model.compute_test_logs(model.model_inputs(data)), data)


def compile_phase_step(model, phase):
    """`run(batch) -> logs`: one training step of `phase`.

    As Keras' `make_train_function` on PyTorch: the step runs eagerly, or
    through `torch.compile` when the model was compiled with
    `jit_compile=True`. Unlike `train_on_batch` the metrics are not reset:
    the logs are running means since the last `reset_metrics()`.
    """
    def run(batch):
        return model.backend_step.phase_train_step(phase, batch)

    return torch.compile(run) if model.jit_compile and not model.run_eagerly else run


def no_gradient():
    """Forward passes that need no backward: not recorded by autograd."""
    return torch.no_grad()


def gradients(loss_fn, variables):
    """Gradients of the scalar `loss_fn()` with respect to `variables`, outside a step.

    For diagnostics; see `keras_sanm.backend.jax.gradients` (here state
    updates made while `loss_fn` runs are kept).
    """
    tensors = [v.value for v in variables]
    loss = loss_fn()
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors)]


def bin_counts(ids, num_bins: int, where=None):
    """How many of `ids` (1-D integers in `[0, num_bins)`) fall in each bin, as int32.

    With `where` (a boolean mask like `ids`), only those entries count. A
    histogram for `order_statistics.kth_largest`.
    """
    # (torch.bincount counts in one pass; Keras' segment_sum copies the ids to
    # int64 and filters them first, 4x the time on 11 M entries.)
    counted = ids if where is None else ids[where]
    return torch.bincount(counted, minlength=num_bins).to(torch.int32)


def device_kind() -> str:
    """`"gpu"` when PyTorch has CUDA or Apple's MPS (Keras' torch backend then runs there)."""
    mps = getattr(torch.backends, "mps", None)
    return "gpu" if torch.cuda.is_available() or (mps and mps.is_available()) else "cpu"


def fused_batch_norm(x, gamma, beta, axis: int, epsilon: float):
    """Batch normalisation of a training step in PyTorch's fused kernel, or `None`.

    `(outputs, mean, variance)` over every axis but `axis` (biased variance,
    as Keras'); `None` unless the channels are on axis 1 (PyTorch's layout),
    where Keras' element-wise version is the one to use. The kernel's own
    batch statistics (mean and `1 / sqrt(variance + epsilon)`) give the
    moving averages' inputs, without gradient and without a second pass
    (`torch.var_mean` over the batch took as long as the normalisation).
    """
    if axis % x.ndim != 1:
        return None
    outputs, mean, inverse_std = torch.native_batch_norm(
        x, gamma, beta, None, None, True, 0.0, epsilon)
    variance = inverse_std.detach().pow(-2) - epsilon
    return outputs, mean.detach(), variance


def materialized(x, decided_by=None):
    """`x` itself: each eager PyTorch operation writes its result to memory."""
    return x


def store_conv_kernel_natively(variable) -> None:
    """Keeps a Keras convolution kernel in PyTorch's memory order, in place.

    Keras keeps a kernel as `(*spatial, in, out)` and its torch backend
    permutes it to PyTorch's `(out, in, *spatial)` in every call; the
    convolution then copies the permuted (non-contiguous) kernel in the
    forward and again in the backward pass. Stored as a permuted view of an
    `(out, in, *spatial)` buffer, the kernel keeps its Keras shape, values,
    saving and assignment (`copy_` writes through the view), while the
    permute in the convolution yields a contiguous tensor, and its gradient
    comes back in the parameter's own layout (no copy either way).
    """
    value = variable.value
    spatial = value.ndim - 2
    native_shape = (value.shape[-1], value.shape[-2], *value.shape[:spatial])
    to_keras = (*range(2, 2 + spatial), 1, 0)
    native = torch.empty(native_shape, dtype=value.dtype, device=value.device).permute(to_keras)
    with torch.no_grad():
        native.copy_(value)
    variable._value = torch.nn.Parameter(native, requires_grad=value.requires_grad)
