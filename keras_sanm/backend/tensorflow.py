"""TensorFlow: gradients with `tf.GradientTape`, update with `optimizer.apply`.

Under `tf.distribute.MirroredStrategy` the step runs once per replica on its
slice of the global batch: gradients are averaged across replicas before
the method's gradient transforms (DDP semantics), and per-sample state
updates are all-gathered so every replica writes the whole global batch.
"""

import contextlib

import numpy as np
import tensorflow as tf

from keras_sanm.training.loss_scaling import loss_scale, transform_unscaled

# One strategy per device set and process: strategies created side by side in
# one process can mix up their collective operations.
_STRATEGIES: dict = {}


def data_parallel_scope(devices: list[str] | None = None):
    """The scope of a `MirroredStrategy` over `devices` (every GPU, else the CPU, by default)."""
    key = None if devices is None else tuple(devices)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices)
    return _STRATEGIES[key].scope()


def replica_count() -> int:
    """Data-parallel replicas of the current `tf.distribute` strategy (1 without one)."""
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def replicas_in_step() -> int:
    """Replicas the traced step runs on (1 outside a replica context)."""
    if tf.distribute.in_cross_replica_context():
        return 1
    return replica_count()


def replica_rows(value):
    """This replica's rows of a value drawn for the global batch (`replicas_in_step()` slices).

    Random draws per sample (SANM's box sizes and fills) are made for the
    global batch with the seed state every replica shares, and each replica
    keeps the rows of its own samples, as a one-device step would draw them.
    """
    replicas = replicas_in_step()
    if replicas == 1:
        return value
    rows = tf.shape(value)[0] // replicas
    start = tf.distribute.get_replica_context().replica_id_in_sync_group * rows
    return value[start:start + rows]


def gather_replicas(value):
    """`value` of every replica, concatenated along axis 0 in replica order.

    Inside a multi-replica step each replica holds a slice of the global
    batch; per-sample state (e.g. ELR+'s targets, updated by sample index)
    is written from the gathered rows, so every replica writes the same
    global update. Identity with one replica.
    """
    if replicas_in_step() == 1:
        return value
    return tf.distribute.get_replica_context().all_gather(value, axis=0)


def distribute_batch(model, batch):
    """Splits a global batch (a structure of numpy arrays) across the replicas.

    `fit` distributes its datasets itself; this is for steps run with
    `train_on_batch` (the alternating methods' loop). Replica `r` gets rows
    `[r * B / n, (r + 1) * B / n)` of every array, so the replicas' rows
    concatenated in order are the global batch.
    """
    strategy = model.distribute_strategy
    replicas = int(strategy.num_replicas_in_sync)
    if replicas == 1:
        return batch
    flat = tf.nest.flatten(batch)
    for array in flat:
        if np.shape(array)[0] % replicas:
            raise ValueError(
                f"A batch part has {np.shape(array)[0]} rows, not divisible by the "
                f"{replicas} replicas; choose a batch size divisible by {replicas}."
            )

    def replica_part(context):
        r = context.replica_id_in_sync_group
        parts = [np.asarray(a)[r * (len(a) // replicas):(r + 1) * (len(a) // replicas)]
                 for a in flat]
        return tf.nest.pack_sequence_as(batch, [tf.constant(p) for p in parts])

    return strategy.experimental_distribute_values_from_function(replica_part)


class TrainStep:
    """Keras TensorFlow `train_step`/`test_step` built from the method's loss.

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
        """One training step of `phase` on `data` (one replica's slice under a strategy)."""
        model = self.model
        variables, optimizer = model.step_variables(phase)
        scale = loss_scale(optimizer)  # (mixed_float16)
        with tf.GradientTape() as tape:
            loss, logs = model.compute_train_loss(model.model_inputs(data), phase)
            if scale is not None:
                loss = loss * scale
        grads = tape.gradient(loss, variables)
        grads = [
            tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)
        ]
        replicas = replicas_in_step()
        if replicas > 1:
            # Every replica transforms the global mean gradient (DDP semantics:
            # clipping and CDR's top-k mask see the whole batch's gradient).
            grads = tf.distribute.get_replica_context().all_reduce("MEAN", grads)
        values = [v.value for v in variables]
        grads = transform_unscaled(
            lambda g: model.transform_gradients(g, values, phase), grads, scale)
        if replicas > 1:
            # Keras' optimizer sums the replicas' gradients in `apply`.
            grads = [g / replicas for g in grads]
        optimizer.apply(grads, variables)
        if optimizer is not model.optimizer:
            model.optimizer.iterations.assign_add(1)
        if model.has_after_step:
            model.after_step(phase)
        return model.update_trackers(logs, data)

    def test_step(self, data):
        model = self.model
        return model.update_trackers(model.compute_test_logs(model.model_inputs(data)), data)


def compile_phase_step(model, phase):
    """`run(batch) -> logs`: one training step of `phase`, a `tf.function` per phase.

    As Keras' `make_train_function`: the step runs once per replica of the
    model's strategy (`strategy.run`), its logs averaged over the replicas,
    traced (without AutoGraph) with `jit_compile` unless the model runs
    eagerly. Unlike
    `train_on_batch` the metrics are not reset: the logs are running means
    since the last `reset_metrics()`. `batch` comes from `distribute_batch`.
    """
    strategy = model.distribute_strategy

    def step(data):
        return model.backend_step.phase_train_step(phase, data)

    def run(batch):
        logs = strategy.run(step, args=(batch,))
        return {name: tf.reduce_mean(strategy.experimental_local_results(value), axis=0)
                for name, value in logs.items()}

    if not model.run_eagerly:
        # Traced without AutoGraph, as Keras traces `train_step`.
        run = tf.function(run, reduce_retracing=True, jit_compile=bool(model.jit_compile),
                          autograph=False)
    return run


def no_gradient():
    """Forward passes here are cut with `ops.stop_gradient` by the method."""
    return contextlib.nullcontext()


def gradients(loss_fn, variables):
    """Gradients of the scalar `loss_fn()` with respect to `variables`, outside a step.

    For diagnostics; see `keras_sanm.backend.jax.gradients` (here state
    updates made while `loss_fn` runs are kept).
    """
    with tf.GradientTape() as tape:
        loss = loss_fn()
    grads = tape.gradient(loss, [v.value for v in variables])
    return [tf.zeros_like(v.value) if g is None else g for g, v in zip(grads, variables)]


def bin_counts(ids, num_bins: int, where=None):
    """How many of `ids` (1-D integers in `[0, num_bins)`) fall in each bin, as int32.

    With `where` (a boolean mask like `ids`), only those entries count. A
    histogram for `order_statistics.kth_largest`.
    """
    counted = tf.ones_like(ids) if where is None else tf.cast(where, ids.dtype)
    return tf.cast(tf.math.unsorted_segment_sum(counted, ids, num_bins), tf.int32)


def device_kind() -> str:
    """`"gpu"` when TensorFlow sees a GPU (Keras places the step there), else `"cpu"`."""
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def fused_batch_norm(x, gamma, beta, axis: int, epsilon: float):
    """Batch normalisation of a training step in TensorFlow's fused kernel, or `None`.

    `(outputs, mean, variance)` over every axis but the last (biased
    variance, as Keras'), for 4-D channels-last float32 inputs; `None`
    otherwise. Keras' TensorFlow backend computes the moments and the
    normalisation, and their gradients, in separate element-wise passes.
    The kernel returns the variance with Bessel's correction (for its own
    moving averages); it is scaled back to the biased one here.
    """
    if x.shape.rank != 4 or axis % 4 != 3 or x.dtype != tf.float32:
        return None
    outputs, mean, corrected, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=gamma, offset=beta, mean=tf.constant([], tf.float32),
        variance=tf.constant([], tf.float32), epsilon=epsilon, data_format="NHWC",
        is_training=True)
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
    variance = corrected * tf.maximum(count - 1.0, 0.0) / count
    return outputs, tf.stop_gradient(mean), tf.stop_gradient(variance)


def materialized(x, decided_by=None):
    """`x` itself: without XLA (Keras' default on a CPU) each operation writes its result to memory."""
    return x


def store_conv_kernel_natively(variable) -> None:
    """Nothing to do: this backend's convolutions take Keras' kernel layout."""
