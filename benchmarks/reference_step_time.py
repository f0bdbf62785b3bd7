"""Training-step time of the reference PyTorch code against this package, same machine, same work.

The reference code is the authors' public repositories, fetched at run time
(`git clone`, never copied into this project): DivideMix
(github.com/LiJunnan1992/DivideMix) and SANM (github.com/yuanpengtu/SANM).
Their training functions run unmodified: the script takes the imports,
functions and classes of each `Train_cifar.py` (not its top-level training
run), sets the globals they read (`args`, `criterion`, `warm_up`), makes
`.cuda()` a no-op so they run on the CPU, and calls them on synthetic batches
in their own tuple layouts (B = 64 labeled + 64 unlabeled, 32x32x3):

* CE: DivideMix's `warmup()` on one batch of B (PreAct ResNet-18, its loss
  and SGD step);
* DivideMix: its `train()` on one labeled and one unlabeled batch;
* SANM(DivideMix): the SANM code's `train()` on one batch pair, with its
  network (`SupCEResNet("resnet18")`: ResNet-18, its decoder) and its
  host-side masking (OpenCV, per image).

The package's steps are the same ones as `fit` runs them
(`step_as_fit_runs_it`; PreAct ResNet-18, `compile()` defaults), one process
per backend. The work of both sides is counted with
`torch.utils.flop_counter.FlopCounterMode` (reference, and the package on the
torch backend: the JAX and TensorFlow steps run the same model code). The
sides alternate: each round runs the reference, then every backend, each in a
fresh process, and the table gives medians over all rounds' steps, the ratio
reference / package (above 1: the package is faster), GFLOP per step and the
fraction of this CPU's float32 matrix-product rate (`cpu_peak.matmul_gflops`,
measured in the same run) that each step reaches.

Needs `git`, PyTorch, scikit-learn and `opencv-python-headless` (the SANM
code resizes activation maps with OpenCV).

    python benchmarks/reference_step_time.py --rounds 2 --steps 3
    python benchmarks/reference_step_time.py --sanm-repo /path/to/SANM.git \\
        --dividemix-repo /path/to/DivideMix.git --backends torch --steps 2
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

# Run as `python benchmarks/reference_step_time.py`: the repository root holds `benchmarks.harness`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SANM_REPO = "https://github.com/yuanpengtu/SANM"
DIVIDEMIX_REPO = "https://github.com/LiJunnan1992/DivideMix"
STEPS = ("ce", "dividemix", "sanm_dividemix")
LABELS = {"ce": "CE", "dividemix": "DivideMix", "sanm_dividemix": "SANM(DivideMix)"}
BATCH = 64


# ----------------------------------------------------------------- reference
def load_training_functions(repo: str) -> dict:
    """The imports, functions and classes of `repo/Train_cifar.py`, run on the CPU.

    The file's top level also parses arguments and trains; only its
    definitions are executed. `.cuda()` returns the tensor or module itself.
    """
    import torch

    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    with open(os.path.join(repo, "Train_cifar.py")) as f:
        tree = ast.parse(f.read())
    keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
    # (Its data loader imports torchvision, which the steps do not need.)
    body = [node for node in tree.body if isinstance(node, keep)
            and not (isinstance(node, ast.Import)
                     and any(alias.name == "dataloader_cifar" for alias in node.names))]
    sys.path.insert(0, repo)
    try:
        # (`num_classes`: a default argument value one definition reads.)
        namespace = {"__name__": "reference_train_cifar", "num_classes": 10}
        exec(compile(ast.Module(body=body, type_ignores=[]), "Train_cifar.py", "exec"),
             namespace)
    finally:
        sys.path.remove(repo)
        # Both repositories have a `PreResNet` module: forget this one's.
        for name, module in list(sys.modules.items()):
            if os.path.dirname(getattr(module, "__file__", None) or "") == repo:
                del sys.modules[name]
    return namespace


class _Batches:
    """An iterator with the `.next()` of the PyTorch versions DivideMix was written for."""

    def __init__(self, batches):
        self._items = iter(batches)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._items)

    next = __next__


class _Loader(list):
    """A list of batches with the `.dataset` and `.batch_size` the reference reads."""

    def __init__(self, batches, dataset_size):
        super().__init__(batches)
        self.dataset, self.batch_size = range(dataset_size), BATCH

    def __iter__(self):
        return _Batches(list.__iter__(self))


def reference_steps(sanm_repo: str, dividemix_repo: str) -> dict:
    """`name -> step()`: one reference training step each, on fixed synthetic batches."""
    import torch

    torch.manual_seed(0)
    b = BATCH

    def images():
        return torch.randn(b, 3, 32, 32)

    def set_globals(namespace):
        namespace.update(
            args=types.SimpleNamespace(batch_size=b, num_class=10, T=0.5, alpha=4.0,
                                       lambda_u=25.0, noise_mode="sym", r=0.5,
                                       dataset="cifar10", num_epochs=300),
            criterion=namespace["SemiLoss"](), warm_up=10,
            CEloss=torch.nn.CrossEntropyLoss(), num_classes=10)

    steps = {}
    dividemix = load_training_functions(dividemix_repo)
    set_globals(dividemix)
    nets = [dividemix["ResNet18"](num_classes=10) for _ in range(2)]
    optimizer = torch.optim.SGD(nets[0].parameters(), lr=0.02, momentum=0.9,
                                weight_decay=5e-4)
    labels = torch.randint(0, 10, (b,))
    warmup_loader = _Loader([(images(), labels, None)], b)
    steps["ce"] = lambda: dividemix["warmup"](20, nets[0], optimizer, warmup_loader)
    labeled = _Loader([(images(), images(), labels, torch.rand(b))], 4 * b)
    unlabeled = _Loader([(images(), images())], 4 * b)
    steps["dividemix"] = lambda: dividemix["train"](20, nets[0], nets[1], optimizer, labeled,
                                                    unlabeled)

    sanm = load_training_functions(sanm_repo)
    set_globals(sanm)
    sanm_nets = [sanm["SupCEResNet"]("resnet18", num_classes=10) for _ in range(2)]
    sanm_optimizer = torch.optim.SGD(sanm_nets[0].parameters(), lr=0.02, momentum=0.9,
                                     weight_decay=5e-4)
    # (weak, weak, strong, strong, weak for guesses, weak, label, true label, quality)
    sanm_labeled = _Loader([(*[images() for _ in range(6)], labels, labels,
                             torch.rand(b))], 4 * b)
    sanm_unlabeled = _Loader([(*[images() for _ in range(6)], torch.rand(b))], 4 * b)
    steps["sanm_dividemix"] = lambda: sanm["train"](20, sanm_nets[0], sanm_nets[1],
                                                    sanm_optimizer, sanm_labeled, sanm_unlabeled)
    return steps


# ------------------------------------------------------------------- package
def package_steps() -> dict:
    """`name -> step()`: the package's steps as `fit` runs them (PreAct ResNet-18)."""
    import keras
    import numpy as np

    import keras_sanm
    from benchmarks.harness.step_time import step_as_fit_runs_it

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4 * BATCH, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, len(images))
    steps = {}
    for name, method, sanm in (("ce", "ce", False), ("dividemix", "dividemix", False),
                               ("sanm_dividemix", "dividemix", True)):
        keras.utils.set_random_seed(0)
        model = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10), method=method,
                                sanm=sanm, seed=0)
        model.compile()
        steps[name], _ = step_as_fit_runs_it(model, images, labels, BATCH, rng)
    return steps


# -------------------------------------------------------------------- timing
def counted_gflop(step) -> float | None:
    """GFLOP of one call of a torch step (convolutions and matrix products)."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover - environment
        return None
    if not torch.is_grad_enabled():  # pragma: no cover
        return None
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def measure(side: str, steps: int, sanm_repo: str, dividemix_repo: str) -> dict:
    """Per-step seconds of every step of one side (after one untimed call each)."""
    import keras  # noqa: F401  (the backend is fixed before torch threads are set)
    import torch

    torch.set_num_threads(int(os.environ.get("REFERENCE_THREADS", "2")))
    timed = reference_steps(sanm_repo, dividemix_repo) if side == "reference" else package_steps()
    result = {"side": side, "seconds": {}, "gflop": {}}
    for name, step in timed.items():
        step()  # compiles / builds
        if side == "reference" or keras.backend.backend() == "torch":
            result["gflop"][name] = counted_gflop(step)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        result["seconds"][name] = times
    return result


def fetch(source: str, folder: str) -> str:
    """`git clone` a repository (URL or local path) into `folder`; returns its work tree."""
    depth = [] if os.path.exists(source) else ["--depth", "1"]  # (a local path: whole)
    subprocess.run(["git", "clone", "--quiet", *depth, source, folder], check=True)
    return folder


def table(results: list[dict], peak: float, backends: list[str]) -> str:
    def gather(side):
        runs = [r for r in results if r["side"] == side]
        seconds = {n: statistics.median([t for r in runs for t in r["seconds"][n]])
                   for n in STEPS}
        gflop = next((r["gflop"] for r in runs if r["gflop"]), {})
        return seconds, gflop

    reference, reference_gflop = gather("reference")
    package_gflop = next((r["gflop"] for r in results if r["side"] == "torch" and r["gflop"]),
                         {})
    head = ["step", "GFLOP reference / package", "reference (s)",
            *[f"{b} (s)" for b in backends]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name in STEPS:
        # (The package's work is counted on its torch backend only.)
        flop = " / ".join(f"{counted[name]:,.0f}" if counted.get(name) else "not counted"
                          for counted in (reference_gflop, package_gflop))
        ref_flop = reference_gflop.get(name)
        ref_share = f", {ref_flop / reference[name] / peak:.0%} of peak" if ref_flop else ""
        cells = [LABELS[name], flop, f"{reference[name]:.3f}{ref_share}"]
        for backend in backends:
            seconds = gather(backend)[0][name]
            work = package_gflop.get(name)
            share = f", {work / seconds / peak:.0%} of peak" if work else ""
            cells.append(f"{seconds:.3f} ({reference[name] / seconds:.2f}x{share})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="tensorflow,torch,jax")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternations of reference and package processes")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--sanm-repo", default=SANM_REPO)
    parser.add_argument("--dividemix-repo", default=DIVIDEMIX_REPO)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from child_process import print_result

        result = measure(args.child, args.steps, args.sanm_repo, args.dividemix_repo)
        print_result(result)  # (on its own line, after the reference's progress output)
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cpu_peak import matmul_gflops

    from child_process import child_result

    backends = [b for b in args.backends.split(",") if b]
    with tempfile.TemporaryDirectory() as folder:
        sanm = fetch(args.sanm_repo, os.path.join(folder, "SANM"))
        dividemix = fetch(args.dividemix_repo, os.path.join(folder, "DivideMix"))
        peak = matmul_gflops(threads=int(os.environ.get("REFERENCE_THREADS", "2")))
        print(f"float32 matrix product on this CPU: {peak:.1f} GFLOP/s", flush=True)
        results = []
        for round_index in range(args.rounds):
            for side in ["reference", *backends]:
                results.append(child_result(
                    __file__, "torch" if side == "reference" else side,
                    [side, "--steps", str(args.steps), "--sanm-repo", sanm,
                     "--dividemix-repo", dividemix]))
                medians = {n: statistics.median(t) for n, t in results[-1]["seconds"].items()}
                print(f"round {round_index + 1}: {side} "
                      + ", ".join(f"{LABELS[n]} {s:.3f} s" for n, s in medians.items()),
                      flush=True)
    print(f"\nMedian seconds per step over {args.rounds} round(s) x {args.steps} steps; "
          "(reference / package, fraction of the matrix-product rate):\n")
    print(table(results, peak, backends))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
