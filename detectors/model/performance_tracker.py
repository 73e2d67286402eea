"""A model version's performance: realized from joined labels, estimated from scores, and its alerts."""

from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass
from operator import itemgetter

import numpy as np

from detectors.feature_monitor import NumericDriftMonitor
from detectors.online import StateVersionError
from detectors.performance import (ScoreCalibration, class_key, classification_metrics, expected_accuracy,
                                   positive_class, regression_metrics, same_class)
from detectors.model.params import PerformanceParams, restored

__all__ = ["PerformanceFinding", "PerformanceTracker"]

ERROR = "__error__"


@dataclass(frozen=True)
class PerformanceFinding:
    detector: str
    statistic: float
    threshold: float
    position: int          # index of the deciding item in the list given
    evidence: dict
    hold: bool = False     # not an alert: still worse than halfway to the bound, an open episode stays open


def _task_of(label: object) -> str:
    if isinstance(label, float) and not label.is_integer():
        return "regression"
    return "classification"


_FORMAT = "driftline.performance/3"
_READABLE = (_FORMAT, "driftline.performance/2", "driftline.performance/1")  # before 3: no parameters saved
_KEEP_IMPROVEMENTS = 10
_SCORE, _PREDICTION = itemgetter("score"), itemgetter("prediction")
_NUMBERS = {int, float}


class PerformanceTracker:
    """Windows of ``performance_window`` joined labels give realized metrics; the first windows (or the
    reference's performance) give the baseline, and a window below its bound is a ``performance`` alert.
    The error stream (0/1 errors, or absolute errors) feeds CUSUM and ADWIN against a baseline that stays
    (the reference's, else the first production one), so an error back at its usual level after an
    improvement is no rise. For binary classifiers with a
    score, windows of inference events give the expected accuracy (confidence-based, calibrated on the
    reference when it had labels) while labels are missing.

    Findings mean degradation only: accuracy below its lower bound, MAE above its upper bound, the error
    stream's detectors firing upwards. The same tests in the other direction are improvements, kept in
    ``improvements`` (shown by ``driftline status``), never findings. Classes are compared by
    ``class_key`` (``True``, ``1`` and ``"1"`` are one class)."""

    def __init__(self, params: PerformanceParams, reference: dict | None = None) -> None:
        self.params = params
        reference = reference or {}
        self.task: str | None = reference.get("task")
        self.positive: object = reference.get("positive", 1)
        # without a reference, the classes seen (labels, text predictions) name the positive (positive_class)
        self.classes: list[str] | None = None if "positive" in reference else []
        self.labels = 0                         # joined labels seen: the clock of label-driven episodes
        self.improvements: list[dict] = []      # the last improvements seen (never alerts)
        self.baseline: dict | None = {k: v for k, v in reference.items()
                                      if isinstance(v, float) and k != "count"} or None
        self.source = "reference" if self.baseline else "production"
        self.calibration = ScoreCalibration.from_dict(reference["calibration"]) if reference.get("calibration") \
            else ScoreCalibration()
        monitor = reference.get("error_monitor")
        self.error_monitor = NumericDriftMonitor.from_dict(monitor) if monitor else None
        # windows of lists, the saved form: saving copies the outer list only (a version is saved every batch)
        self._window: list[list] = []           # [label, prediction, score, event_id]
        self._early: list[dict] = []            # metrics of the first windows (Scenario II baseline)
        self.history: list[dict] = []           # the last realized windows
        self._estimate_window: list[list] = []  # [probability, predicted positive]
        self._estimate_early: list[float] = []
        self.estimated: float | None = None
        self.estimates: list[tuple[int, float]] = []  # (position, estimate) of each window the last call closed
        self.estimate_baseline: float | None = self.baseline.get("accuracy") if self.baseline else None

    # -- realized --------------------------------------------------------------------------------------------
    def on_labels(self, joined: list) -> list[PerformanceFinding]:
        if not joined:
            return []
        if self.task is None:
            self.task = _task_of(joined[0].label)
        if self.task == "classification":
            self._learn_classes([j.label for j in joined])
        if self.error_monitor is None:
            # the baseline stays after a firing: re-baselined on an improvement, a return to the usual error
            # would read as a rise
            self.error_monitor = NumericDriftMonitor(**self.params.error_monitor, rebaseline=False)
        errors = np.array([self._error(j) for j in joined], dtype=np.float64)
        findings = []
        for f in self.error_monitor.update(errors):
            evidence = {"stream": "errors", "shift_sigma": f.shift_sigma,
                        "direction": "worse" if f.direction > 0 else "better"}
            if f.direction > 0:  # the error rose: worse
                findings.append(PerformanceFinding(f.detector, f.statistic, f.threshold, f.position, evidence))
            else:
                self._improved(f"error_{f.detector}", f.statistic, f.threshold, joined[f.position].event_id,
                               evidence)
        if self.error_monitor.last_shifted_direction > 0:  # the error is still up, firing or not
            findings += [PerformanceFinding(d, 0.0, 0.0, self.error_monitor.last_shifted_position,
                                            {"stream": "errors"}, hold=True) for d in self.error_monitor.detectors]
        self.labels += len(joined)
        for i, j in enumerate(joined):
            self._window.append([j.label, j.prediction, j.score, j.event_id])
            if len(self._window) >= self.params.window:
                finding = self._close_window(i)
                if finding:
                    findings.append(finding)
        return findings

    def _learn_classes(self, values: list) -> None:
        if self.classes is None or len(self.classes) > 2:
            return  # fixed by the reference, or not a binary classifier
        self.classes = sorted(set(self.classes) | {class_key(v) for v in values if v is not None})[:3]
        key = positive_class(self.classes)
        self.positive = 1 if key in (None, "1") else key  # by class_key, True, 1 and "1" are one class

    def _error(self, joined) -> float:
        if self.task == "regression":
            try:
                return abs(float(joined.prediction) - float(joined.label))
            except (TypeError, ValueError):
                return math.nan
        return 0.0 if same_class(joined.prediction, joined.label) else 1.0

    def metrics(self, window: list[list]) -> dict[str, float]:
        labels = [w[0] for w in window]
        predictions = [w[1] for w in window]
        if self.task == "regression":
            return regression_metrics(labels, predictions)
        scores = [w[2] for w in window]
        numeric = all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores)
        return classification_metrics(labels, predictions, scores if numeric else None, positive=self.positive)

    def _close_window(self, position: int) -> PerformanceFinding | None:
        window, self._window = self._window, []
        m = self.metrics(window)
        m["labels"] = len(window)
        self.history = (self.history + [m])[-10:]
        key = "mae" if self.task == "regression" else "accuracy"
        if self.baseline is None:
            self._early.append(m)
            if len(self._early) >= self.params.baseline_windows:
                self.baseline = {k: float(np.mean([e[k] for e in self._early])) for k in self._early[0]
                                 if k != "labels"}
            return None
        bound = self.bound(key, len(window))
        worse = m[key] > bound if key == "mae" else m[key] < bound
        if not worse:
            better = self.bound(key, len(window), better=True)
            if (m[key] < better) if key == "mae" else (m[key] > better):
                self._improved(f"realized_{key}", m[key], better, window[-1][3], {"baseline": self.baseline[key]})
            halfway = (self.baseline[key] + bound) / 2
            if (m[key] > halfway) if key == "mae" else (m[key] < halfway):
                return PerformanceFinding(f"realized_{key}", m[key], halfway, position, {}, hold=True)
            return None
        return PerformanceFinding(f"realized_{key}", m[key], bound, position,
                                  {"metrics": m, "baseline": self.baseline, "baseline_from": self.source,
                                   "decision": "statistic > threshold" if key == "mae" else "statistic < threshold",
                                   "last_window_event_id": window[-1][3]})

    def bound(self, key: str, n: int, better: bool = False) -> float:
        """Past this bound a window of ``n`` labels is worse than the baseline (``better``: better than it)."""
        base = self.baseline[key]
        if key == "mae":
            margin = base * self.params.min_drop + 3 * base / math.sqrt(max(n, 1))
            return base - margin if better else base + margin
        return self._accuracy_bound(base, n, better)

    def _accuracy_bound(self, base: float, n: int, better: bool = False) -> float:
        """An accuracy this far below ``base`` is a drop (this far above it, a gain): the larger of the
        minimum drop and 3 standard errors."""
        spread = max(self.params.min_drop, 3 * math.sqrt(max(base * (1 - base), 1e-6) / max(n, 1)))
        return base + spread if better else base - spread

    def _improved(self, detector: str, statistic: float, threshold: float, event_id: str, evidence: dict) -> None:
        seen = {"detector": detector, "statistic": statistic, "threshold": threshold, "event_id": event_id}
        self.improvements = (self.improvements + [{**seen, **evidence}])[-_KEEP_IMPROVEMENTS:]

    # -- estimated -------------------------------------------------------------------------------------------
    def on_predictions(self, events: list[dict]) -> list[PerformanceFinding]:
        if self.task == "regression":
            return []
        self.estimates = []
        scores = list(map(_SCORE, events))
        if not set(map(type, scores)) <= _NUMBERS:  # events without a score are left out one by one, wherever cut
            scored = [i for i, s in enumerate(scores) if type(s) in (int, float)]
            findings = self.on_predictions([events[i] for i in scored]) if scored else []
            self.estimates = [(scored[p], v) for p, v in self.estimates]
            return [dataclasses.replace(f, position=scored[f.position]) for f in findings]
        probabilities = self.calibration.apply(np.asarray(scores, dtype=np.float64))
        predictions = list(map(_PREDICTION, events))
        wanted = class_key(self.positive)
        if set(map(type, predictions)) <= _NUMBERS and wanted == "1":
            positive = (np.asarray(predictions, dtype=np.float64) == 1.0).tolist()  # class_key, vectorised
        else:
            self._learn_classes(predictions)
            wanted = class_key(self.positive)
            positive = [class_key(p) == wanted for p in predictions]
        size = self.params.window
        held = self._estimate_window  # fewer than ``size``: what the last window left
        if len(held) + len(events) < size:  # no window closes
            held.extend(map(list, zip(probabilities.tolist(), positive)))
            return []
        # the held values and these, cut into whole windows as arrays (one Python pair per event held, not per event)
        held_probabilities, held_positive = zip(*held) if held else ((), ())
        probabilities = np.concatenate([np.array(held_probabilities, dtype=np.float64), probabilities])
        positive = np.concatenate([np.array(held_positive, dtype=bool), np.array(positive, dtype=bool)])
        closed = len(probabilities) // size
        self._estimate_window = list(map(list, zip(probabilities[closed * size:].tolist(),
                                                   positive[closed * size:].tolist())))
        findings = []
        for k in range(closed):
            window = slice(k * size, (k + 1) * size)
            estimate = expected_accuracy(probabilities[window], positive[window])
            self.estimated = estimate
            position = len(events) - 1 - (len(probabilities) - (k + 1) * size)  # the event that closed the window
            self.estimates.append((position, estimate))
            if self.estimate_baseline is None:
                self._estimate_early.append(estimate)
                if len(self._estimate_early) >= self.params.baseline_windows:
                    self.estimate_baseline = float(np.mean(self._estimate_early))
                continue
            base = self.estimate_baseline
            bound = self._accuracy_bound(base, size)
            method = "cbpe" if self.calibration.fitted else "confidence"
            better = self._accuracy_bound(base, size, better=True)
            position = max(position, 0)
            if estimate > better:
                self._improved(f"{method}_accuracy", estimate, better, events[position]["event_id"],
                               {"baseline": base})
            if bound <= estimate < (base + bound) / 2:
                findings.append(PerformanceFinding(f"{method}_accuracy", estimate, (base + bound) / 2, position, {},
                                                   hold=True))
            if estimate < bound:
                findings.append(PerformanceFinding(f"{method}_accuracy", estimate, bound, position,
                                                   {"estimated_accuracy": estimate, "baseline": base,
                                                    "decision": "statistic < threshold", "window_events": size}))
        return findings

    # -- reading and saving ----------------------------------------------------------------------------------
    @property
    def has_evidence(self) -> bool:
        """Can performance speak for this version: a window of production labels measured, or an estimate from
        calibrated scores that actually arrive? A labelled reference alone says nothing about production, nor do
        a few labels short of a window (a stray label must not silence the drift rule for good)."""
        return bool(self.history) or (self.calibration.fitted and self.estimated is not None)

    def figures(self) -> dict:
        """The latest performance with its reference values, as a retrain trigger reports them."""
        out = {}
        if self.history:
            last = self.history[-1]
            out["realized"] = {k: {"value": last[k], "reference": (self.baseline or {}).get(k)}
                               for k in ("accuracy", "f1", "roc_auc", "mae", "rmse") if k in last}
            out["realized_labels"] = last["labels"]
            out["baseline_from"] = self.source
        if self.estimated is not None:
            out["estimated"] = {"accuracy": {"value": self.estimated, "reference": self.estimate_baseline}}
        return out

    def readings(self) -> list[tuple[str, str, float, float | None, float | None]]:
        """(metric, kind, value, bound, improvement bound) for the metrics gauges: past ``bound`` the metric
        is worse than its baseline (an alert), past the improvement bound better (shown, never alerted)."""
        out = []
        if self.history:
            last = self.history[-1]
            for key in ("accuracy", "f1", "roc_auc", "mae", "rmse"):
                if key in last:
                    bounded = self.baseline and key in ("accuracy", "mae")
                    bounds = (self.bound(key, last["labels"]), self.bound(key, last["labels"], better=True)) \
                        if bounded else (None, None)
                    out.append((key, "realized", last[key], *bounds))
        if self.estimated is not None:
            base, size = self.estimate_baseline, self.params.window
            bounds = (None, None) if base is None else (self._accuracy_bound(base, size),
                                                        self._accuracy_bound(base, size, better=True))
            out.append(("accuracy", "estimated", self.estimated, *bounds))
        return out

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "params": self.params.to_dict(), "labels": self.labels, "improvements": self.improvements, "task": self.task,
                "positive": self.positive, "classes": self.classes,
                "baseline": self.baseline, "source": self.source, "calibration": self.calibration.to_dict(),
                "error_monitor": self.error_monitor.to_dict() if self.error_monitor else None,
                "window": list(self._window), "early": self._early, "history": self.history,
                "estimate_window": list(self._estimate_window),
                "estimate_early": self._estimate_early, "estimated": self.estimated,
                "estimate_baseline": self.estimate_baseline}

    @classmethod
    def from_dict(cls, state: dict, params: PerformanceParams) -> PerformanceTracker:
        """The saved tracker; ``params`` are the configured parameters (``restored`` says which win)."""
        if state.get("format") not in _READABLE:
            raise StateVersionError(f"unknown performance state format {state.get('format')!r}")
        t = cls(restored(PerformanceParams, state.get("params"), params))
        # format 1 had neither (it counted no labels and kept no improvements): start both afresh
        t.labels, t.improvements = int(state.get("labels", 0)), list(state.get("improvements", []))
        t.task, t.positive, t.baseline, t.source = state["task"], state["positive"], state["baseline"], state["source"]
        t.classes = state.get("classes")  # saved before classes were kept: the positive class stays as saved
        t.calibration = ScoreCalibration.from_dict(state["calibration"])
        t.error_monitor = NumericDriftMonitor.from_dict(state["error_monitor"]) if state["error_monitor"] else None
        if t.error_monitor is not None:
            t.error_monitor.rebaseline = False  # saved before the baseline was kept: keep it from now on
        t._window = [list(w) for w in state["window"]]
        t._early, t.history = state["early"], state["history"]
        t._estimate_window = [list(w) for w in state["estimate_window"]]
        t._estimate_early, t.estimated = state["estimate_early"], state["estimated"]
        t.estimate_baseline = state["estimate_baseline"]
        return t
