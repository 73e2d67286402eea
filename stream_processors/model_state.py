"""Everything Driftline knows about one model version, updated one message at a time."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from detectors import CategoryFrequencies, NumericSummary, QuantileSketch, StateVersionError
from detectors.feature_monitor import NumericDriftMonitor
from detectors.profile import ReferenceProfile
from detectors.frequencies import category_key
from detectors.window_test import FeatureWindowTest
from producers.events import MAX_ABS_NUMBER
from stream_processors.performance_tracker import ERROR, PerformanceTracker
from stream_processors.retrain_policy import RetrainPolicy
from stream_processors.settings import Settings

__all__ = ["Finding", "ModelState", "PREDICTION", "SCORE", "ValueOutOfRange", "alert_id"]

_FORMAT = "driftline.model_state/3"
_NUMBER_TYPES = (int, float)
NUMERIC, CATEGORICAL, BOOLEAN = "numeric", "categorical", "boolean"
PREDICTION = "__prediction__"
SCORE = "__score__"


def alert_id(alert_type: str, model: str, model_version: str, feature: str | None, detector: str,
             last_event_id: str) -> str:
    """Deterministic: the same decision always has the same id."""
    text = "\x1f".join([alert_type, model, model_version, feature or "", detector, last_event_id])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Finding:
    """A decision that survived the model-level threshold and the cooldown: the makings of an alert."""

    alert_type: str          # drift | data_quality | performance | retrain
    model: str
    model_version: str
    feature: str | None
    detector: str
    statistic: float
    threshold: float
    last_event_id: str
    events_seen: int
    scenario: str
    severity: str
    evidence: dict = field(default_factory=dict)


def _kind_of(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, _NUMBER_TYPES):
        return NUMERIC
    return CATEGORICAL


class ValueOutOfRange(ValueError):
    """A number beyond ``MAX_ABS_NUMBER`` reached a statistic (the worker dead-letters its event)."""


def _numeric_column(column: list) -> tuple[np.ndarray, int]:
    """Floats with NaN for missing, and how many values were of another type."""
    clean = [v if type(v) in _NUMBER_TYPES else None for v in column]
    mismatched = sum(1 for v, c in zip(column, clean) if c is None and v is not None)
    values = np.array(clean, dtype=np.float64)
    if np.abs(values).max(initial=0.0) > MAX_ABS_NUMBER:  # checked here, vectorised, rather than per event
        raise ValueOutOfRange(f"a number beyond ±{MAX_ABS_NUMBER:g}")
    return values, mismatched


def _categorical_column(column: list, kind: str) -> tuple[list, int]:
    wanted = bool if kind == BOOLEAN else str
    clean = [v if type(v) is wanted else None for v in column]
    mismatched = sum(1 for v, c in zip(column, clean) if c is None and v is not None)
    return clean, mismatched


class ModelState:
    """Statistics, detectors and window tests of one model version.

    Scenario I (a reference profile is registered for the version): each
    profiled column is compared with the reference from its first event.
    Scenario II (no profile): each column makes its own baseline from its
    first events. Feature kinds are fixed by the profile, else by the first
    non-null value; later values of another kind are counted as type
    mismatches (a data-quality alert) and treated as missing. Numeric
    predictions and scores are monitored like features (``__prediction__``,
    ``__score__``).
    """

    def __init__(self, model: str, model_version: str, settings: Settings,
                 profile: ReferenceProfile | None = None) -> None:
        self.model = model
        self.model_version = model_version
        self._settings = settings
        self._profile = profile
        self.scenario = "reference" if profile else "no_reference"
        self.events = 0
        self.last_event_id: str | None = None
        self.last_event_time: float | None = None
        self.kinds: dict[str, str] = {}
        self.numeric: dict[str, NumericSummary] = {}
        self.sketches: dict[str, QuantileSketch] = {}
        self.categorical: dict[str, CategoryFrequencies] = {}
        self.monitors: dict[str, NumericDriftMonitor] = {}
        self.window_tests: dict[str, FeatureWindowTest] = {}
        self.category_monitors: dict[str, dict[str, NumericDriftMonitor]] = {}
        self.mismatches: dict[str, int] = {}
        self.last_alert_at: dict[str, int] = {}  # episode key -> event count of its last firing
        self.untracked_features = 0
        self.early_missing: dict[str, int] = {}
        self.performance = PerformanceTracker(settings, profile.performance if profile else None)
        self.policy = RetrainPolicy(settings)
        if profile:
            for name, entry in profile.columns.items():
                self.kinds[name] = entry["kind"]

    def adopt_profile(self, profile: ReferenceProfile) -> None:
        """Switch to Scenario I when a profile is registered after this version's first events.

        Statistics stay; the detectors and window tests of profiled columns are replaced by the reference's.
        """
        self._profile = profile
        self.scenario = "reference"
        if profile.performance and self.performance.source != "reference":
            self.performance = PerformanceTracker(self._settings, profile.performance)
        for name, entry in profile.columns.items():
            if self.kinds.setdefault(name, entry["kind"]) != entry["kind"]:
                continue  # production disagrees with the profile on the kind: keep what production does
            if name in self.window_tests:
                self.window_tests[name] = profile.window_test(name)
            if name in self.monitors and entry.get("monitor"):
                self.monitors[name] = profile.monitor(name)
            self.category_monitors.pop(name, None)  # rebuilt from the profile's at the next event

    # -- applying events -------------------------------------------------------------------------------------
    def apply(self, events: list[dict]) -> list[Finding]:
        """Fold the valid events of one message (all of this model version) into the state."""
        if not events:
            return []
        n = len(events)
        ids = [e["event_id"] for e in events]
        columns = {PREDICTION: [e["prediction"] for e in events]}
        scores = [e["score"] for e in events]
        if SCORE in self.kinds or any(type(s) in _NUMBER_TYPES for s in scores):
            columns[SCORE] = [s if type(s) in _NUMBER_TYPES else None for s in scores]
        feature_dicts = [e["features"] for e in events]
        for name in self._feature_names(feature_dicts):
            columns[name] = [f.get(name) for f in feature_dicts]
        online: list[Finding] = []
        windowed: list[tuple[str, object]] = []
        for name, column in columns.items():
            kind = self.kinds.get(name) or next((k for k in map(_kind_of, column) if k), None)
            if kind is None:  # only nulls so far: the kind is not known yet
                self.early_missing[name] = self.early_missing.get(name, 0) + n
                continue
            self.kinds[name] = kind
            self._ensure(name, kind)
            if kind == NUMERIC:
                values, mismatched = _numeric_column(column)
                self.numeric[name].update(values)
                self.sketches[name].update(values)
                for firing in self.monitors[name].update(values):
                    online.append(self._online_finding(name, firing, ids))
            else:
                values, mismatched = _categorical_column(column, kind)
                self.categorical[name].update(values)
            windowed += [(name, f) for f in self.window_tests[name].update(values)]
            if kind != NUMERIC:
                online += self._category_findings(name, values, ids)
            if mismatched:
                self.mismatches[name] = self.mismatches.get(name, 0) + mismatched
                online.append(self._mismatch_finding(name, mismatched, ids[-1]))
        findings = [f for f in online if f is not None and self._cooled_down(f, self.events + n)]
        findings += self._significant(windowed, ids)
        for f in self.performance.on_predictions(events):
            findings += self._performance_finding(f, ids[f.position], None)
        self.events += n
        self.last_event_id = ids[-1]
        self.last_event_time = max(e["timestamp"] for e in events)
        return findings + self.policy.decide(self, findings)

    def apply_labels(self, joined: list) -> list[Finding]:
        """Fold labels joined to this version's predictions into its performance."""
        findings = []
        for f in self.performance.on_labels(joined):
            feature = ERROR if f.evidence.get("stream") == "errors" else None
            findings += self._performance_finding(f, joined[f.position].event_id, feature)
        return findings + self.policy.decide(self, findings)

    def _performance_finding(self, f, last_event_id: str, feature: str | None) -> list[Finding]:
        finding = Finding("performance", self.model, self.model_version, feature, f.detector, f.statistic,
                          f.threshold, last_event_id, self.events, self.scenario, "critical", dict(f.evidence))
        return [finding] if self._cooled_down(finding, self.events) else []

    def _feature_names(self, feature_dicts: list[dict]) -> list[str]:
        names = [k for k in self.kinds if k not in (PREDICTION, SCORE)] + list(self.early_missing)
        known = set(names)
        for name in set().union(*feature_dicts) - known:
            if len(names) < self._settings.max_features:
                names.append(name)
            else:
                self.untracked_features += 1
        return names

    def _ensure(self, name: str, kind: str) -> None:
        if name in self.window_tests:
            return
        s = self._settings
        early = self.early_missing.pop(name, 0)
        reference = self._profile.window_test(name) if self._profile else None
        test_kind = NUMERIC if kind == NUMERIC else CATEGORICAL
        self.window_tests[name] = reference or FeatureWindowTest(
            test_kind, window_size=s.window_size, edge_events=s.edge_events, baseline_windows=s.baseline_windows)
        if kind == NUMERIC:
            self.numeric[name] = NumericSummary()
            self.numeric[name].update(np.full(early, np.nan))
            self.sketches[name] = QuantileSketch()
            reference_monitor = self._profile.monitor(name) if self._profile else None
            self.monitors[name] = reference_monitor or NumericDriftMonitor(**s.monitor_params())
        else:
            self.categorical[name] = CategoryFrequencies()
            self.categorical[name].update([None] * early)

    def _category_findings(self, name: str, values: list, ids: list[str]) -> list[Finding]:
        """CUSUM/ADWIN on the 0/1 indicator of each top category, once the top categories are known."""
        monitors = self.category_monitors.get(name)
        if monitors is None:
            categories = self.window_tests[name].categories[: self._settings.category_monitors]
            if not categories:
                return []  # the window test is still learning which categories there are
            reference = self._profile.category_monitors(name) if self._profile else {}
            monitors = self.category_monitors[name] = {
                c: reference.get(c) or NumericDriftMonitor(**self._settings.category_monitor_params())
                for c in categories}
        keys = np.array([None if v is None else category_key(v) for v in values], dtype=object)
        present = keys != None  # noqa: E711  (elementwise)
        out = []
        for category, monitor in monitors.items():
            indicator = np.where(present, (keys == category).astype(np.float64), np.nan)
            for firing in monitor.update(indicator):
                finding = self._online_finding(name, firing, ids)
                out.append(Finding(**{**finding.__dict__, "evidence": {**finding.evidence, "category": category}}))
        return out

    # -- decisions -------------------------------------------------------------------------------------------
    def _cooled_down(self, finding: Finding, at: int) -> bool:
        """One alert per episode: a firing within ``cooldown_events`` of the previous one (alerted or
        not) extends the episode instead of alerting again."""
        key = finding.feature if finding.alert_type == "drift" else \
            f"{finding.alert_type}:{finding.feature}:{finding.detector}"
        last = self.last_alert_at.get(key)
        self.last_alert_at[key] = at
        return last is None or at - last >= self._settings.cooldown_events

    def _online_finding(self, name: str, firing, ids: list[str]) -> Finding:
        severity = "critical" if abs(firing.shift_sigma) >= 1.0 else "warning"
        return Finding("drift", self.model, self.model_version, name, firing.detector, firing.statistic,
                       firing.threshold, ids[firing.position], firing.events_seen, self.scenario, severity,
                       {"shift_sigma": firing.shift_sigma, "decision": "statistic > threshold",
                        "position": firing.position})

    def _mismatch_finding(self, name: str, count: int, last_id: str) -> Finding:
        return Finding("data_quality", self.model, self.model_version, name, "type_mismatch", float(count), 0.0,
                       last_id, self.events, self.scenario, "critical",
                       {"expected_kind": self.kinds[name], "mismatched_values": count,
                        "decision": "statistic > threshold", "position": -1})

    def tests_per_window(self) -> int:
        """Distribution, missing rate, and range or unseen categories: three per ready column."""
        return 3 * sum(1 for t in self.window_tests.values() if t.ready)

    def _significant(self, windowed: list, ids: list[str]) -> list[Finding]:
        """Model-level control: a window test alerts only below alpha / (tests per window of this model)."""
        if not windowed:
            return []
        threshold = self._settings.window_alpha / max(self.tests_per_window(), 1)
        out = []
        for name, f in windowed:
            if f.p_value >= threshold:
                continue
            severity = "critical" if f.alert_type == "drift" and f.evidence.get("psi", 0) >= 0.25 else "warning"
            finding = Finding(f.alert_type, self.model, self.model_version, name, f.test, f.p_value, threshold,
                              ids[f.position], self.events + f.position + 1, self.scenario, severity,
                              {**f.evidence, "test_statistic": f.statistic, "decision": "p_value < threshold",
                               "position": f.position})
            if self._cooled_down(finding, self.events + f.position + 1):
                out.append(finding)
        return out

    # -- reading ---------------------------------------------------------------------------------------------
    def readings(self) -> list[tuple[str, str, float, float]]:
        """(feature, detector, statistic, threshold) now, higher meaning more drifted: the CUSUM sum and its
        threshold; for the window test, -log10 of the last p-value and of the model-level threshold."""
        out = []
        for name, monitor in self.monitors.items():
            if monitor.monitoring and "cusum" in monitor.detectors:
                out.append((name, "cusum", monitor.cusum_statistic, monitor.cusum_threshold))
        threshold = self._settings.window_alpha / max(self.tests_per_window(), 1)
        for name, test in self.window_tests.items():
            if test.last_p_value is not None:
                out.append((name, "chi_square", -math.log10(max(test.last_p_value, 1e-300)), -math.log10(threshold)))
        return out

    def drifting(self) -> dict[str, bool]:
        """Per column: is it in a drift episode (a drift firing within the last cooldown_events events)?"""
        return {name: name in self.last_alert_at and self.events - self.last_alert_at[name]
                < self._settings.cooldown_events for name in self.kinds if name in self.window_tests}

    def describe(self) -> dict:
        """The statistics as ``driftline status`` shows them."""
        features = {}
        for name in sorted(self.kinds):
            kind = self.kinds[name]
            if kind == NUMERIC and name in self.numeric:
                s, q = self.numeric[name], self.sketches[name]
                entry = {"kind": kind, "count": s.count, "missing": s.missing, "mean": _num(s.mean),
                         "std": _num(s.std), "min": _num(s.min), "max": _num(s.max),
                         "p50": _num(q.quantile(0.5)), "p90": _num(q.quantile(0.9)), "p99": _num(q.quantile(0.99))}
            elif name in self.categorical:
                f = self.categorical[name]
                entry = {"kind": kind, "count": f.count, "missing": f.missing, "frequencies": f.frequencies}
            else:
                continue  # profiled but not seen yet
            entry["type_mismatches"] = self.mismatches.get(name, 0)
            if name in self.last_alert_at:
                entry["last_drift_at_event"] = self.last_alert_at[name]
            features[name] = entry
        prediction = features.pop(PREDICTION, None)
        score = features.pop(SCORE, None)
        perf = self.performance
        performance = {"task": perf.task, "baseline": perf.baseline, "baseline_from": perf.source,
                       "windows": perf.history, "estimated_accuracy": perf.estimated,
                       "estimated_baseline": perf.estimate_baseline}
        return {"model": self.model, "model_version": self.model_version, "scenario": self.scenario,
                "performance": performance, "events": self.events, "last_event_id": self.last_event_id, "last_event_time": self.last_event_time,
                "untracked_features": self.untracked_features, "prediction": prediction, "score": score,
                "features": features}

    # -- saved form ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": _FORMAT,
            "model": self.model,
            "model_version": self.model_version,
            "scenario": self.scenario,
            "events": self.events,
            "last_event_id": self.last_event_id,
            "last_event_time": self.last_event_time,
            "kinds": self.kinds,
            "numeric": {k: v.to_dict() for k, v in self.numeric.items()},
            "sketches": {k: v.to_dict() for k, v in self.sketches.items()},
            "categorical": {k: v.to_dict() for k, v in self.categorical.items()},
            "monitors": {k: v.to_dict() for k, v in self.monitors.items()},
            "window_tests": {k: v.to_dict() for k, v in self.window_tests.items()},
            "category_monitors": {k: {c: m.to_dict() for c, m in v.items()} for k, v in self.category_monitors.items()},
            "mismatches": self.mismatches,
            "last_alert_at": self.last_alert_at,
            "untracked_features": self.untracked_features,
            "early_missing": self.early_missing,
            "performance": self.performance.to_dict(),
            "policy": self.policy.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict, settings: Settings, profile: ReferenceProfile | None = None) -> ModelState:
        if state.get("format") != _FORMAT:
            raise StateVersionError(f"unknown model state format {state.get('format')!r}")
        ms = cls(state["model"], state["model_version"], settings)
        ms._profile = profile if state["scenario"] == "reference" else None
        ms.scenario = state["scenario"]
        ms.events = int(state["events"])
        ms.last_event_id = state["last_event_id"]
        ms.last_event_time = state["last_event_time"]
        ms.kinds = dict(state["kinds"])
        ms.numeric = {k: NumericSummary.from_dict(v) for k, v in state["numeric"].items()}
        ms.sketches = {k: QuantileSketch.from_dict(v) for k, v in state["sketches"].items()}
        ms.categorical = {k: CategoryFrequencies.from_dict(v) for k, v in state["categorical"].items()}
        ms.monitors = {k: NumericDriftMonitor.from_dict(v) for k, v in state["monitors"].items()}
        ms.window_tests = {k: FeatureWindowTest.from_dict(v) for k, v in state["window_tests"].items()}
        ms.category_monitors = {k: {c: NumericDriftMonitor.from_dict(m) for c, m in v.items()}
                                for k, v in state["category_monitors"].items()}
        ms.mismatches = {k: int(v) for k, v in state["mismatches"].items()}
        ms.last_alert_at = {k: int(v) for k, v in state["last_alert_at"].items()}
        ms.untracked_features = int(state["untracked_features"])
        ms.early_missing = {k: int(v) for k, v in state["early_missing"].items()}
        ms.performance = PerformanceTracker.from_dict(state["performance"], settings)
        ms.policy = RetrainPolicy.from_dict(state["policy"], settings)
        return ms


def _num(x: float) -> float | None:
    return None if x != x else x
