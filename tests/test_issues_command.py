"""`keras-sanm issues RUN_DIR` and `viz.plot_label_issues`: the table as CSV, the worst
issues as a figure, scored against the known wrong labels; on every backend."""

import json

import keras
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

import keras_sanm
from keras_sanm import cli, viz

from conftest import learnable_problem, small_cnn, write_jpeg_npz


def test_issues_command_writes_the_table_figure_and_scores(tmp_path, capsys):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz", n_train=64, n_test=16)
    run = tmp_path / "run"
    cli.main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--noise", "sym:0.5",
              "--method", "ce", "--backbone", "small_cnn", "--epochs", "2", "--batch-size", "32",
              "--output", str(run), "--verbose", "0"])
    capsys.readouterr()
    result = cli.main(["issues", str(run), "--show", "8", "--threshold", "0.4"])
    assert result == 0
    out = capsys.readouterr().out
    table = pd.read_csv(run / "label_issues.csv")
    assert list(table.columns) == ["index", "given_label", "suggested_label", "label_quality",
                                   "is_label_issue", "label_is_wrong"]
    assert len(table) == 64 and sorted(table["index"]) == list(range(64))
    assert np.all(np.diff(table["label_quality"]) >= 0)
    assert (table["is_label_issue"] == (table["label_quality"] <= 0.4)).all()
    # The table's ground truth is the run's noise file: half the labels flipped.
    summary = json.loads((run / "label_issues_summary.json").read_text())
    assert summary["samples"] == 64 and summary["flagged"] == int(table["is_label_issue"].sum())
    wrong = table["label_is_wrong"].to_numpy()
    assert 0.3 < wrong.mean() < 0.7
    from sklearn.metrics import roc_auc_score

    assert summary["auroc"] == pytest.approx(roc_auc_score(wrong, -table["label_quality"]))
    assert "flagged (label quality <= 0.4)" in out and "auroc" in out
    figure = matplotlib.image.imread(run / "label_issues.png")
    assert figure.ndim == 3 and figure.std() > 0.05
    with pytest.raises(SystemExit, match="not a folder"):
        cli.main(["issues", str(tmp_path / "nothing")])


def test_label_issue_figure_draws_the_worst_rows_with_their_labels():
    x, y = learnable_problem(n=64)
    noisy = y.copy()
    noisy[:10] = (y[:10] + 1) % 4
    model = keras_sanm.wrap(small_cnn(), method="ce", sanm=False, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, noisy, batch_size=32, epochs=2, verbose=0)
    table = keras_sanm.find_label_issues(model, x, noisy, return_table=True)
    names = ["red", "green", "blue", "dark"]
    figure = viz.plot_label_issues(x, table, count=6, class_names=names, true_labels=y,
                                   columns=3)
    axes = [ax for ax in figure.axes if ax.images]
    assert len(axes) == 6
    for ax, (_, row) in zip(axes, table.head(6).iterrows()):
        title = ax.get_title()
        assert f"given {names[row['given_label']]}" in title
        assert f"suggested {names[row['suggested_label']]}" in title
        assert ("(wrong)" in title) == (y[row["index"]] != row["given_label"])
    with pytest.raises(ValueError, match="no rows"):
        viz.plot_label_issues(x, table.head(0))
