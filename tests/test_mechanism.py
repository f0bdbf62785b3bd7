"""`python -m benchmarks mechanism` and `backend.gradients`, on every backend."""


import keras
import numpy as np
import pytest
from keras import ops

from benchmarks.__main__ import main as bench
from benchmarks.harness import mechanism, predicted_classes
from keras_sanm import backend, cli
from keras_sanm.sanm.masking import modulate_labels
from keras_sanm.sanm.noisy_mask import NoisyMask
from keras_sanm.training import losses

from conftest import HARNESS_ONLY, write_jpeg_npz


def test_gradients_of_a_known_function():
    a = keras.Variable(np.array([1.0, -2.0, 3.0], "float32"))
    b = keras.Variable(np.array(0.5, "float32"))
    grads = backend.gradients(lambda: ops.sum(a * a) * b + 3.0 * b, [a, b])
    np.testing.assert_allclose(ops.convert_to_numpy(grads[0]), [1.0, -2.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(grads[1]), 14.0 + 3.0, rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(a), [1.0, -2.0, 3.0])  # unchanged


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mechanism")
    write_jpeg_npz(root / "cifar10_jpeg.npz")
    runs = {}
    for name, flag in (("ce", ["--no-sanm"]), ("sanm", [])):
        runs[name] = root / name
        cli.main(["train", "--data-dir", str(root), "--noise", "sym:0.5", "--backbone",
                  "small_cnn", "--epochs", "2", "--batch-size", "16", "--test-size", "40",
                  "--output", str(runs[name]), "--verbose", "0", *flag])
    return runs


@HARNESS_ONLY
def test_group_measures_split_the_sanm_gradient_exactly(finished_runs):
    model, images, noisy, true, summary = mechanism.load_run(str(finished_runs["sanm"]))
    assert summary["sanm"] is True and len(images) == len(noisy) == len(true)
    assert np.mean(noisy != true) == pytest.approx(summary["actual_noise_rate"])
    x, y = images[:20], noisy[:20]
    quality = np.linspace(0.0, 1.0, 20).astype("float32")
    keras.utils.set_random_seed(3)
    mask = NoisyMask(seed=5)
    measures = mechanism.group_measures(model, mask, x, y, quality, batch_size=20)

    # The same draws again, with SANM's classification loss differentiated as a whole.
    keras.utils.set_random_seed(3)
    mask = NoisyMask(seed=5)
    xt = ops.convert_to_tensor(x)
    targets = ops.one_hot(ops.convert_to_tensor(y.astype("int32")), model.num_classes)
    network = mechanism.feature_network(model)
    with backend.no_gradient():
        features, scores = network(xt, training=False)
        masked = mask(xt, features, ops.convert_to_tensor(quality))

    def sanm_loss():
        copies = ops.concatenate([xt, masked["peak_images"], masked["valley_images"]], axis=0)
        copy_targets = ops.concatenate([targets, modulate_labels(targets, masked["peak_ratio"]),
                                        modulate_labels(targets, masked["valley_ratio"])], axis=0)
        return ops.mean(losses.soft_cross_entropy(
            network(copies, training=False)[1], copy_targets, model.from_logits))

    whole = mechanism._flat(backend.gradients(sanm_loss, network.trainable_variables))
    assert measures["gradient_norm"] == pytest.approx(float(np.linalg.norm(whole)), rel=1e-3)
    # Mask size follows the quality rule: s = U(0.02, 0.07) + 0.03 (1 - w), area = s / 2.
    assert 0.5 * 0.02 <= measures["mask_area"] <= 0.5 * 0.10
    assert measures["target_on_label"] == pytest.approx(1 - 2 * measures["mask_area"], rel=1e-5)
    expected_clean = ops.mean(losses.soft_cross_entropy(scores, targets, model.from_logits))
    assert measures["loss_clean"] == pytest.approx(float(expected_clean), rel=1e-4)
    assert -1.0 <= measures["cosine"] <= 1.0 and 0.0 <= measures["same_prediction"] <= 1.0


@HARNESS_ONLY
def test_mechanism_command_measures_ce_and_sanm_runs(finished_runs, tmp_path):
    out = tmp_path / "mechanism.md"
    runs = [str(finished_runs["ce"]), str(finished_runs["sanm"])]
    assert bench(["mechanism", *runs, "--samples", "8", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ce") or
            line.startswith("| sanm")]
    assert [row.split(" | ")[1:3] for row in rows] == [
        ["CE", "correct"], ["CE", "wrong"], ["SANM(CE)", "correct"], ["SANM(CE)", "wrong"]]
    with pytest.raises(SystemExit):
        bench(["mechanism", str(tmp_path)])  # not a finished run


@HARNESS_ONLY
def test_classes_command_counts_the_runs_own_predictions(finished_runs, tmp_path):
    run = str(finished_runs["sanm"])
    result = predicted_classes.predicted_classes(run)
    model, data, noisy, summary = mechanism.load_finished_run(run)
    # The test accuracy recomputed from the saved model is the one the run logged.
    assert result["test_accuracy"] == pytest.approx(summary["last_test_accuracy"], abs=1e-6)
    assert result["test"].sum() == len(data.y_test) and result["train"].sum() == len(noisy)
    assert result["labels_in_predicted"] == int(np.isin(noisy, result["predicted"]).sum())
    assert result["last_labeled"] is None  # SANM(CE) has no labeled set
    out = tmp_path / "classes.md"
    assert bench(["classes", run, "--out", str(out)]) == 0
    row = out.read_text().splitlines()[2].split(" | ")
    assert row[2] == " ".join(map(str, result["test"])) and row[-1] == "– |"


def test_last_labeled_reads_the_last_logged_split(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,labeled_1\n0,nan\n1,1200.0\n2,824.0\n")
    assert predicted_classes._last_labeled(str(tmp_path)) == 824
    (tmp_path / "log.csv").write_text("epoch,loss\n0,1.0\n")
    assert predicted_classes._last_labeled(str(tmp_path)) is None
