"""The network work of one DivideMix / SANM(DivideMix) step in plain PyTorch.

A same-machine baseline for `step_time.py`: a PreAct ResNet-18 written directly
with `torch.nn` (NCHW, no Keras), doing what one reference training step does
on the network (docs/algorithms.md, "DivideMix" and "SANM with each method"), with batch B = 64:

* DivideMix: six no-grad forward passes of B (four of the trained network in
  training mode, two of the peer in eval mode), then forward + backward of the
  4B mixed rows and an SGD step (1,279 GFLOP).
* SANM(DivideMix): the same six passes, forward + backward of the 4B masked
  images through the encoder and the reference decoder, and of the 12B mixed
  rows, one SGD step (4,070 GFLOP).

Masking, augmentation and data loading are left out (the reference's mask
function runs on the host); the time is a lower bound for the reference code
on the same machine.

    python benchmarks/native_torch_work.py --steps 3
"""

from __future__ import annotations

import argparse

import torch
from step_time import median_time
from torch import nn
from torch.nn import functional as F


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x):
        a = F.relu(self.bn1(x))
        skip = a if self.shortcut is None else self.shortcut(a)
        return self.conv2(F.relu(self.bn2(self.conv1(a)))) + skip


class PreActResNet18(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_Block(cin, cout, stride), _Block(cout, cout, 1)]
            cin = cout
        self.blocks, self.fc = nn.Sequential(*blocks), nn.Linear(512, classes)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(512, 256, 4, 2), nn.ConvTranspose2d(256, 128, 6, 1),
            nn.ConvTranspose2d(128, 3, 4, 2),
        )

    def features(self, x):
        return self.blocks(F.relu(self.bn(self.stem(x))))

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def step(net, peer, optimizer, batch: int, sanm: bool):
    x = torch.rand(batch, 3, 32, 32)
    with torch.no_grad():
        net.train()
        for _ in range(4):
            net(x)
        peer.eval()
        for _ in range(2):
            peer(x)
    net.train()
    loss = 0.0
    if sanm:
        masked = torch.rand(4 * batch, 3, 32, 32)
        loss = F.mse_loss(net.decoder(net.features(masked)), masked)
    rows = (12 if sanm else 4) * batch
    logits = net(torch.rand(rows, 3, 32, 32))
    loss = loss + F.cross_entropy(logits, torch.randint(0, 10, (rows,)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, sanm in (("DivideMix", False), ("SANM(DivideMix)", True)):
        net, peer = PreActResNet18(), PreActResNet18()
        optimizer = torch.optim.SGD(net.parameters(), 0.02, momentum=0.9, weight_decay=5e-4)
        seconds = median_time(
            lambda: step(net, peer, optimizer, args.batch_size, sanm), args.steps, warmup=1
        )
        print(f"{name}: median {seconds:.3f} s per step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
