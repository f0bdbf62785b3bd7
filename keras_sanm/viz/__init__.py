"""Figures: activation maps with SANM's boxes, reconstructions, training curves.

Needs matplotlib (`pip install "keras-sanm[viz]"`). `plot_run(run_dir)` (and
`keras-sanm plot RUN_DIR`) writes a training run's figures as PNG.

Example:
>>> from keras_sanm import viz
>>> viz.plot_activation_maps({"CE": ce, "SANM(CE)": sanm}, x[:6], y_noisy[:6], y[:6])
>>> viz.plot_reconstructions(sanm, x[:4])
>>> viz.plot_training_curves("runs/my_run/log.csv")
>>> viz.plot_label_issues(x, keras_sanm.find_label_issues(model, x, y, return_table=True))
"""

from keras_sanm.viz.curves import curve_panels, plot_training_curves, read_log
from keras_sanm.viz.figures import (
    activation_figure,
    plot_activation_maps,
    plot_reconstructions,
    reconstruction_figure,
)
from keras_sanm.viz.label_issues import plot_label_issues
from keras_sanm.viz.model_views import (
    MaskView,
    ReconstructionView,
    displayable,
    feature_network,
    mask_view,
    reconstruction_view,
)
from keras_sanm.viz.run_figures import plot_run

__all__ = [
    "MaskView",
    "ReconstructionView",
    "activation_figure",
    "curve_panels",
    "displayable",
    "feature_network",
    "mask_view",
    "plot_activation_maps",
    "plot_label_issues",
    "plot_reconstructions",
    "plot_run",
    "plot_training_curves",
    "read_log",
    "reconstruction_figure",
    "reconstruction_view",
]
