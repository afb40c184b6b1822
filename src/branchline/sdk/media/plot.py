"""`plot.*`: chart presets, each a `Table` of the points plus which columns the chart draws.

Logged under a key, a preset is stored as its table (`table-file`) whose descriptor also carries
`"chart": {"preset": "line", "fields": {"x": ..., "y": ...}, "title": ...}`, so the web app can draw
it and any reader still gets the data as a table. Curves (ROC, PR) and the confusion matrix are
computed here with numpy, without scikit-learn.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from branchline.sdk.media.base import array_of
from branchline.sdk.media.table import Table

__all__ = [
    "Chart",
    "bar",
    "confusion_matrix",
    "histogram",
    "line",
    "line_series",
    "pr_curve",
    "roc_curve",
    "scatter",
]

#: Most points a curve keeps per class (evenly spaced thresholds beyond it).
MAX_CURVE_POINTS = 1_000


class Chart(Table):
    """A table with a chart preset: which columns the chart draws, and its title."""

    def __init__(self, table: Table, preset: str, fields: dict[str, str], title: str = "") -> None:
        super().__init__(columns=list(table.columns))
        self.data = table.data
        for role, column in fields.items():
            if column not in self.columns:
                raise ValueError(
                    f"plot.{preset}: {role}={column!r} is not a column of the table ({', '.join(self.columns)})."
                )
        self.preset = preset
        self.fields = dict(fields)
        self.title = str(title or "")

    def payload(self) -> dict[str, Any]:
        body = super().payload()
        body["chart"] = {"preset": self.preset, "fields": self.fields, "title": self.title}
        return body


def _table(value: Any, preset: str) -> Table:
    if not isinstance(value, Table):
        raise TypeError(f"plot.{preset} takes a branchline.Table first, got {type(value).__name__}.")
    return value


def line(table: Table, x: str, y: str, stroke: str | None = None, title: str = "", split_table: bool = False) -> Chart:
    fields = {"x": x, "y": y} | ({"stroke": stroke} if stroke else {})
    return Chart(_table(table, "line"), "line", fields, title)


def scatter(table: Table, x: str, y: str, title: str = "", split_table: bool = False) -> Chart:
    return Chart(_table(table, "scatter"), "scatter", {"x": x, "y": y}, title)


def bar(table: Table, label: str, value: str, title: str = "", split_table: bool = False) -> Chart:
    return Chart(_table(table, "bar"), "bar", {"label": label, "value": value}, title)


def histogram(table: Table, value: str, title: str = "", split_table: bool = False) -> Chart:
    return Chart(_table(table, "histogram"), "histogram", {"value": value}, title)


def line_series(
    xs: Sequence[Any],
    ys: Sequence[Sequence[Any]],
    keys: Sequence[str] | None = None,
    title: str = "",
    xname: str = "x",
    split_table: bool = False,
) -> Chart:
    """Several lines in one chart: `ys` holds one sequence per line (sharing `xs`, or one `xs` each)."""
    series = [list(y) for y in ys]
    names = list(keys) if keys is not None else [f"key_{i}" for i in range(len(series))]
    if len(names) != len(series):
        raise ValueError(f"plot.line_series: {len(names)} keys for {len(series)} lines.")
    x_list = list(xs)
    shared = not x_list or not hasattr(x_list[0], "__len__") or isinstance(x_list[0], str)
    table = Table(columns=["lineKey", "lineVal", "step"])
    for i, (name, values) in enumerate(zip(names, series, strict=True)):
        x_values = x_list if shared else list(x_list[i])
        if len(x_values) != len(values):
            raise ValueError(f"plot.line_series: line {name!r} has {len(values)} values for {len(x_values)} x values.")
        for x, y in zip(x_values, values, strict=True):
            table.add_data(name, y, x)
    return Chart(table, "line_series", {"step": "step", "lineKey": "lineKey", "lineVal": "lineVal"}, title or xname)


def _labels(y_true: Any, preds: Any, class_names: Sequence[str] | None) -> tuple[Any, Any, list[str]]:
    import numpy as np

    truth = array_of(y_true, "plot.confusion_matrix(y_true)").ravel().astype(np.int64)
    guess = array_of(preds, "plot.confusion_matrix(preds)").ravel().astype(np.int64)
    if truth.shape != guess.shape:
        raise ValueError(f"plot.confusion_matrix: {truth.size} true labels for {guess.size} predictions.")
    count = int(max(truth.max(initial=0), guess.max(initial=0))) + 1
    names = list(class_names) if class_names is not None else [str(i) for i in range(count)]
    if len(names) < count:
        raise ValueError(f"plot.confusion_matrix: labels go up to {count - 1} but only {len(names)} class_names.")
    return truth, guess, names


def confusion_matrix(
    probs: Any = None,
    y_true: Any = None,
    preds: Any = None,
    class_names: Sequence[str] | None = None,
    title: str = "",
    split_table: bool = False,
) -> Chart:
    """Counts of (actual, predicted) class pairs, from `preds` or the argmax of `probs`."""
    import numpy as np

    if (probs is None) == (preds is None):
        raise ValueError("plot.confusion_matrix takes either preds= (class ids) or probs= (scores), not both.")
    if y_true is None:
        raise ValueError("plot.confusion_matrix needs y_true= (the true class ids).")
    if probs is not None:
        preds = array_of(probs, "plot.confusion_matrix(probs)").argmax(axis=-1)
    truth, guess, names = _labels(y_true, preds, class_names)
    size = len(names)
    counts = np.bincount(truth * size + guess, minlength=size * size).reshape(size, size)
    table = Table(columns=["Actual", "Predicted", "nPredictions"])
    for i in range(size):
        for j in range(size):
            table.add_data(names[i], names[j], int(counts[i, j]))
    fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
    return Chart(table, "confusion_matrix", fields, title)


def _curve_points(truth: Any, scores: Any) -> tuple[Any, Any, Any]:
    """Cumulative true and false positives at each distinct threshold, highest score first."""
    import numpy as np

    order = np.argsort(-scores, kind="stable")
    hits = truth[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores[order])), hits.size - 1]
    tps = np.cumsum(hits)[distinct]
    fps = (distinct + 1) - tps
    if tps.size > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, tps.size - 1, MAX_CURVE_POINTS).astype(np.int64))
        tps, fps = tps[keep], fps[keep]
    return tps, fps, hits.sum()


def _per_class(
    y_true: Any, y_probas: Any, labels: Sequence[str] | None, classes: Sequence[int] | None, what: str
) -> Iterator[tuple[str, Any, Any]]:
    import numpy as np

    truth = array_of(y_true, f"plot.{what}(y_true)").ravel()
    probas = array_of(y_probas, f"plot.{what}(y_probas)")
    if probas.ndim == 1:
        probas = np.stack([1 - probas, probas], axis=1)
    if probas.ndim != 2 or probas.shape[0] != truth.size:
        raise ValueError(
            f"plot.{what}: y_probas must be (samples × classes) for {truth.size} samples, got shape {probas.shape}."
        )
    names = list(labels) if labels is not None else [str(i) for i in range(probas.shape[1])]
    chosen = list(classes) if classes is not None else list(range(probas.shape[1]))
    for c in chosen:
        yield names[c], (truth == c).astype(np.int64), probas[:, c].astype(np.float64)


def roc_curve(
    y_true: Any,
    y_probas: Any,
    labels: Sequence[str] | None = None,
    classes_to_plot: Sequence[int] | None = None,
    title: str = "ROC",
    split_table: bool = False,
) -> Chart:
    """One-vs-rest ROC curve per class: false and true positive rates."""
    table = Table(columns=["class", "fpr", "tpr"])
    for name, truth, scores in _per_class(y_true, y_probas, labels, classes_to_plot, "roc_curve"):
        tps, fps, positives = _curve_points(truth, scores)
        negatives = truth.size - positives
        table.add_data(name, 0.0, 0.0)
        for tp, fp in zip(tps.tolist(), fps.tolist(), strict=True):
            table.add_data(name, fp / negatives if negatives else 0.0, tp / positives if positives else 0.0)
    return Chart(table, "roc_curve", {"x": "fpr", "y": "tpr", "class": "class"}, title)


def pr_curve(
    y_true: Any,
    y_probas: Any,
    labels: Sequence[str] | None = None,
    classes_to_plot: Sequence[int] | None = None,
    interp_size: int = 21,
    title: str = "Precision v. Recall",
    split_table: bool = False,
) -> Chart:
    """One-vs-rest precision-recall curve per class."""
    table = Table(columns=["class", "recall", "precision"])
    for name, truth, scores in _per_class(y_true, y_probas, labels, classes_to_plot, "pr_curve"):
        tps, fps, positives = _curve_points(truth, scores)
        table.add_data(name, 0.0, 1.0)
        for tp, fp in zip(tps.tolist(), fps.tolist(), strict=True):
            table.add_data(name, tp / positives if positives else 0.0, tp / (tp + fp) if tp + fp else 1.0)
    return Chart(table, "pr_curve", {"x": "recall", "y": "precision", "class": "class"}, title)
