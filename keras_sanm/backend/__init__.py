"""The only backend-specific code in keras_sanm.

A training method defines, once and with `keras.ops` only,

* `compute_train_loss(data, phase) -> (loss, logs)`: the scalar loss of one training
  step and a dict of scalars to log, written as ordinary stateful Keras code
  (sub-model calls, `keras.random` with the model's `SeedGenerator`);
* `compute_test_logs(data) -> logs`: the evaluation of one batch;
* `transform_gradients(gradients, values, phase) -> gradients`: backend-free
  gradient edits (coupled weight decay, gradient masks);
* `after_step(phase)` (when `has_after_step`): state updates that need the
  weights after the optimizer step (weight averages).

Each receives the step's `keras_sanm.training.phases.Phase` (what it trains).
`TrainStep` below (an object each trainer holds as `backend_step`) turns
these into `phase_train_step(phase, ...)` and Keras' `train_step` (the
`default_phase`) / `test_step` for the current backend:
`jax.value_and_grad` over a `StatelessScope` and
`optimizer.stateless_apply` on JAX, `tf.GradientTape` and `optimizer.apply`
on TensorFlow, `loss.backward()` and `optimizer.apply` on PyTorch. A method
may train a subset of its variables with its own optimizer per step
(`step_variables(phase)`, two networks in turn);
`compile_phase_step(model, phase)` compiles one step function per phase,
as Keras' `make_train_function` does for `train_step`. `no_gradient()` marks forward
passes whose outputs are only used under `ops.stop_gradient` (targets,
guesses), so PyTorch does not record them. `gradients(loss_fn, variables)`
differentiates a loss outside a step, for diagnostics. `bin_counts(ids,
num_bins, where)` is an integer histogram (CDR's threshold selection).
`fused_batch_norm(x, gamma, beta, axis, epsilon)` is a training step's
batch normalisation in one kernel where the backend has one for that
layout (PyTorch channels-first, TensorFlow channels-last), else `None`.
`store_conv_kernel_natively(variable)` keeps a convolution kernel in the
memory order the backend's convolution reads (PyTorch's `(out, in, h, w)`),
shape and values unchanged. `materialized(x)` is `x` computed once into
memory where the compiler would otherwise recompute its producers inside
the transposed copies of a kernel gradient (XLA on a CPU). `device_kind()`
says where steps run (`"cpu"`, `"gpu"`, `"tpu"`), for
defaults chosen per kind of device.

Data parallelism goes through each backend's own engine:
`data_parallel_scope(devices)` sets it up (Keras' `DataParallel`, a
`MirroredStrategy` scope, or the `torchrun` process group), `replica_count()`
is the number of data-parallel replicas, `gather_replicas(x)` concatenates
a per-replica value over the replicas inside a step (for per-sample state
written by sample index), `replica_rows(x)` keeps a replica's rows of a
value drawn for the global batch (per-sample random draws, so they equal a
one-device step's; `replicas_in_step()` is the split inside a step), and
`distribute_batch(model, batch)` splits a
global batch for `train_on_batch` where Keras does not (see
keras_sanm/distribution.py and docs/multi_device.md).
"""

import importlib

import keras

_BACKEND = keras.backend.backend()
# What every backend module defines (the only backend-specific code).
_NAMES = ("TrainStep", "bin_counts", "compile_phase_step", "data_parallel_scope", "device_kind",
          "distribute_batch", "fused_batch_norm", "gather_replicas",
          "gradients", "materialized", "no_gradient", "replica_count", "replica_rows",
          "replicas_in_step", "store_conv_kernel_natively")

if _BACKEND not in ("jax", "tensorflow", "torch"):  # pragma: no cover - environment
    raise ImportError(
        f"keras_sanm supports the jax, tensorflow and torch backends; "
        f"KERAS_BACKEND is {_BACKEND!r}."
    )
_module = importlib.import_module(f"keras_sanm.backend.{_BACKEND}")
TrainStep = _module.TrainStep
bin_counts = _module.bin_counts
compile_phase_step = _module.compile_phase_step
data_parallel_scope = _module.data_parallel_scope
device_kind = _module.device_kind
distribute_batch = _module.distribute_batch
fused_batch_norm = _module.fused_batch_norm
gather_replicas = _module.gather_replicas
gradients = _module.gradients
materialized = _module.materialized
no_gradient = _module.no_gradient
replica_count = _module.replica_count
replica_rows = _module.replica_rows
replicas_in_step = _module.replicas_in_step
store_conv_kernel_natively = _module.store_conv_kernel_natively

# XLA on CPU computes the gradients of strided transposed convolutions
# through a slow generic path (about 4x the time of the same work written as
# an ordinary convolution, see keras_sanm/sanm/transposed_conv.py); oneDNN
# (PyTorch) and TensorFlow's own kernels are faster with the native op.
SUBPIXEL_TRANSPOSED_CONV = _BACKEND == "jax"

# Keras' torch backend runs every channels-last convolution and batch
# normalisation through layout copies to PyTorch's channels-first kernels;
# the backbones run channels-first inside on torch
# (benchmarks/torch_layout.py). TensorFlow's CPU convolutions take
# channels-last only, and XLA (JAX) picks its own layouts.
CONV_DATA_FORMAT = "channels_first" if _BACKEND == "torch" else "channels_last"

__all__ = ["CONV_DATA_FORMAT", "SUBPIXEL_TRANSPOSED_CONV", *_NAMES]
