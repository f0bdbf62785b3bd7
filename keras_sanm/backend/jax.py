"""JAX: gradients with `jax.value_and_grad` over a stateless call of the method."""

import jax
import keras


def _stateless(variables, values, fn):
    """Runs `fn()` with `variables` read from `values`; returns the result and new values."""
    with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
        result = fn()
    updated = []
    for variable, value in zip(variables, values):
        new_value = scope.get_current_value(variable)
        updated.append(value if new_value is None else new_value)
    return result, updated


class TrainStep:
    """Keras JAX `train_step`/`test_step` built from the method's loss function."""

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_values, metric_values = state
        n_train = len(trainable)

        def loss_fn(trainable_values, non_trainable_values):
            (loss, logs), values = _stateless(
                self.trainable_variables + self.non_trainable_variables,
                list(trainable_values) + list(non_trainable_values),
                lambda: self.compute_train_loss(data),
            )
            return loss, (logs, values[n_train:])

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, (logs, non_trainable)), grads = grad_fn(trainable, non_trainable)
        grads = self.transform_gradients(grads, trainable)
        trainable, optimizer_values = self.optimizer.stateless_apply(
            optimizer_values, grads, trainable
        )
        logs, metric_values = _stateless(
            self.metrics_variables,
            metric_values,
            lambda: self.update_trackers(logs, data),
        )
        return logs, (trainable, non_trainable, optimizer_values, metric_values)

    def test_step(self, state, data):
        trainable, non_trainable, metric_values = state
        variables = (
            self.trainable_variables
            + self.non_trainable_variables
            + self.metrics_variables
        )
        logs, values = _stateless(
            variables,
            list(trainable) + list(non_trainable) + list(metric_values),
            lambda: self.update_trackers(self.compute_test_logs(data), data),
        )
        n_fixed = len(trainable) + len(non_trainable)
        return logs, (trainable, non_trainable, values[n_fixed:])
