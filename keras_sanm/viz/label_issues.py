"""`plot_label_issues`: the worst label issues as images with their given and suggested labels."""

from __future__ import annotations

import numpy as np

from keras_sanm.viz.figures import _figure, _show
from keras_sanm.viz.model_views import displayable


def plot_label_issues(images, table, count: int = 24, class_names=None, true_labels=None,
                      columns: int = 8, mean=None, std=None):
    """The first `count` rows of a label-issue table as a grid of images.

    Each image is titled with its given label, the model's suggested label
    and its label quality; with `true_labels` (known for synthetic noise),
    a wrong given label is marked, so the figure shows which issues are
    real.

    Args:
        images: the images the table indexes (`(N, H, W, C)`: numpy,
            `ImageFiles` or any array-like indexed by row numbers).
        table: `keras_sanm.find_label_issues(..., return_table=True)` (worst
            first).
        count: how many rows to draw.
        class_names: names of the classes (default: their numbers).
        true_labels: `(N,)` the true labels, where known.
        columns: images per row of the grid.
        mean, std: per-channel normalisation of `images`, for display.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:
    >>> table = keras_sanm.find_label_issues(model, x, y_noisy, return_table=True)
    >>> keras_sanm.viz.plot_label_issues(x, table, class_names=names).savefig("issues.png")
    """
    rows_shown = table.head(int(count))
    if len(rows_shown) == 0:
        raise ValueError("The table has no rows to draw.")
    index = rows_shown["index"].to_numpy()
    pictures = displayable(np.asarray(images[index]), mean, std)
    columns = min(int(columns), len(index))
    figure, axes = _figure(-(-len(index) // columns), columns, cell=1.6)

    def name(label):
        return str(class_names[int(label)]) if class_names is not None else str(int(label))

    for ax, picture, (_, row) in zip(axes.flat, pictures, rows_shown.iterrows()):
        _show(ax, picture)
        title = (f"given {name(row['given_label'])}\nsuggested {name(row['suggested_label'])}"
                 f"\nquality {row['label_quality']:.2f}")
        colour = "black"
        if true_labels is not None:
            wrong = int(true_labels[int(row["index"])]) != int(row["given_label"])
            colour = "firebrick" if wrong else "darkgreen"
            title += " (wrong)" if wrong else " (correct)"
        ax.set_title(title, fontsize=7, color=colour)
    for ax in axes.flat[len(index):]:
        ax.set_axis_off()
    figure.suptitle("Most likely label issues, worst first", fontsize=9)
    return figure
