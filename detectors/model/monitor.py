"""Everything Driftline knows about one model version, updated a run of its events at a time."""

from __future__ import annotations

import dataclasses
from operator import itemgetter

import numpy as np

from detectors import CategoryFrequencies, NumericSummary, QuantileSketch, StateVersionError
from detectors.feature_monitor import NumericDriftMonitor
from detectors.frequencies import category_keys
from detectors.model import presentation
from detectors.model.columns import (CATEGORICAL, NUMBER_TYPES, NUMERIC, PREDICTION, SCORE, ValueOutOfRange,
                                     categorical_column, kind_of, numeric_column)
from detectors.model.episodes import AlertPolicy
from detectors.model.params import MonitorParams
from detectors.model.performance_tracker import ERROR, PerformanceTracker
from detectors.model.report_series import ReportSeries
from detectors.model.retrain_policy import RetrainPolicy
from detectors.model.verdicts import Finding, alert_id
from detectors.profile import ReferenceProfile
from detectors.window_comparison import FeatureWindowTest

__all__ = ["Finding", "ModelMonitor", "PREDICTION", "SCORE", "ValueOutOfRange", "alert_id"]

_FORMAT = "driftline.model_state/7"
# 6 depended on how events were cut into calls (its moments and open blocks load as they are and carry on by
# the event sequence); 5 kept no report series (they start empty), 4 saved no parameters either: the
# configured ones apply
_READABLE = (_FORMAT, "driftline.model_state/6", "driftline.model_state/5", "driftline.model_state/4")
_EVENT_ID, _PREDICTION, _SCORE, _FEATURES, _TIMESTAMP = (
    itemgetter(k) for k in ("event_id", "prediction", "score", "features", "timestamp"))
_OLD_FORMAT = "driftline.model_state/3"  # loaded and migrated: its last_alert_at become open episodes


class ModelMonitor(AlertPolicy):
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

    def __init__(self, model: str, model_version: str, params: MonitorParams,
                 profile: ReferenceProfile | None = None) -> None:
        self.model = model
        self.model_version = model_version
        self.params = params
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
        self.episodes: dict[str, dict] = {}      # open episodes by key (see _episode_key)
        self.closed_episodes: list[dict] = []    # the last closed ones, oldest first
        self.untracked_features = 0
        self.early_missing: dict[str, int] = {}
        self.performance = PerformanceTracker(params.performance, profile.performance if profile else None)
        self.policy = RetrainPolicy(params.policy)
        self.series = ReportSeries()
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
            self.performance = PerformanceTracker(self.params.performance, profile.performance)
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
        """Fold valid consecutive events of this model version (one message or many) into the state.

        Statistics and findings are taken at event positions, never at the end of a call: ``apply(a)`` then
        ``apply(b)`` leaves the same saved form, byte for byte, and returns the same findings as
        ``apply(a + b)``. A column starts at the first event that carries it (its kind at the first value
        that has one); untracked features are counted per event that carries them. Not yet so: the retrain
        policy still brings its verdict, its cooldown and its waiting performance episodes up to date at the
        end of a call (a drift counts from its own event).
        """
        if not events:
            return []
        n = len(events)
        ids = list(map(_EVENT_ID, events))
        columns = {PREDICTION: (0, list(map(_PREDICTION, events)))}
        scores = list(map(_SCORE, events))
        first_score = 0 if SCORE in self.kinds else next(
            (i for i, s in enumerate(scores) if type(s) in NUMBER_TYPES), None)
        if first_score is not None:
            columns[SCORE] = (first_score, [s if type(s) in NUMBER_TYPES else None for s in scores[first_score:]])
        feature_dicts = list(map(_FEATURES, events))
        columns.update(_feature_columns(feature_dicts, self._feature_starts(feature_dicts)))
        online: list[tuple[int, Finding | str]] = []   # (position in this call, finding or held key)
        windowed: list[tuple[str, object]] = []
        for name, (start, column) in columns.items():
            kind = self.kinds.get(name)
            if kind is None:
                first = next((i for i, v in enumerate(column) if kind_of(v)), len(column))
                self.early_missing[name] = self.early_missing.get(name, 0) + first
                if first == len(column):  # only nulls so far: the kind is not known yet
                    continue
                kind, start, column = kind_of(column[first]), start + first, column[first:]
            self.kinds[name] = kind
            self._ensure(name, kind)
            self._apply_column(name, kind, start, column, ids, online, windowed)
        candidates = online + self._significant(windowed, ids)
        for f in self.performance.on_predictions(events):
            at = self.events + f.position + 1
            candidates.append((f.position, self._performance_finding(f, ids[f.position], None, at)))
        for position, estimate in self.performance.estimates:
            self.series.record_estimated(self.events + position, estimate)
        findings = self._decide_in_order("events", self.events, candidates, ids)
        before = self.events
        self.events += n
        self.last_event_id = ids[-1]
        latest = max(map(_TIMESTAMP, events))
        self.last_event_time = latest if self.last_event_time is None else max(self.last_event_time, latest)
        if findings:
            where = {event_id: before + i + 1 for i, event_id in enumerate(ids)}
            return findings + self.policy.decide(self, findings, {f.id: where[f.last_event_id] for f in findings})
        return findings + self.policy.decide(self, findings)

    def _apply_column(self, name: str, kind: str, start: int, column: list, ids: list[str],
                      online: list, windowed: list) -> None:
        """One column's values from event ``start`` of the call on; positions in ``online`` and ``windowed``
        are positions in the call."""
        if kind == NUMERIC:
            values, mismatched = numeric_column(column, self.params.max_abs_number)
            self.numeric[name].update(values)
            self.sketches[name].update(values)
            monitor = self.monitors[name]
            for firing in monitor.update(values):
                firing = dataclasses.replace(firing, position=firing.position + start)
                online.append((firing.position, self._online_finding(name, firing, ids)))
            online += [(start + p, name) for p in monitor.shifted_positions]  # still drifted
        else:
            values, mismatched = categorical_column(column, kind)
            self.categorical[name].update(values)
        test = self.window_tests[name]
        tested = [dataclasses.replace(f, position=f.position + start) for f in test.update(values)]
        if kind == NUMERIC and test.binned_from is not None:  # counted from the event at which bins were fixed
            self.series.record_counts(name, test.binned_counts)
        for f in tested:
            self.series.record_window(name, self.events + f.position, f.test, f.statistic, f.p_value)
        windowed += [(name, f) for f in tested]
        if kind != NUMERIC:
            online += self._category_findings(name, values, ids, start, test.binned_from or 0)
        for p in mismatched:  # each one where it is, with the column's count so far
            self.mismatches[name] = self.mismatches.get(name, 0) + 1
            at = start + p
            online.append((at, self._mismatch_finding(name, self.mismatches[name], ids[at], self.events + at + 1)))

    def apply_labels(self, joined: list) -> list[Finding]:
        """Fold labels joined to this version's predictions into its performance."""
        if not joined:
            return []
        before = self.performance.labels
        last_window = self.performance.history[-1] if self.performance.history else None
        ids = [j.event_id for j in joined]
        candidates = []
        for f in self.performance.on_labels(joined):
            feature = ERROR if f.evidence.get("stream") == "errors" else None
            candidates.append((f.position, self._performance_finding(f, ids[f.position], feature, self.events)))
        history = self.performance.history
        closed = history[next((i + 1 for i in range(len(history) - 1, -1, -1) if history[i] is last_window), 0):]
        metric = "mae" if self.performance.task == "regression" else "accuracy"
        for window in closed:  # every window these labels closed, at the events seen when they were joined
            if metric in window:
                self.series.record_realized(max(self.events - 1, 0), metric, float(window[metric]))
        findings = self._decide_in_order("labels", before, candidates, ids)
        return findings + self.policy.decide(self, findings)

    def _feature_starts(self, feature_dicts: list[dict]) -> dict[str, int]:
        """The followed features and the position of the call at which each starts (0 for known ones); new
        ones in the order they appear, up to ``max_features``."""
        starts = {k: 0 for k in self.kinds if k not in (PREDICTION, SCORE)}
        starts.update((k, 0) for k in self.early_missing)
        if set().union(*feature_dicts) <= starts.keys():  # no new feature in this call (the common case)
            return starts
        for i, features in enumerate(feature_dicts):
            if features.keys() <= starts.keys():
                continue
            for name in features:
                if name in starts:
                    continue
                if len(starts) < self.params.max_features:
                    starts[name] = i
                else:
                    self.untracked_features += 1
        return starts

    def _ensure(self, name: str, kind: str) -> None:
        if name in self.window_tests:
            return
        s = self.params
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
            self.monitors[name] = reference_monitor or NumericDriftMonitor(**s.monitor)
        else:
            self.categorical[name] = CategoryFrequencies()
            self.categorical[name].update([None] * early)

    def _category_findings(self, name: str, values: list, ids: list[str], start: int,
                           before_bins: int) -> list[tuple[int, Finding | str]]:
        """CUSUM/ADWIN on the 0/1 indicator of each top category, from the event at which the window test
        fixed the top categories (``before_bins`` values into ``values``, which start at ``start``)."""
        monitors = self.category_monitors.get(name)
        if monitors is None:
            start, values = start + before_bins, values[before_bins:]
            categories = self.window_tests[name].categories[: self.params.category_monitors]
            if not categories:
                return []  # the window test is still learning which categories there are
            reference = self._profile.category_monitors(name) if self._profile else {}
            monitors = self.category_monitors[name] = {
                c: reference.get(c) or NumericDriftMonitor(**self.params.category_monitor)
                for c in categories}
        keys = np.array(category_keys(values), dtype=object)
        present = keys != None  # noqa: E711  (elementwise)
        out = []
        for category, monitor in monitors.items():
            indicator = np.where(present, (keys == category).astype(np.float64), np.nan)
            for firing in monitor.update(indicator):
                firing = dataclasses.replace(firing, position=firing.position + start)
                finding = self._online_finding(name, firing, ids)
                out.append((firing.position,
                            Finding(**{**finding.__dict__, "evidence": {**finding.evidence, "category": category}})))
            out += [(start + p, name) for p in monitor.shifted_positions]  # the category's share is still off
        return out

    # -- reading -------------------------------------------------------------------------------------------
    def readings(self) -> list[tuple[str, str, float, float]]:
        return presentation.readings(self)

    def drifting(self) -> dict[str, bool]:
        return presentation.drifting(self)

    def describe(self) -> dict:
        return presentation.describe(self)

    # -- saved form ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Columns by name: the order in which they appeared depends on how events were cut into calls."""
        return {
            "format": _FORMAT,
            "params": self.params.to_dict(),
            "model": self.model,
            "model_version": self.model_version,
            "scenario": self.scenario,
            "events": self.events,
            "last_event_id": self.last_event_id,
            "last_event_time": self.last_event_time,
            "kinds": dict(sorted(self.kinds.items())),
            "numeric": {k: v.to_dict() for k, v in sorted(self.numeric.items())},
            "sketches": {k: v.to_dict() for k, v in sorted(self.sketches.items())},
            "categorical": {k: v.to_dict() for k, v in sorted(self.categorical.items())},
            "monitors": {k: v.to_dict() for k, v in sorted(self.monitors.items())},
            "window_tests": {k: v.to_dict() for k, v in sorted(self.window_tests.items())},
            "category_monitors": {k: {c: m.to_dict() for c, m in v.items()}
                                  for k, v in sorted(self.category_monitors.items())},
            "mismatches": dict(sorted(self.mismatches.items())),
            "episodes": self.episodes,
            "closed_episodes": self.closed_episodes,
            "untracked_features": self.untracked_features,
            "early_missing": dict(sorted(self.early_missing.items())),
            "performance": self.performance.to_dict(),
            "policy": self.policy.to_dict(),
            "report_series": self.series.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict, params: MonitorParams, profile: ReferenceProfile | None = None) -> ModelMonitor:
        """The saved monitor; ``params`` are the configured parameters (``detectors.model.params`` says which
        of them the saved ones override)."""
        if state.get("format") not in (*_READABLE, _OLD_FORMAT):
            raise StateVersionError(f"unknown model state format {state.get('format')!r}")
        params = params.restored(state.get("params"))
        ms = cls(state["model"], state["model_version"], params)
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
        if state["format"] == _OLD_FORMAT:
            ms.episodes, ms.closed_episodes = _migrated_episodes(state["last_alert_at"]), []
        else:
            ms.episodes = {k: dict(v) for k, v in state["episodes"].items()}
            ms.closed_episodes = [dict(e) for e in state["closed_episodes"]]
        ms.untracked_features = int(state["untracked_features"])
        ms.early_missing = {k: int(v) for k, v in state["early_missing"].items()}
        ms.performance = PerformanceTracker.from_dict(state["performance"], params.performance)
        ms.policy = RetrainPolicy.from_dict(state["policy"], params.policy)
        if "report_series" in state:  # formats before 6 kept none: the series start at the next event
            ms.series = ReportSeries.from_dict(state["report_series"])
        return ms


def _feature_columns(feature_dicts: list[dict], starts: dict[str, int]) -> dict[str, tuple[int, list]]:
    """Each followed feature's values (None where an event lacks it) from its start on. A feature that every
    event carries (the common case) is cut at C speed."""
    columns = {}
    for name, start in starts.items():
        if start == 0:
            try:
                columns[name] = (0, list(map(itemgetter(name), feature_dicts)))
                continue
            except KeyError:  # some event lacks it
                pass
        columns[name] = (start, [f.get(name) for f in feature_dicts[start:]])
    return columns


def _migrated_episodes(last_alert_at: dict) -> dict[str, dict]:
    """Format 3 kept, per episode key, the event count of its last firing and nothing else: each becomes an
    open episode on the events clock without an id, so it still holds back repeats for ``cooldown_events``
    and then closes without a ``resolved`` message (no firing message carried its id)."""
    out = {}
    for key, at in last_alert_at.items():
        alert_type, feature, detector = "drift", key, ""
        if key.startswith(("performance:", "data_quality:")):
            alert_type, rest = key.split(":", 1)
            feature, detector = rest.rsplit(":", 1)
            feature = None if feature == "None" else feature
        out[key] = {"episode_id": "", "type": alert_type, "feature": feature, "detector": detector,
                    "severity": "", "started_at_event": "", "started_at": int(at), "last_at": int(at),
                    "firings": 1, "clock": "events"}
    return out

