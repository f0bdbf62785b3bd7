"""The notebooks in examples/ run top to bottom at a tiny size, on the current backend."""

import json
import os

import keras
import nbformat
import pytest
from nbclient import NotebookClient

from conftest import write_jpeg_npz

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` skips them

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def run_notebook(name, overrides, cwd, before_setup=""):
    """Executes `examples/<name>.ipynb` with `overrides` injected after its parameters cell.

    Returns:
        `(RESULTS, notebook)`: the notebook's `RESULTS` dict and the executed notebook.
    """
    notebook = nbformat.read(os.path.join(EXAMPLES, f"{name}.ipynb"), as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook has exactly one cell tagged `parameters`"
    overrides = dict(overrides, BACKEND=keras.backend.backend())
    injected = "\n".join(f"{key} = {value!r}" for key, value in overrides.items())
    cells = [nbformat.v4.new_code_cell(injected)]
    if before_setup:
        cells.append(nbformat.v4.new_code_cell(before_setup))
    notebook.cells[tagged[0] + 1:tagged[0] + 1] = cells
    notebook.cells.append(nbformat.v4.new_code_cell(
        'import json; print("RESULTS=" + json.dumps(RESULTS))'))
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", output
    text = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    return json.loads(text.split("RESULTS=", 1)[1]), notebook


def figures(notebook) -> int:
    """Number of PNG images the notebook displayed."""
    return sum("image/png" in output.get("data", {})
               for cell in notebook.cells for output in cell.get("outputs", []))


def test_notebooks_have_a_parameters_cell_and_no_outputs():
    names = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".ipynb"))
    assert len(names) == 4
    for name in names:
        notebook = nbformat.read(os.path.join(EXAMPLES, name), as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        assert "BACKEND" in code[0].source and "KERAS_BACKEND" in code[1].source, name
        assert all(not cell.outputs and cell.execution_count is None for cell in code), name


# The notebooks run on Colab's default backend only: their calls (fit on every
# input kind, label issues, CIFAR-N loading, figures) are tested per backend
# elsewhere (tests/test_contract_matrix.py and the method tests).
NOTEBOOKS_ONCE = pytest.mark.only_backend(
    "tensorflow", reason="Colab's default backend; the API calls inside are tested per backend")


@NOTEBOOKS_ONCE
def test_quickstart(tmp_path):
    # A smoke run: at this size neither model learns the digits yet (measured:
    # 10 epochs of 640 digits stay near chance), so no accuracy is asserted;
    # what can break is every cell running and what it reports.
    results, notebook = run_notebook("01_quickstart", {"EPOCHS": 3, "TRAIN_SIZE": 256}, tmp_path)
    assert sorted(results) == ["ce_test_accuracy", "issue_precision", "issue_recall", "issues",
                               "sanm_test_accuracy"]
    assert 0 < results["issues"] < 256  # the GMM split flags some samples, not all
    assert figures(notebook) == 2  # training curves and activation maps


@NOTEBOOKS_ONCE
def test_cifar10_synthetic_noise(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz", n_train=128, n_test=32)
    results, notebook = run_notebook("02_cifar10_synthetic_noise", {
        # No warm-up: DivideMix splits in its first epoch (the warm-up step is
        # tested in test_dividemix.py; one program less to compile here).
        "DATA_DIR": str(tmp_path), "EPOCHS": 1, "WARMUP_EPOCHS": 0, "BACKBONE": "small_cnn",
    }, tmp_path)
    # A smoke run (one epoch of 128 images): every cell runs, each model trains
    # its epoch; the accuracy of such runs is not a property of the code.
    assert sorted(results) == ["CE", "SANM(CE)", "SANM(DivideMix)"]
    for result in results.values():
        assert result["epochs"] == 1
    assert figures(notebook) == 3  # curves, activation maps, reconstructions


# tfds' mock data (random images and labels in cifar10_n's format) stands in for
# CIFAR-10N, which the tests cannot download.
MOCK_TFDS = """import tensorflow_datasets as tfds
_mock = tfds.testing.mock_data(num_examples=128)
_mock.__enter__()"""


@NOTEBOOKS_ONCE
def test_cifar10n_real_noise(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    results, notebook = run_notebook("03_cifar10n_real_noise", {
        "EPOCHS": 1, "WARMUP_EPOCHS": 0, "BACKBONE": "small_cnn", "TEST_SIZE": 32,
    }, tmp_path, before_setup=MOCK_TFDS)
    # Random mock labels: no accuracy to expect; the noise the notebook reads
    # from the noisy-label column must be that of random labels (9 in 10 wrong).
    assert 0.8 < results["noise_rate"] < 0.98
    assert figures(notebook) == 2


@NOTEBOOKS_ONCE
def test_your_own_images(tmp_path):
    # 40 one-step epochs (48 training images): the fewest at which the model
    # learns the three shapes here, so its checks can fail.
    results, notebook = run_notebook("04_your_own_images", {
        "EPOCHS": 40, "EXAMPLE_SIZE": 60, "IMAGE_SIZE": (16, 16), "BACKBONE": "small_cnn",
    }, tmp_path)
    assert results["reload_matches"] is True
    # 12 held-out images, 3 classes: chance is 1/3 (measured: 0.75).
    assert results["last_test_accuracy"] >= 0.5, results
    # About 20% of the labels are wrong (30% redrawn among 3 classes); suspects
    # drawn at random would be wrong that often (measured: 0.61).
    assert results["issue_precision"] >= 0.4, results
    assert (tmp_path / "example_images" / "labels.csv").exists()
    assert (tmp_path / "my_model.keras").exists()
    assert figures(notebook) == 2
