"""Figures of SANM: activation maps with boxes (the paper's Figure 1), reconstructions
(Figure 2) and per-epoch curves of a run.

Each `plot_*` returns a `matplotlib.figure.Figure` (shown inline in a
notebook; `figure.savefig(path)` writes it) built from the arrays of
`keras_sanm.viz.model_views`, so what is drawn is the model's output.
"""

from __future__ import annotations

import numpy as np

from keras_sanm.viz.model_views import (
    MaskView,
    ReconstructionView,
    display_constants,
    displayable,
    mask_view,
    reconstruction_view,
)

PEAK_COLOUR, VALLEY_COLOUR = "red", "cyan"


def _figure(rows: int, cols: int, cell: float = 1.9, ticks: bool = False):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "keras_sanm.viz draws with matplotlib: pip install 'keras-sanm[viz]' "
            "(or pip install matplotlib)."
        ) from None
    figure = Figure(figsize=(cell * cols, cell * rows + 0.4), layout="constrained")
    axes = np.asarray(figure.subplots(rows, cols, squeeze=False))
    for ax in axes.flat if not ticks else ():
        ax.set_xticks([])
        ax.set_yticks([])
    return figure, axes


def _show(ax, image):
    """`imshow` of an `(H, W, C)` image in `[0, 1]` (one channel as grey)."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(image, vmin=0.0, vmax=1.0)


def _draw_box(ax, box, colour):
    from matplotlib.patches import Rectangle

    top, left, height, width = (int(v) for v in box)
    # Pixel (r, c) covers [c - 0.5, c + 0.5] in imshow coordinates.
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False,
                           edgecolor=colour, linewidth=1.5))


def _label_text(given, true, class_names):
    def name(c):
        return class_names[int(c)] if class_names is not None else str(int(c))

    if true is None:
        return f"label {name(given)}"
    if int(given) == int(true):
        return f"label {name(given)} (correct)"
    return f"label {name(given)} (true {name(true)})"


def activation_figure(display_images, views: dict[str, MaskView], given_labels,
                      true_labels=None, class_names=None):
    """Draws activation maps with their peak and valley boxes, one column per model.

    Args:
        display_images: `(N, H, W, C)` images in `[0, 1]` (see `displayable`).
        views: `{model name: MaskView}` of the same images.
        given_labels: `(N,)` the labels the models were trained with.
        true_labels: `(N,)` the true labels, if known.
        class_names: optional names of the classes.

    Returns:
        A `Figure`: column 0 the images, then per model the activation map
        (`jet`, `[0, 1]`) over the image, peak box red, valley box cyan.
    """
    count = len(display_images)
    figure, axes = _figure(count, 1 + len(views))
    for i in range(count):
        _show(axes[i, 0], display_images[i])
        true = None if true_labels is None else true_labels[i]
        axes[i, 0].set_title(_label_text(given_labels[i], true, class_names), fontsize=8)
        for j, (name, view) in enumerate(views.items(), start=1):
            ax = axes[i, j]
            _show(ax, display_images[i])
            ax.imshow(view.activation_map[i], cmap="jet", vmin=0.0, vmax=1.0, alpha=0.5)
            _draw_box(ax, view.peak_box[i], PEAK_COLOUR)
            _draw_box(ax, view.valley_box[i], VALLEY_COLOUR)
            predicted = _label_text(view.predictions[i], None, class_names).replace("label", "predicts")
            ax.set_title(f"{name}: {predicted}", fontsize=8)
    figure.suptitle("Activation maps (red: peak box, cyan: valley box)", fontsize=9)
    return figure


def plot_activation_maps(models, images, given_labels, true_labels=None, quality=None,
                         class_names=None, seed: int = 0):
    """Activation maps of the same samples under one or more models, boxes drawn.

    The paper's Figure 1: clean- and noisy-labelled samples side by side for
    two models (e.g. CE and SANM(CE)).

    Args:
        models: a model, or `{name: model}` for several (wrapped or plain
            classifiers; a two-network method shows its first network).
        images: `(N, H, W, C)` raw images as passed to `fit`.
        given_labels: `(N,)` training labels.
        true_labels: `(N,)` true labels, if known (marks wrong labels).
        quality: label quality setting the box size (scalar or `(N,)`;
            default 1, the smallest boxes).
        class_names: optional class names for the titles.
        seed: seed of the box draws.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:
    >>> fig = keras_sanm.viz.plot_activation_maps(
    ...     {"CE": ce_model, "SANM(CE)": sanm_model}, x[:6], y_noisy[:6], y_true[:6])
    >>> fig.savefig("maps.png")
    """
    if not isinstance(models, dict):
        models = {getattr(models, "name", "model"): models}
    if not models:
        raise ValueError("plot_activation_maps needs at least one model.")
    views = {name: mask_view(model, images, quality, seed=seed) for name, model in models.items()}
    given_labels = np.asarray(given_labels).reshape(-1)
    if len(given_labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(given_labels)} labels.")
    return activation_figure(displayable(images), views, given_labels,
                             true_labels, class_names)


def reconstruction_figure(view: ReconstructionView, mean=None, std=None):
    """Draws originals, masked copies and their reconstructions.

    Args:
        view: a `ReconstructionView`.
        mean, std: normalisation constants of the images, if known.

    Returns:
        A `Figure` with one row per sample: original, peak-masked,
        its reconstruction, valley-masked, its reconstruction.
    """
    columns = [
        ("original", view.images, None),
        ("peak-masked", view.peak_images, None),
        ("reconstruction", view.peak_reconstructions, view.peak_error),
        ("valley-masked", view.valley_images, None),
        ("reconstruction", view.valley_reconstructions, view.valley_error),
    ]
    count = len(view.images)
    figure, axes = _figure(count, len(columns))
    for j, (title, arrays, errors) in enumerate(columns):
        shown = displayable(arrays, mean, std)
        for i in range(count):
            _show(axes[i, j], shown[i])
            text = title if errors is None else f"{title}\nMSE {errors[i]:.3f}"
            axes[i, j].set_title(text, fontsize=8)
    figure.suptitle("SANM decoder: reconstructions of masked images", fontsize=9)
    return figure


def plot_reconstructions(model, images, quality=None, mean=None, std=None,
                         network_index: int = 0, seed: int = 0):
    """Originals, their peak/valley-masked copies and the decoder's reconstructions.

    The paper's Figure 2 (the self-supervised branch).

    Args:
        model: a model wrapped with `sanm=True`.
        images: `(N, H, W, C)` raw images as passed to `fit`.
        quality: label quality setting the box size (default 1).
        mean, std: standardisation of the model's inputs, to show them in
            colour (default: the wrapped model's own).
        network_index: which network of a two-network method.
        seed: seed of the box draws.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:
    >>> keras_sanm.viz.plot_reconstructions(model, x_test[:4]).savefig("rec.png")
    """
    view = reconstruction_view(model, images, quality, network_index, seed)
    return reconstruction_figure(view, *display_constants(model, mean, std))
