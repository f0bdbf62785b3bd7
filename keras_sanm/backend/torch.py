"""PyTorch: gradients with `loss.backward()`, update with `optimizer.apply`."""

import torch


class TrainStep:
    """Keras PyTorch `train_step`/`test_step` built from the method's loss."""

    def train_step(self, data):
        variables, optimizer = self.step_variables()
        self.zero_grad()
        loss, logs = self.compute_train_loss(data)
        loss.backward()
        grads = [
            torch.zeros_like(v.value) if v.value.grad is None else v.value.grad
            for v in variables
        ]
        with torch.no_grad():
            grads = self.transform_gradients(grads, [v.value for v in variables])
            optimizer.apply(grads, variables)
            if optimizer is not self.optimizer:
                self.optimizer.iterations.assign_add(1)
            if self.has_after_step:
                self.after_step()
        logs = {name: value.detach() for name, value in logs.items()}
        return self.update_trackers(logs, data)

    def test_step(self, data):
        with torch.no_grad():
            return self.update_trackers(self.compute_test_logs(data), data)


def no_gradient():
    """Forward passes that need no backward: not recorded by autograd."""
    return torch.no_grad()
