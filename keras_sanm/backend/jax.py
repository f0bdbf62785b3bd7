"""JAX: gradients with `jax.value_and_grad` over a stateless call of the method.

Data parallelism is Keras' distribution API (`keras.distribution.DataParallel`):
the jitted step is one global (SPMD) program over the batch sharded across
devices, so gradients, batch statistics and per-sample state updates are
those of the single-device step; XLA inserts the cross-device reductions.
"""

import contextlib

from keras_sanm.backend.xla_cpu import apply_cpu_convolution_default

apply_cpu_convolution_default()  # before the first JAX computation (see xla_cpu.py)

import jax  # noqa: E402
import keras  # noqa: E402

from keras_sanm.training.loss_scaling import loss_scale, transform_unscaled  # noqa: E402


def replica_count() -> int:
    """Devices the batch dimension is split over by the current Keras distribution."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    name = distribution.batch_dim_name
    return int(mesh.shape[mesh.axis_names.index(name)]) if name in mesh.axis_names else 1


def data_parallel_scope(devices: list[str] | None = None):
    """Sets Keras' `DataParallel` distribution globally (so `fit` shards the data); returns its scope."""
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return distribution.scope()


def gather_replicas(value):
    """Identity: a JAX step is one global program, each value already whole."""
    return value


def replicas_in_step() -> int:
    """1: a JAX step is one global program (random draws are the global batch's)."""
    return 1


def replica_rows(value):
    """Identity: a JAX step sees the whole global batch."""
    return value


def distribute_batch(model, batch):
    """The batch on the devices: sharded along its first axis under a Keras distribution.

    As Keras' own `fit` places its batches (the size is checked once, in `fit`).
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return jax.tree_util.tree_map(jax.device_put, batch)
    return jax.tree_util.tree_map(
        lambda a: keras.distribution.distribute_tensor(a, distribution.get_data_layout(a.shape)),
        batch)


def _stateless(variables, values, fn):
    """Runs `fn()` with `variables` read from `values`; returns the result and new values."""
    with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
        result = fn()
    updated = []
    for variable, value in zip(variables, values):
        new_value = scope.get_current_value(variable)
        updated.append(value if new_value is None else new_value)
    return result, updated


def _positions(variables, subset):
    """Index in `variables` of each variable of `subset` (by identity)."""
    index = {id(v): i for i, v in enumerate(variables)}
    return [index[id(v)] for v in subset]


class TrainStep:
    """Keras JAX `train_step`/`test_step` built from the method's loss function.

    A `NoisyLabelTrainer` holds one and hands it Keras' `train_step` and
    `test_step`; it reads the model's `compute_train_loss`, `step_variables`,
    `transform_gradients`, `after_step` and `update_trackers`.

    Args:
        model: the training wrapper whose steps it runs.
    """

    def __init__(self, model):
        self.model = model

    def train_step(self, state, data):
        """Keras' step: one step of the model's `default_phase`."""
        return self.phase_train_step(self.model.default_phase, state, data)

    def phase_train_step(self, phase, state, data):
        """One training step of `phase` on `data`, as a pure function of `state`."""
        model = self.model
        trainable, non_trainable, optimizer_values, metric_values = state
        trainable, optimizer_values = list(trainable), list(optimizer_values)
        trained_variables, optimizer = model.step_variables(phase)
        trained_at = _positions(model.trainable_variables, trained_variables)
        n_train = len(trainable)
        optimizer_at = _positions(model.optimizer.variables, optimizer.variables)
        # Under mixed_float16 the loss is scaled by the step optimizer's scale.
        scale = loss_scale(optimizer)
        if scale is not None:
            (scale_at,) = _positions(model.optimizer.variables, [scale])
            scale = optimizer_values[scale_at]

        def loss_fn(trained_values, trainable_values, non_trainable_values):
            values = list(trainable_values)
            for position, value in zip(trained_at, trained_values):
                values[position] = value
            (loss, logs), new_values = _stateless(
                model.trainable_variables + model.non_trainable_variables,
                values + list(non_trainable_values),
                lambda: model.compute_train_loss(model.model_inputs(data), phase),
            )
            scaled = loss if scale is None else loss * scale
            return scaled, (logs, new_values[n_train:])

        trained = [trainable[p] for p in trained_at]
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, (logs, non_trainable)), grads = grad_fn(trained, trainable, non_trainable)
        # Inside the state: a transform may read the model's variables (CDR's rate).
        grads, _ = _stateless(
            model.trainable_variables + model.non_trainable_variables,
            trainable + list(non_trainable),
            lambda: transform_unscaled(
                lambda g: model.transform_gradients(g, trained, phase), grads, scale),
        )
        trained, new_optimizer_values = optimizer.stateless_apply(
            [optimizer_values[p] for p in optimizer_at], grads, trained
        )
        for position, value in zip(trained_at, trained):
            trainable[position] = value
        for position, value in zip(optimizer_at, new_optimizer_values):
            optimizer_values[position] = value
        if optimizer is not model.optimizer:
            # The wrapping optimizer counts every step, like `apply` does.
            (count_at,) = _positions(model.optimizer.variables, [model.optimizer.iterations])
            optimizer_values[count_at] = optimizer_values[count_at] + 1
        if model.has_after_step:
            variables = model.trainable_variables + model.non_trainable_variables
            _, values = _stateless(variables, trainable + list(non_trainable),
                                   lambda: model.after_step(phase))
            trainable, non_trainable = values[:n_train], values[n_train:]
        logs, metric_values = _stateless(
            model.metrics_variables,
            metric_values,
            lambda: model.update_trackers(logs, data),
        )
        return logs, (trainable, non_trainable, optimizer_values, metric_values)

    def test_step(self, state, data):
        model = self.model
        trainable, non_trainable, metric_values = state
        variables = (
            model.trainable_variables
            + model.non_trainable_variables
            + model.metrics_variables
        )
        logs, values = _stateless(
            variables,
            list(trainable) + list(non_trainable) + list(metric_values),
            lambda: model.update_trackers(
                model.compute_test_logs(model.model_inputs(data)), data),
        )
        n_fixed = len(trainable) + len(non_trainable)
        return logs, (trainable, non_trainable, values[n_fixed:])


def no_gradient():
    """Nothing to do: JAX differentiates only what reaches the loss."""
    return contextlib.nullcontext()


def gradients(loss_fn, variables):
    """Gradients of the scalar `loss_fn()` with respect to `variables`, outside a step.

    For diagnostics (e.g. how much of a loss's gradient comes from one of its
    terms); the variables are not changed. State updates made while
    `loss_fn` runs (batch-norm statistics in training mode) are discarded
    here and kept on TensorFlow and PyTorch: a caller that needs the state
    unchanged restores it.

    Args:
        loss_fn: a function of no argument returning a scalar loss.
        variables: the Keras variables to differentiate against.

    Returns:
        A list of arrays, one per variable.
    """
    def pure(values):
        return _stateless(variables, values, loss_fn)[0]

    return jax.grad(pure)([variable.value for variable in variables])


def compile_phase_step(model, phase):
    """`run(batch) -> logs`: one training step of `phase` on the model's variables.

    The step is `model.backend_step.phase_train_step` with `phase` bound, jitted once per
    phase (as Keras' `make_train_function` jits `train_step`, the state
    donated). `run` reads the variables, runs the step and writes the new
    values back, as Keras' `train_on_batch` does, but without resetting the
    metrics: the logs are running means since the last `reset_metrics()`.
    """
    def step(state, data):
        return model.backend_step.phase_train_step(phase, state, data)

    if model.jit_compile and not model.run_eagerly:
        step = jax.jit(step, donate_argnums=0)
    groups = (model.trainable_variables, model.non_trainable_variables,
              model.optimizer.variables, model.metrics_variables)

    def run(batch):
        state = tuple([v.value for v in group] for group in groups)
        logs, state = step(state, batch)
        for group, values in zip(groups, state):
            for variable, value in zip(group, values):
                variable.assign(value)
        return logs

    return run


def bin_counts(ids, num_bins: int, where=None):
    """How many of `ids` (1-D integers in `[0, num_bins)`) fall in each bin, as int32.

    With `where` (a boolean mask like `ids`), only those entries count. A
    histogram for `order_statistics.kth_largest`.
    """
    counted = jax.numpy.ones_like(ids) if where is None else where.astype(ids.dtype)
    return jax.ops.segment_sum(counted, ids, num_segments=num_bins).astype("int32")


def device_kind() -> str:
    """`"cpu"`, `"gpu"` or `"tpu"`: the kind of device the step runs on."""
    return jax.default_backend()


def fused_batch_norm(x, gamma, beta, axis: int, epsilon: float):
    """`None`: XLA fuses Keras' batch normalisation itself."""
    return None


def materialized(x, decided_by=None):
    """`x`, which XLA on a CPU writes once to memory and reads from there.

    A convolution's kernel gradient is another convolution, which XLA's CPU
    kernels run on transposed copies of the layer's input and of its output
    gradient. XLA fuses the element-wise work that produced them (batch
    normalisation, ReLU, their gradients) into those copies and recomputes
    it in the transposed order, which makes the copies several times
    slower than transposing the stored values. A conditional's result is a
    buffer XLA does not fuse through, and its gradient is a conditional
    too; both branches return `x`, so the values do not change. Only on a
    CPU (elsewhere a conditional reads its predicate back to the host) and
    for non-empty floating-point arrays; else `x` itself.

    Args:
        x: an array inside a traced step.
        decided_by: a non-empty array whose first entry picks the branch
            (both return `x`); default `x`. Give one that every device holds
            whole, such as a layer's kernel: with a batch split over
            devices, reading `x`'s first entry makes all devices wait for
            the one that holds it.

    Returns:
        The same values.
    """
    if (device_kind() != "cpu" or x.size == 0
            or not jax.numpy.issubdtype(x.dtype, jax.numpy.floating)):
        return x
    source = x if decided_by is None else decided_by
    first = jax.numpy.ravel(source)[0]
    return jax.lax.cond(jax.numpy.isfinite(first), lambda v: v, lambda v: v * 1, x)


def store_conv_kernel_natively(variable) -> None:
    """Nothing to do: this backend's convolutions take Keras' kernel layout."""
