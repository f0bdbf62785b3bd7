"""TensorFlow: gradients with `tf.GradientTape`, update with `optimizer.apply`."""

import tensorflow as tf


class TrainStep:
    """Keras TensorFlow `train_step`/`test_step` built from the method's loss."""

    def train_step(self, data):
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            loss, logs = self.compute_train_loss(data)
        grads = tape.gradient(loss, variables)
        grads = [
            tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)
        ]
        grads = self.transform_gradients(grads, [v.value for v in variables])
        self.optimizer.apply(grads, variables)
        return self.update_trackers(logs, data)

    def test_step(self, data):
        return self.update_trackers(self.compute_test_logs(data), data)
