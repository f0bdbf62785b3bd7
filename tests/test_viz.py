"""Figures are drawn from the model's own outputs (keras_sanm.viz, keras-sanm plot)."""

import json

import keras
import matplotlib.image
import numpy as np
import pytest
from keras import ops
from matplotlib.patches import Rectangle

import keras_sanm
from keras_sanm import cli, viz
from keras_sanm.sanm import masking

from conftest import CLI_ONLY, small_cnn, write_jpeg_npz


@pytest.fixture
def sanm_model():
    return keras_sanm.wrap(small_cnn(), method="ce", seed=0)


def _rectangles(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_mask_view_is_the_models_activation_map_and_boxes(sanm_model, problem):
    images = problem[0][:6]
    view = viz.mask_view(sanm_model, images, quality=1.0)
    features, scores = sanm_model.features_and_scores(images)
    expected = ops.convert_to_numpy(masking.activation_map(features, (16, 16))) / 255.0
    np.testing.assert_allclose(view.activation_map, expected, atol=1e-6)
    assert view.activation_map.shape == (6, 16, 16)
    # Min-max scaled and floored to 256 levels (the reference's quantisation).
    assert np.all(view.activation_map.max(axis=(1, 2)) >= 254 / 255)
    np.testing.assert_allclose(view.activation_map.min(axis=(1, 2)), 0.0)
    np.testing.assert_array_equal(view.predictions,
                                  np.argmax(ops.convert_to_numpy(scores), axis=-1))
    flat = view.activation_map.reshape(6, -1)
    # Corner anchor: the box starts at the first (row-major) extreme, pushed back inside.
    for box, extreme in ((view.peak_box, np.argmax(flat, 1)), (view.valley_box, np.argmin(flat, 1))):
        top, left, height, width = box.T
        assert (height >= 1).all() and (width >= 1).all()
        np.testing.assert_array_equal(top, np.minimum(extreme // 16, 16 - height))
        np.testing.assert_array_equal(left, np.minimum(extreme % 16, 16 - width))
    # The masked copies hold the box's fill and the image elsewhere.
    top, left, height, width = view.peak_box[0]
    outside = np.ones((16, 16), bool)
    outside[top:top + height, left:left + width] = False
    np.testing.assert_allclose(view.peak_images[0][outside], images[0][outside])
    assert not np.allclose(view.peak_images[0][~outside], images[0][~outside])
    # Boxes grow as the label quality falls.
    low = viz.mask_view(sanm_model, images, quality=0.0)
    area = lambda box: box[:, 2] * box[:, 3]  # noqa: E731
    assert np.all(area(low.peak_box) >= area(view.peak_box))
    assert area(low.peak_box).sum() > area(view.peak_box).sum()


def test_activation_figure_draws_each_models_maps(sanm_model, problem):
    images, labels = problem[0][:4], problem[1][:4]
    given = labels.copy()
    given[2:] = (labels[2:] + 1) % 4
    plain = keras_sanm.wrap(small_cnn(name="other"), method="ce", sanm=False)
    figure = viz.plot_activation_maps({"SANM": sanm_model, "CE": plain}, images, given, labels)
    axes = np.asarray(figure.axes).reshape(4, 3)
    for j, model in enumerate((sanm_model, plain), start=1):
        view = viz.mask_view(model, images)
        for i in range(4):
            drawn = axes[i, j].images[1].get_array()
            np.testing.assert_allclose(np.asarray(drawn), view.activation_map[i])
            boxes = _rectangles(axes[i, j])
            assert len(boxes) == 2
            top, left, height, width = view.peak_box[i]
            assert boxes[0].get_xy() == (left - 0.5, top - 0.5)
            assert (boxes[0].get_height(), boxes[0].get_width()) == (height, width)
    shown = viz.displayable(images)
    np.testing.assert_allclose(np.asarray(axes[0, 0].images[0].get_array()), shown[0])
    assert "correct" in axes[0, 0].get_title() and "true" in axes[3, 0].get_title()


def test_reconstructions_are_the_decoders_outputs(sanm_model, problem):
    images = problem[0][:3]
    view = viz.reconstruction_view(sanm_model, images, quality=0.5)
    masks = viz.mask_view(sanm_model, images, quality=0.5)
    np.testing.assert_allclose(view.peak_images, masks.peak_images)
    features, _ = sanm_model.features_and_scores(masks.valley_images)
    expected = ops.convert_to_numpy(sanm_model.decoder(features))
    np.testing.assert_allclose(view.valley_reconstructions, expected, rtol=1e-5, atol=1e-5)
    assert view.peak_reconstructions.shape == images.shape
    np.testing.assert_allclose(
        view.valley_error, np.mean((expected - images) ** 2, axis=(1, 2, 3)), rtol=1e-5)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    figure = viz.reconstruction_figure(view, mean, std)
    axes = np.asarray(figure.axes).reshape(3, 5)
    np.testing.assert_allclose(np.asarray(axes[1, 2].images[0].get_array()),
                               viz.displayable(view.peak_reconstructions, mean, std)[1])
    assert f"{view.valley_error[2]:.3f}" in axes[2, 4].get_title()
    with pytest.raises(ValueError, match="no reconstruction decoder"):
        viz.plot_reconstructions(keras_sanm.wrap(small_cnn(), sanm=False), images)


def test_two_networks_and_inputs_without_a_feature_map(problem):
    images = problem[0][:2]
    model = keras_sanm.wrap(small_cnn(), method="dividemix", batch_size=8, seed=0)
    first, second = (viz.mask_view(model, images, network_index=k) for k in (0, 1))
    assert not np.allclose(first.activation_map, second.activation_map)
    second_rec = viz.reconstruction_view(model, images, network_index=1)
    features, _ = model.networks[1](second_rec.peak_images)
    np.testing.assert_allclose(second_rec.peak_reconstructions,
                               ops.convert_to_numpy(model.decoders[1](features)), atol=1e-5)
    with pytest.raises(ValueError, match="network_index=2"):
        viz.mask_view(model, images, network_index=2)
    dense = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="no spatial feature map"):
        viz.mask_view(dense, images)
    with pytest.raises(ValueError, match="expects"):
        viz.mask_view(model, np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        viz.mask_view(model, images, quality=1.5)


def test_training_curves_plot_the_logged_values(tmp_path):
    nan = float("nan")
    history = {"val_accuracy": [0.2, 0.4, 0.5], "accuracy": [0.3, 0.5, 0.6],
               "labeled_1": [nan, 40, 45], "labeled_2": [nan, 38, 44],
               "noise_auc_1": [nan, 0.8, 0.9], "noise_auc_2": [nan, 0.7, 0.85],
               "clean_fraction": [nan, nan, nan], "loss": [2.0, 1.5, 1.2]}
    panels = viz.curve_panels(history)
    assert list(panels) == ["test accuracy", "labeled-set size", "detection AUC"]
    figure = viz.plot_training_curves(history)
    lines = {line.get_label(): line for ax in figure.axes for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["test"].get_ydata(), [0.2, 0.4, 0.5])
    np.testing.assert_array_equal(lines["test"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["labeled set of net 2"].get_ydata()[1:], [38, 44])
    # A CSV log (as CSVLogger writes it) reads back the same.
    csv = tmp_path / "log.csv"
    keys = sorted(history)
    rows = [",".join(["epoch", *keys])] + [
        ",".join([str(e), *(str(history[k][e]) for k in keys)]) for e in range(3)]
    csv.write_text("\n".join(rows) + "\n")
    read = viz.read_log(str(tmp_path))
    np.testing.assert_array_equal(read["noise_auc_1"][1:], [0.8, 0.9])
    assert np.isnan(read["labeled_1"][0])
    with pytest.raises(ValueError, match="none of the plotted columns"):
        viz.plot_training_curves({"loss": [1.0, 0.5]})
    with pytest.raises(FileNotFoundError):
        viz.read_log(str(tmp_path / "missing"))


def _train(data_dir, out, *extra):
    cli.main(["train", "--dataset", "cifar10", "--data-dir", str(data_dir), "--noise", "sym:0.5",
              "--method", "ce", "--backbone", "small_cnn", "--epochs", "2", "--batch-size", "32",
              "--output", str(out), "--verbose", "0", *extra])


@pytest.mark.slow
@CLI_ONLY  # the figures' functions are tested per backend above
def test_plot_command_writes_the_figures_of_a_run(tmp_path, capsys):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz", n_train=64, n_test=16)
    sanm_run, ce_run = tmp_path / "sanm", tmp_path / "ce"
    _train(tmp_path, sanm_run)
    _train(tmp_path, ce_run, "--no-sanm")
    assert json.loads((sanm_run / "summary.json").read_text())["data_dir"] == str(tmp_path)
    capsys.readouterr()
    cli.main(["plot", str(sanm_run), "--compare", str(ce_run), "--samples", "2"])
    out = capsys.readouterr().out
    for name in ("curves", "activation_maps", "reconstructions"):
        image = matplotlib.image.imread(sanm_run / "figures" / f"{name}.png")
        assert image.ndim == 3 and min(image.shape[:2]) > 100 and image.std() > 0.05
        assert f"{name}.png" in out
    maps = matplotlib.image.imread(sanm_run / "figures" / "activation_maps.png")
    # Two samples per group (4 rows), three columns: taller than wide.
    assert maps.shape[0] > maps.shape[1]
    cli.main(["plot", str(ce_run), "--output", str(tmp_path / "figs")])
    out = capsys.readouterr().out
    assert "skipped reconstructions: the run was trained without SANM" in out
    assert (tmp_path / "figs" / "activation_maps.png").exists()
    # Without the data, the curves are still drawn and the rest says why not.
    result = viz.plot_run(str(ce_run), str(tmp_path / "nodata"), data_dir=str(tmp_path / "x"),
                          seed=1)
    assert [p.rsplit("/", 1)[-1] for p in result["written"]] == ["curves.png"]
    assert set(result["skipped"]) == {"activation_maps", "reconstructions"}
    with pytest.raises(SystemExit, match="not a folder"):
        cli.main(["plot", str(tmp_path / "nothing")])
