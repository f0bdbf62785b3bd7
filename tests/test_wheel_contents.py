"""What the built wheel ships: the package a user imports, not the research harness."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.only_backend("tensorflow", reason="packaging does not depend on the backend")
def test_the_wheel_holds_the_package_and_nothing_of_the_harness(tmp_path):
    # A copy of the tracked files: a stale build/ of the working tree would leak into the wheel.
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode:
        pytest.skip("not a git checkout")
    source = tmp_path / "source"
    for name in tracked.stdout.split():
        if os.path.exists(os.path.join(ROOT, name)):
            os.makedirs((source / name).parent, exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp_path / "dist"), "-q"],
        capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = [p for p in os.listdir(tmp_path / "dist") if p.endswith(".whl")]
    with zipfile.ZipFile(tmp_path / "dist" / wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    packages = {name.split("/")[0] for name in names}
    assert {p for p in packages if not p.endswith(".dist-info")} == {"keras_sanm"}
    assert not [n for n in names if "benchmarks" in n or n.startswith(("tests/", "docs/"))]
    # What a user imports is there: the public API, every method's folder, the CLI.
    for module in ("keras_sanm/__init__.py", "keras_sanm/wrap.py", "keras_sanm/cli/__init__.py",
                   "keras_sanm/pretraining/api.py", "keras_sanm/backend/jax.py",
                   "keras_sanm/backbones/preact_resnet.py", "keras_sanm/data/image_folder.py"):
        assert module in names, module
    methods = {n.split("/")[2] for n in names
               if n.startswith("keras_sanm/methods/") and n.count("/") == 3}
    assert {"ce", "cdr", "coteaching", "dividemix", "elr_plus", "ssr"} <= methods
    assert b"keras-sanm = keras_sanm.cli:main" in entry_points
