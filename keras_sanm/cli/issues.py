"""`keras-sanm issues`: a finished run's label issues as a CSV table and a figure."""

from __future__ import annotations

import json
import os


def issues_command(args) -> dict:
    """Writes `label_issues.csv` (one row per training sample, worst first) and
    `label_issues.png` (the worst ones) for a `keras-sanm train` run folder.

    Where the true labels are known (synthetic noise), the table also says which
    given labels are wrong (`label_is_wrong`) and the summary scores the found
    issues against them (`keras_sanm.label_issues.detection_scores`).
    """
    from keras_sanm.label_issues import detection_scores, find_label_issues
    from keras_sanm.viz.run_figures import _load_model, _summary, run_training_data

    if not os.path.isdir(args.run_dir):
        raise SystemExit(f"{args.run_dir} is not a folder.")
    try:
        summary = _summary(args.run_dir)
        model = _load_model(args.run_dir)
        data = run_training_data(summary, args.run_dir, args.data_dir or summary.get("data_dir"))
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None
    output = args.output or args.run_dir
    os.makedirs(output, exist_ok=True)
    table = find_label_issues(model, data["images"], data["given"], threshold=args.threshold,
                              return_table=True, class_names=data["class_names"])
    result = {"samples": len(table), "flagged": int(table["is_label_issue"].sum()),
              "threshold": args.threshold}
    if data["true"] is not None:
        true = data["true"][table["index"].to_numpy()]
        table["label_is_wrong"] = table["given_label"].to_numpy() != true
        result.update(detection_scores(table["is_label_issue"], table["label_quality"],
                                       table["label_is_wrong"]))
    csv_path = os.path.join(output, "label_issues.csv")
    table.to_csv(csv_path, index=False)
    print(f"wrote {csv_path}: {result['flagged']} of {result['samples']} training labels "
          f"flagged (label quality <= {args.threshold})")
    if args.show:
        try:
            from keras_sanm.viz.label_issues import plot_label_issues

            figure = plot_label_issues(data["images"], table, args.show, data["class_names"],
                                       data["true"], mean=data["mean"], std=data["std"])
        except ImportError as error:
            print(f"skipped label_issues.png: {error}")
        else:
            path = os.path.join(output, "label_issues.png")
            figure.savefig(path, dpi=110)
            result["figure"] = path
            print(f"wrote {path}")
    if "auroc" in result:
        print("against the known wrong labels: " + ", ".join(
            f"{key} {result[key]:.3f}" for key in ("precision", "recall", "f1", "auroc")))
    with open(os.path.join(output, "label_issues_summary.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result
