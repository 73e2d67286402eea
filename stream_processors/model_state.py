"""Everything Driftline knows about one model version, updated a batch at a time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors import CategoryFrequencies, NumericDriftMonitor, NumericSummary, QuantileSketch, StateVersionError
from stream_processors.settings import Settings

__all__ = ["DriftFinding", "ModelState"]

_FORMAT = "driftline.model_state/1"
_NUMBER_TYPES = (int, float)
NUMERIC, CATEGORICAL, BOOLEAN = "numeric", "categorical", "boolean"
PREDICTION = "__prediction__"


@dataclass(frozen=True)
class DriftFinding:
    """A detector firing that survived the cooldown: the makings of an alert."""

    model: str
    model_version: str
    feature: str
    detector: str
    statistic: float
    threshold: float
    last_event_id: str
    events_seen: int
    shift_sigma: float


def _kind_of(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, _NUMBER_TYPES):
        return NUMERIC
    return CATEGORICAL


def _numeric_column(column: list) -> tuple[np.ndarray, int]:
    """Floats with NaN for missing, and how many values were of another type."""
    clean = [v if type(v) in _NUMBER_TYPES else None for v in column]
    mismatched = sum(1 for v, c in zip(column, clean) if c is None and v is not None)
    return np.array(clean, dtype=np.float64), mismatched


def _categorical_column(column: list, kind: str) -> tuple[list, int]:
    wanted = bool if kind == BOOLEAN else str
    clean = [v if type(v) is wanted else None for v in column]
    mismatched = sum(1 for v, c in zip(column, clean) if c is None and v is not None)
    return clean, mismatched


class ModelState:
    """Statistics and detectors of one model version.

    Feature kinds are fixed by the first non-null value seen; later values of
    another kind are counted as type mismatches and treated as missing. At
    most ``max_features`` features are tracked; further names are counted in
    ``untracked_features``. Numeric predictions are monitored like a feature
    named ``__prediction__``.
    """

    def __init__(self, model: str, model_version: str, settings: Settings) -> None:
        self.model = model
        self.model_version = model_version
        self._settings = settings
        self.events = 0
        self.last_event_id: str | None = None
        self.last_event_time: float | None = None
        self.kinds: dict[str, str] = {}
        self.numeric: dict[str, NumericSummary] = {}
        self.sketches: dict[str, QuantileSketch] = {}
        self.categorical: dict[str, CategoryFrequencies] = {}
        self.monitors: dict[str, NumericDriftMonitor] = {}
        self.mismatches: dict[str, int] = {}
        self.last_alert_at: dict[str, int] = {}
        self.untracked_features = 0
        self.early_missing: dict[str, int] = {}

    def apply(self, events: list[dict]) -> list[DriftFinding]:
        """Fold a batch of valid events (all of this model version) into the state."""
        if not events:
            return []
        n = len(events)
        ids = [e["event_id"] for e in events]
        columns = {PREDICTION: [e["prediction"] for e in events]}
        feature_dicts = [e["features"] for e in events]
        for name in self._feature_names(feature_dicts):
            columns[name] = [f.get(name) for f in feature_dicts]
        findings: list[DriftFinding] = []
        for name, column in columns.items():
            kind = self.kinds.get(name) or next((k for k in map(_kind_of, column) if k), None)
            if kind is None:  # only nulls so far: the kind is not known yet
                self.early_missing[name] = self.early_missing.get(name, 0) + n
                continue
            self.kinds[name] = kind
            if kind == NUMERIC:
                values, mismatched = _numeric_column(column)
                self._ensure(name, kind).update(values)
                self.sketches[name].update(values)
                for firing in self.monitors[name].update(values):
                    finding = self._finding(name, firing, ids)
                    if finding:
                        findings.append(finding)
            else:
                values, mismatched = _categorical_column(column, kind)
                self._ensure(name, kind).update(values)
            if mismatched:
                self.mismatches[name] = self.mismatches.get(name, 0) + mismatched
        self.events += n
        self.last_event_id = ids[-1]
        self.last_event_time = max(e["timestamp"] for e in events)
        return findings

    def _feature_names(self, feature_dicts: list[dict]) -> list[str]:
        names = [k for k in self.kinds if k != PREDICTION] + list(self.early_missing)
        known = set(names)
        for name in set().union(*feature_dicts) - known:
            if len(names) < self._settings.max_features:
                names.append(name)
            else:
                self.untracked_features += 1
        return names

    def _ensure(self, name: str, kind: str):
        s = self._settings
        if kind == NUMERIC:
            if name not in self.numeric:
                self.numeric[name] = summary = NumericSummary()
                summary.update(np.full(self.early_missing.pop(name, 0), np.nan))
                self.sketches[name] = QuantileSketch()
                self.monitors[name] = NumericDriftMonitor(
                    baseline_size=s.baseline_size, block_size=s.block_size, ph_threshold=s.ph_threshold,
                    ph_delta=s.ph_delta, adwin_delta=s.adwin_delta)
            return self.numeric[name]
        if name not in self.categorical:
            self.categorical[name] = freq = CategoryFrequencies()
            freq.update([None] * self.early_missing.pop(name, 0))
        return self.categorical[name]

    def _finding(self, name: str, firing, ids: list[str]) -> DriftFinding | None:
        at = self.events + firing.position + 1  # this model's event count at the firing
        last = self.last_alert_at.get(name)
        if last is not None and at - last < self._settings.cooldown_events:
            return None
        self.last_alert_at[name] = at
        return DriftFinding(self.model, self.model_version, name, firing.detector, firing.statistic,
                            firing.threshold, ids[firing.position], firing.events_seen, firing.shift_sigma)

    def describe(self) -> dict:
        """The statistics as ``driftline status`` shows them."""
        features = {}
        for name in sorted(self.kinds):
            kind = self.kinds[name]
            if kind == NUMERIC:
                s, q = self.numeric[name], self.sketches[name]
                entry = {"kind": kind, "count": s.count, "missing": s.missing, "mean": _num(s.mean),
                         "std": _num(s.std), "min": _num(s.min), "max": _num(s.max),
                         "p50": _num(q.quantile(0.5)), "p90": _num(q.quantile(0.9)), "p99": _num(q.quantile(0.99))}
            else:
                f = self.categorical[name]
                entry = {"kind": kind, "count": f.count, "missing": f.missing, "frequencies": f.frequencies}
            entry["type_mismatches"] = self.mismatches.get(name, 0)
            if name in self.last_alert_at:
                entry["last_alert_at_event"] = self.last_alert_at[name]
            features[name] = entry
        prediction = features.pop(PREDICTION, None)
        return {"model": self.model, "model_version": self.model_version, "events": self.events,
                "last_event_id": self.last_event_id, "last_event_time": self.last_event_time,
                "untracked_features": self.untracked_features, "prediction": prediction, "features": features}

    def to_dict(self) -> dict:
        return {
            "format": _FORMAT,
            "model": self.model,
            "model_version": self.model_version,
            "events": self.events,
            "last_event_id": self.last_event_id,
            "last_event_time": self.last_event_time,
            "kinds": self.kinds,
            "numeric": {k: v.to_dict() for k, v in self.numeric.items()},
            "sketches": {k: v.to_dict() for k, v in self.sketches.items()},
            "categorical": {k: v.to_dict() for k, v in self.categorical.items()},
            "monitors": {k: v.to_dict() for k, v in self.monitors.items()},
            "mismatches": self.mismatches,
            "last_alert_at": self.last_alert_at,
            "untracked_features": self.untracked_features,
            "early_missing": self.early_missing,
        }

    @classmethod
    def from_dict(cls, state: dict, settings: Settings) -> ModelState:
        if state.get("format") != _FORMAT:
            raise StateVersionError(f"unknown model state format {state.get('format')!r}")
        ms = cls(state["model"], state["model_version"], settings)
        ms.events = int(state["events"])
        ms.last_event_id = state["last_event_id"]
        ms.last_event_time = state["last_event_time"]
        ms.kinds = dict(state["kinds"])
        ms.numeric = {k: NumericSummary.from_dict(v) for k, v in state["numeric"].items()}
        ms.sketches = {k: QuantileSketch.from_dict(v) for k, v in state["sketches"].items()}
        ms.categorical = {k: CategoryFrequencies.from_dict(v) for k, v in state["categorical"].items()}
        ms.monitors = {k: NumericDriftMonitor.from_dict(v) for k, v in state["monitors"].items()}
        ms.mismatches = {k: int(v) for k, v in state["mismatches"].items()}
        ms.last_alert_at = {k: int(v) for k, v in state["last_alert_at"].items()}
        ms.untracked_features = int(state["untracked_features"])
        ms.early_missing = {k: int(v) for k, v in state["early_missing"].items()}
        return ms


def _num(x: float) -> float | None:
    return None if x != x else x
