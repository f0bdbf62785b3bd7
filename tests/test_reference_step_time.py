"""benchmarks/reference_step_time.py: the reference's training functions run as published, on the CPU."""

import importlib.util
import os

import pytest

from conftest import HARNESS_ONLY

torch = pytest.importorskip("torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "reference_step_time", os.path.join(ROOT, "benchmarks", "reference_step_time.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A stand-in for a reference `Train_cifar.py`: a network module beside it, a
# default argument read from the top level, a `.cuda()` call, an old-style
# `.next()` on the loader's iterator, and a top level that would train.
TRAIN_CIFAR = '''
import torch
from PreResNet import *
import dataloader_cifar as dataloader   # (imports torchvision: left out)

def train(epoch, net, optimizer, loader, classes=num_classes):
    batches = iter(loader)
    inputs, labels = batches.next()
    loss = torch.nn.functional.cross_entropy(net(inputs.cuda()), labels.cuda())
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    return classes, len(loader.dataset) // loader.batch_size

raise RuntimeError("the top level trains: it must not run")
'''


@HARNESS_ONLY
def test_reference_definitions_run_on_the_cpu_without_their_top_level(tmp_path):
    benchmark = load_benchmark()
    (tmp_path / "Train_cifar.py").write_text(TRAIN_CIFAR)
    (tmp_path / "PreResNet.py").write_text(
        "import torch\ndef ResNet18(num_classes=10):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, num_classes))\n")
    namespace = benchmark.load_training_functions(str(tmp_path))
    assert "PreResNet" not in __import__("sys").modules  # forgotten: the other repo has one
    net = namespace["ResNet18"](num_classes=10)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loader = benchmark._Loader([(torch.randn(64, 3, 2, 2), torch.randint(0, 10, (64,)))], 256)
    before = net[1].weight.detach().clone()
    assert namespace["train"](0, net, optimizer, loader) == (10, 4)
    assert not torch.equal(before, net[1].weight)  # a real step ran
    # The work of a torch step is counted: a 64x12 by 12x10 product forward, and
    # one for the weight's gradient backward (the input needs none).
    assert benchmark.counted_gflop(lambda: namespace["train"](0, net, optimizer, loader)) == \
        pytest.approx(2 * 2 * 64 * 12 * 10 / 1e9)
