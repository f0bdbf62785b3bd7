"""TensorFlow: gradients with `tf.GradientTape`, update with `optimizer.apply`."""

import contextlib

import tensorflow as tf


class TrainStep:
    """Keras TensorFlow `train_step`/`test_step` built from the method's loss."""

    def train_step(self, data):
        variables, optimizer = self.step_variables()
        with tf.GradientTape() as tape:
            loss, logs = self.compute_train_loss(data)
        grads = tape.gradient(loss, variables)
        grads = [
            tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)
        ]
        grads = self.transform_gradients(grads, [v.value for v in variables])
        optimizer.apply(grads, variables)
        if optimizer is not self.optimizer:
            self.optimizer.iterations.assign_add(1)
        if self.has_after_step:
            self.after_step()
        return self.update_trackers(logs, data)

    def test_step(self, data):
        return self.update_trackers(self.compute_test_logs(data), data)


def no_gradient():
    """Forward passes here are cut with `ops.stop_gradient` by the method."""
    return contextlib.nullcontext()
