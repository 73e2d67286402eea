"""A reference profile of training data: what production is compared with in Scenario I."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from detectors.feature_monitor import NumericDriftMonitor
from detectors.frequencies import CategoryFrequencies, category_keys
from detectors.moments import NumericSummary
from detectors.online import StateVersionError
from detectors.performance import ScoreCalibration, class_key, positive_class, same_class
from detectors.window_comparison import FeatureWindowTest

__all__ = ["ReferenceProfile", "build_profile"]

_FORMAT = "driftline.reference_profile/1"
NUMERIC = "numeric"


@dataclass
class ReferenceProfile:
    """Per column (features, ``__prediction__``, ``__score__``): kind, summary, window test and,
    for numeric columns, the online monitor's baseline; plus labels and performance on the reference."""

    model: str
    model_version: str
    rows: int
    created_at: float
    columns: dict[str, dict] = field(default_factory=dict)
    labels: dict | None = None
    performance: dict | None = None

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "model": self.model, "model_version": self.model_version, "rows": self.rows,
                "created_at": self.created_at, "columns": self.columns, "labels": self.labels,
                "performance": self.performance}

    @classmethod
    def from_dict(cls, state: dict) -> ReferenceProfile:
        if state.get("format") != _FORMAT:
            raise StateVersionError(f"unknown profile format {state.get('format')!r}")
        return cls(state["model"], state["model_version"], int(state["rows"]), float(state["created_at"]),
                   dict(state["columns"]), state.get("labels"), state.get("performance"))

    def kind(self, column: str) -> str | None:
        entry = self.columns.get(column)
        return entry["kind"] if entry else None

    def window_test(self, column: str) -> FeatureWindowTest | None:
        entry = self.columns.get(column)
        return FeatureWindowTest.from_dict(entry["window_test"]) if entry else None

    def category_monitors(self, column: str) -> dict[str, NumericDriftMonitor]:
        entry = self.columns.get(column) or {}
        return {c: NumericDriftMonitor.from_dict(m) for c, m in (entry.get("category_monitors") or {}).items()}

    def monitor(self, column: str) -> NumericDriftMonitor | None:
        entry = self.columns.get(column)
        return NumericDriftMonitor.from_dict(entry["monitor"]) if entry and entry.get("monitor") else None


def build_profile(model: str, model_version: str, columns: dict[str, tuple[str, list | np.ndarray]],
                  created_at: float, window_size: int = 500, monitor_params: dict | None = None,
                  predictions: list | None = None, labels: list | None = None,
                  category_monitor_params: dict | None = None, category_monitors: int = 4) -> ReferenceProfile:
    """Profile columns given as ``name -> (kind, values in row order)``; kind numeric, categorical or boolean.

    Numeric values are floats with NaN for missing; other kinds use None.
    With ``predictions`` and ``labels`` (same rows), the label distribution and
    the model's performance on the reference are profiled too.
    """
    rows = {len(values) for _, values in columns.values()}
    if len(rows) != 1:
        raise ValueError("every column must have the same number of rows")
    profile = ReferenceProfile(model, model_version, rows.pop(), created_at)
    for name, (kind, values) in columns.items():
        entry: dict = {"kind": kind}
        if kind == NUMERIC:
            values = np.asarray(values, dtype=np.float64)
            summary = NumericSummary()
            summary.update(values)
            present = values[~np.isnan(values)]
            entry["summary"] = summary.to_dict()
            entry["quantiles"] = dict(zip(["p01", "p05", "p25", "p50", "p75", "p95", "p99"],
                                          np.quantile(present, [.01, .05, .25, .5, .75, .95, .99]).tolist())) \
                if present.size else {}
            entry["window_test"] = FeatureWindowTest.from_reference(NUMERIC, values, window_size=window_size).to_dict()
            try:
                entry["monitor"] = NumericDriftMonitor.from_reference(values, **(monitor_params or {})).to_dict()
            except ValueError:
                entry["monitor"] = None  # too few values for a baseline: the window test still runs
        else:
            freq = CategoryFrequencies()
            freq.update(values)
            entry["summary"] = freq.to_dict()
            test = FeatureWindowTest.from_reference("categorical", values, window_size=window_size)
            entry["window_test"] = test.to_dict()
            entry["category_monitors"] = {}
            keys = np.array(category_keys(values), dtype=object)
            present = keys != None  # noqa: E711  (elementwise)
            for category in test.categories[:category_monitors]:
                indicator = np.where(present, (keys == category).astype(np.float64), np.nan)
                try:
                    entry["category_monitors"][category] = NumericDriftMonitor.from_reference(
                        indicator, **(category_monitor_params or {})).to_dict()
                except ValueError:
                    pass  # too few values for a baseline
        profile.columns[name] = entry
    if labels is not None and predictions is not None:
        profile.labels, profile.performance = _labels_and_performance(predictions, labels)
        scores = columns.get("__score__", (None, None))[1]
        _performance_baselines(profile.performance, predictions, labels, scores, category_monitor_params)
    return profile


def _performance_baselines(performance: dict, predictions: list, labels: list, scores, monitor_params) -> None:
    """What the worker's performance tracker needs from the reference: the positive class, a score
    calibration (binary classifiers with scores), and the error stream's detector baseline."""
    rows = [(p, y, None if scores is None else scores[i]) for i, (p, y) in enumerate(zip(predictions, labels))
            if p is not None and y is not None]
    if not rows or not performance:
        return
    if performance["task"] == "regression":
        errors = np.array([abs(float(p) - float(y)) for p, y, _ in rows])
    else:
        classes = {class_key(y) for _, y, _ in rows}
        key = positive_class(classes)
        positive = 1 if key in (None, "1") else key  # by class_key, True, 1 and "1" are one class
        performance["positive"] = positive
        errors = np.array([0.0 if same_class(p, y) else 1.0 for p, y, _ in rows])
        numeric = [(s, y) for _, y, s in rows if isinstance(s, (int, float)) and not isinstance(s, bool)
                   and s == s]
        # a calibration fitted on one class would call every score certain of it
        if len(numeric) == len(rows) and len(classes) == 2 and class_key(positive) in classes:
            try:
                calibration = ScoreCalibration.fit([s for s, _ in numeric],
                                                   [same_class(y, positive) for _, y in numeric])
                performance["calibration"] = calibration.to_dict()
            except ValueError:
                pass  # too few labelled scores: the estimate uses plain confidence
    try:
        performance["error_monitor"] = NumericDriftMonitor.from_reference(errors, **(monitor_params or {})).to_dict()
    except ValueError:
        pass


def _labels_and_performance(predictions: list, labels: list) -> tuple[dict, dict]:
    pairs = [(p, y) for p, y in zip(predictions, labels) if y is not None and p is not None]
    if not pairs:
        return {"count": 0}, {}
    ys = [y for _, y in pairs]
    numeric = all(isinstance(y, (int, float)) and not isinstance(y, bool) for y in ys)
    discrete = not numeric or all(float(y).is_integer() for y in ys) and len(set(ys)) <= 20
    if discrete:
        freq = CategoryFrequencies()
        freq.update(ys)
        accuracy = float(np.mean([same_class(p, y) for p, y in pairs]))
        return ({"kind": "categorical", "count": len(ys), "frequencies": freq.frequencies},
                {"task": "classification", "accuracy": accuracy, "count": len(pairs)})
    p = np.array([float(p) for p, _ in pairs])
    y = np.array(ys, dtype=np.float64)
    err = p - y
    return ({"kind": NUMERIC, "count": len(ys), "mean": float(y.mean()), "std": float(y.std(ddof=1))},
            {"task": "regression", "mae": float(np.abs(err).mean()), "rmse": float(math.sqrt((err ** 2).mean())),
             "mean_error": float(err.mean()), "count": len(pairs)})

