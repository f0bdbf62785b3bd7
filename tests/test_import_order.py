"""Whichever public submodule a fresh process imports first, `keras.saving.load_model`
then finds the trainers: their registration does not depend on import order.

Each submodule is imported first by its own process, in which neither Keras
nor the package was imported yet. To keep that cheap, one helper process forks
one child per submodule, in turn; the child checks that no `keras` or
`keras_sanm` module is loaded, imports the submodule, then Keras, and loads a
saved DivideMix model and a saved SANM model with `keras.saving.load_model`.
After each child the helper imports the other libraries the child loaded
(the backend, NumPy, scikit-learn, ...), with Keras blocked meanwhile
(TensorFlow imports Keras at its end when it can), so the next children
import only Keras and the package. One plain fresh process (no preloading)
checks the reported case, `import keras_sanm.training.trainer`, as users run it.
"""

import json
import os
import subprocess
import sys
import time

import keras
import pytest

import keras_sanm

from conftest import small_cnn

# Every submodule a user imports: the package's lazy attributes, the modules
# behind its functions and classes, those the README and docs name, and a
# trainers module that the registration itself imports.
SUBMODULES = sorted({
    *keras_sanm._SUBMODULES, "backend", "cli", "sanm.decoder", "methods.dividemix.device_views",
    "methods.ssr.knn_selection", "methods.dividemix.trainers", "sanm.noisy_mask", "saving",
    "training.trainer", "training.backup", "wrap",
})

LOADED = ["DivideMixTrainer", "SANMCrossEntropyTrainer"]

HELPER = r"""
import importlib, json, os, sys, traceback, warnings

OURS = ("keras", "keras_sanm")

def first_import(submodule, paths):
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in OURS)
    assert not loaded, f"not a fresh process: {loaded}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.import_module(f"keras_sanm.{submodule}")
        import keras
        classes = [type(keras.saving.load_model(path)).__name__ for path in paths]
    others = [name for name in sys.modules if name.split(".")[0] not in OURS]
    return {"classes": classes, "warnings": [str(w.message) for w in caught],
            "modules": others}

def in_child(submodule, paths):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            result = first_import(submodule, paths)
        except BaseException:
            result = {"error": traceback.format_exc()}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    return json.loads(text) if text else {"error": f"exit status {status}"}

class Blocked(ImportError, ValueError):  # Keras while preloading; TensorFlow's look-ups
    pass                                   # of Keras' folder expect a ValueError

class BlockKeras:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OURS:
            raise Blocked(f"{name} is not preloaded")
        return None

def preload(names):
    block = BlockKeras()
    sys.meta_path.insert(0, block)
    try:
        for name in names:
            if name not in sys.modules:
                try:
                    importlib.import_module(name)
                except Exception:
                    pass
    finally:
        sys.meta_path.remove(block)

paths, submodules = json.loads(sys.argv[1])
results = {}
for submodule in submodules:
    results[submodule] = in_child(submodule, paths)
    preload(results[submodule].pop("modules", ()))
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A saved DivideMix model and a saved SANM model (untrained, small base)."""
    folder = tmp_path_factory.mktemp("import_order")
    paths = [str(folder / "dividemix.keras"), str(folder / "sanm_ce.keras")]
    keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False).save(paths[0])
    keras_sanm.wrap(small_cnn(), method="ce", sanm=True).save(paths[1])
    return paths


@pytest.fixture(scope="module")
def first_imports(saved_models):
    """Each submodule's child's result: the loaded classes and any warnings."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", HELPER, json.dumps([saved_models, SUBMODULES])], check=False,
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, KERAS_BACKEND=keras.backend.backend()))
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"{len(SUBMODULES)} first imports: {time.perf_counter() - start:.1f} s")
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the helper forks one child per submodule")
@pytest.mark.only_backend(
    "tensorflow", reason="the import machinery is the same on every backend; TensorFlow's own "
    "import imports Keras, the case the hook must also handle; the reported case runs in a "
    "plain process on every backend")
def test_plain_keras_load_model_after_importing_any_submodule_first(first_imports):
    # One test for all submodules, so that one worker runs the helper.
    failures = {}
    for submodule in SUBMODULES:
        result = first_imports[submodule]
        if "error" in result:
            failures[submodule] = result["error"]
        elif result["classes"] != LOADED or result["warnings"]:
            failures[submodule] = {"classes": result["classes"], "warnings": result["warnings"]}
    assert not failures, failures
    assert sorted(first_imports) == SUBMODULES


def test_plain_keras_load_model_in_a_process_that_imported_the_trainer_module_first(
        saved_models):
    # The reported case in a plain process: `import keras_sanm.training.trainer` imports
    # Keras while it is itself half-executed; no warning, both models load.
    code = ("import keras_sanm.training.trainer\nimport keras\nimport sys\n"
            f"print(*[type(keras.saving.load_model(p)).__name__ for p in {saved_models!r}])")
    done = subprocess.run(
        [sys.executable, "-W", "error:keras_sanm could not:UserWarning", "-c", code],
        check=False, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, KERAS_BACKEND=keras.backend.backend()))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == LOADED
