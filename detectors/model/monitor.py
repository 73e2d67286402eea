"""Everything Driftline knows about one model version, updated one message at a time."""

from __future__ import annotations

import dataclasses
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
from detectors.model.performance_tracker import ERROR, PerformanceTracker
from detectors.model.retrain_policy import RetrainPolicy
from stream_processors.settings import Settings

__all__ = ["Finding", "ModelState", "PREDICTION", "SCORE", "ValueOutOfRange", "alert_id"]

_FORMAT = "driftline.model_state/4"
_OLD_FORMAT = "driftline.model_state/3"  # loaded and migrated: its last_alert_at become open episodes
_KEEP_CLOSED = 20
_HOLD_ALPHA = 0.01  # a window this unlikely under the reference holds its open episode open (1 in 100 by chance)
_NUMBER_TYPES = (int, float)
NUMERIC, CATEGORICAL, BOOLEAN = "numeric", "categorical", "boolean"
PREDICTION = "__prediction__"
SCORE = "__score__"


def alert_id(alert_type: str, model: str, model_version: str, feature: str | None, detector: str,
             last_event_id: str, status: str = "firing", episode_id: str = "") -> str:
    """Deterministic: the same decision always has the same id. A resolution's id also covers its status
    and episode, so it never equals its firing's."""
    parts = [alert_type, model, model_version, feature or "", detector, last_event_id]
    if status != "firing":
        parts += [status, episode_id]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


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
    status: str = "firing"   # firing | resolved
    episode_id: str = ""     # the id of the firing that opened the episode
    started_at_event: str = ""

    @property
    def id(self) -> str:
        return alert_id(self.alert_type, self.model, self.model_version, self.feature, self.detector,
                        self.last_event_id, self.status, self.episode_id)


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


def _numeric_column(column: list) -> tuple[np.ndarray, list[int]]:
    """Floats with NaN for missing, and the positions of values of another type."""
    clean = [v if type(v) in _NUMBER_TYPES else None for v in column]
    mismatched = [i for i, (v, c) in enumerate(zip(column, clean)) if c is None and v is not None]
    values = np.array(clean, dtype=np.float64)
    if np.abs(values).max(initial=0.0) > MAX_ABS_NUMBER:  # checked here, vectorised, rather than per event
        raise ValueOutOfRange(f"a number beyond ±{MAX_ABS_NUMBER:g}")
    return values, mismatched


def _categorical_column(column: list, kind: str) -> tuple[list, list[int]]:
    wanted = bool if kind == BOOLEAN else str
    clean = [v if type(v) is wanted else None for v in column]
    mismatched = [i for i, (v, c) in enumerate(zip(column, clean)) if c is None and v is not None]
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
        self.episodes: dict[str, dict] = {}      # open episodes by key (see _episode_key)
        self.closed_episodes: list[dict] = []    # the last closed ones, oldest first
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
        online: list[tuple[int, Finding | str]] = []   # (position in this message, finding or held key)
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
                    online.append((firing.position, self._online_finding(name, firing, ids)))
                if self.monitors[name].last_shifted_position is not None:
                    online.append((self.monitors[name].last_shifted_position, name))  # still drifted
            else:
                values, mismatched = _categorical_column(column, kind)
                self.categorical[name].update(values)
            windowed += [(name, f) for f in self.window_tests[name].update(values)]
            if kind != NUMERIC:
                online += self._category_findings(name, values, ids)
            if mismatched:
                self.mismatches[name] = self.mismatches.get(name, 0) + len(mismatched)
                online.append((mismatched[0], self._mismatch_finding(name, len(mismatched), ids[mismatched[0]],
                                                                     self.events + mismatched[0] + 1)))
        candidates = online + self._significant(windowed, ids)
        for f in self.performance.on_predictions(events):
            at = self.events + f.position + 1
            candidates.append((f.position, self._performance_finding(f, ids[f.position], None, at)))
        findings = self._decide_in_order("events", self.events, candidates, ids)
        self.events += n
        self.last_event_id = ids[-1]
        self.last_event_time = max(e["timestamp"] for e in events)
        return findings + self.policy.decide(self, findings)

    def apply_labels(self, joined: list) -> list[Finding]:
        """Fold labels joined to this version's predictions into its performance."""
        if not joined:
            return []
        before = self.performance.labels
        ids = [j.event_id for j in joined]
        candidates = []
        for f in self.performance.on_labels(joined):
            feature = ERROR if f.evidence.get("stream") == "errors" else None
            candidates.append((f.position, self._performance_finding(f, ids[f.position], feature, self.events)))
        findings = self._decide_in_order("labels", before, candidates, ids)
        return findings + self.policy.decide(self, findings)

    def _performance_finding(self, f, last_event_id: str, feature: str | None, events_seen: int) -> Finding | str:
        """The finding, or for a hold the key of the episode it holds open."""
        if f.hold:
            return f"performance:{feature}:{f.detector}"
        return Finding("performance", self.model, self.model_version, feature, f.detector, f.statistic,
                       f.threshold, last_event_id, events_seen, self.scenario, "critical", dict(f.evidence))

    def _decide_in_order(self, clock: str, before: int, candidates: list[tuple[int, Finding]],
                         ids: list[str]) -> list[Finding]:
        """Run the episodes of one message's findings event by event, so that where an episode fires and
        resolves depends on the event sequence only, never on how it was cut into messages. ``candidates``
        are (position in the message, finding), or (position, episode key) for a hold: the condition is still
        there without a firing, so the episode's quiet stretch starts again; ``ids`` are the message's event
        (or label) ids."""
        out = []
        for position, finding in sorted(candidates, key=lambda c: c[0]):
            at = before + position + 1
            out += self._resolve(clock, before, at, ids)  # a quiet stretch that ended before this firing
            if isinstance(finding, str):
                if finding in self.episodes:
                    self.episodes[finding]["last_at"] = max(self.episodes[finding]["last_at"], at)
            else:
                out += self._episode(finding, at)
        return out + self._resolve(clock, before, before + len(ids), ids)

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

    def _category_findings(self, name: str, values: list, ids: list[str]) -> list[tuple[int, Finding | str]]:
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
                out.append((firing.position,
                            Finding(**{**finding.__dict__, "evidence": {**finding.evidence, "category": category}})))
            if monitor.last_shifted_position is not None:
                out.append((monitor.last_shifted_position, name))  # the category's share is still off
        return out

    # -- decisions -------------------------------------------------------------------------------------------
    @staticmethod
    def _episode_key(finding: Finding) -> str:
        """Drift: one episode per feature, whichever detector fired; other types: per feature and detector."""
        return finding.feature if finding.alert_type == "drift" else \
            f"{finding.alert_type}:{finding.feature}:{finding.detector}"

    @staticmethod
    def _clock_of(finding: Finding) -> str:
        """Label-driven performance episodes count joined labels; everything else counts inference events."""
        labelled = finding.alert_type == "performance" and (finding.feature == ERROR
                                                            or finding.detector.startswith("realized_"))
        return "labels" if labelled else "events"

    def _episode(self, finding: Finding, at: int) -> list[Finding]:
        """Episodes, as Alertmanager has them: the first firing opens one and is published (``firing``);
        while it is open, firings of the same key extend it silently; ``cooldown_events`` events (or joined
        labels) without one close it, with a ``resolved`` message (``_resolve``)."""
        key = self._episode_key(finding)
        out = []
        episode = self.episodes.get(key)
        if episode is not None and at - episode["last_at"] >= self._settings.cooldown_events:
            out += self._close(key, finding.last_event_id, episode["last_at"] + self._settings.cooldown_events)
            episode = None
        if episode is not None:
            episode["last_at"] = max(episode["last_at"], at)  # a window verdict may name an earlier event
            episode["firings"] += 1
            return out
        opened = dataclasses.replace(finding, started_at_event=finding.last_event_id)
        opened = dataclasses.replace(opened, episode_id=opened.id)
        self.episodes[key] = {"episode_id": opened.episode_id, "type": finding.alert_type,
                              "feature": finding.feature, "detector": finding.detector,
                              "severity": finding.severity, "started_at_event": finding.last_event_id,
                              "started_at": at, "last_at": at, "firings": 1, "clock": self._clock_of(finding)}
        return out + [opened]

    def _resolve(self, clock: str, before: int, now: int, ids: list[str]) -> list[Finding]:
        """Close the open episodes on ``clock`` whose quiet stretch ended by ``now``; ``ids`` are the event
        ids of the positions ``before + 1 .. now`` on that clock."""
        quiet = self._settings.cooldown_events
        out = []
        for key in sorted(k for k, e in self.episodes.items()
                          if e["clock"] == clock and now - e["last_at"] >= quiet):
            ended = self.episodes[key]["last_at"] + quiet
            out += self._close(key, ids[min(max(ended - before - 1, 0), len(ids) - 1)], ended)
        return out

    def _close(self, key: str, last_event_id: str, ended: int) -> list[Finding]:
        episode = self.episodes.pop(key)
        episode.update(ended_at_event=last_event_id, ended_at=ended)
        self.closed_episodes = (self.closed_episodes + [episode])[-_KEEP_CLOSED:]
        if not episode["episode_id"]:
            return []  # migrated from a format that kept no episode ids: nothing to resolve downstream
        unit = "labels" if episode["clock"] == "labels" else "events"
        quiet = float(ended - episode["last_at"])
        return [Finding(episode["type"], self.model, self.model_version, episode["feature"], episode["detector"],
                        quiet, float(self._settings.cooldown_events), last_event_id, self.events, self.scenario,
                        episode["severity"],
                        {"decision": f"{unit} without a firing or its condition >= threshold",
                         "firings": episode["firings"], "quiet_unit": unit, "position": -1},
                        status="resolved", episode_id=episode["episode_id"],
                        started_at_event=episode["started_at_event"])]

    def _online_finding(self, name: str, firing, ids: list[str]) -> Finding:
        severity = "critical" if abs(firing.shift_sigma) >= 1.0 else "warning"
        return Finding("drift", self.model, self.model_version, name, firing.detector, firing.statistic,
                       firing.threshold, ids[firing.position], firing.events_seen, self.scenario, severity,
                       {"shift_sigma": firing.shift_sigma, "decision": "statistic > threshold",
                        "position": firing.position})

    def _mismatch_finding(self, name: str, count: int, first_id: str, events_seen: int) -> Finding:
        """Named after the first mismatched value of the message: where it is does not depend on batching."""
        return Finding("data_quality", self.model, self.model_version, name, "type_mismatch", float(count), 0.0,
                       first_id, events_seen, self.scenario, "critical",
                       {"expected_kind": self.kinds[name], "mismatched_values": count,
                        "decision": "statistic > threshold", "position": -1})

    def tests_per_window(self) -> int:
        """Distribution, missing rate, and range or unseen categories: three per ready column."""
        return 3 * sum(1 for t in self.window_tests.values() if t.ready)

    def _significant(self, windowed: list, ids: list[str]) -> list[tuple[int, Finding | str]]:
        """Model-level control: a window test alerts only below alpha / (tests per window of this model); below
        ``_HOLD_ALPHA``, it holds an open episode of its key open."""
        if not windowed:
            return []
        threshold = self._settings.window_alpha / max(self.tests_per_window(), 1)
        out = []
        for name, f in windowed:
            if f.p_value >= threshold:
                if f.p_value < _HOLD_ALPHA:  # not significant across the model, and still not normal
                    out.append((f.position, name if f.alert_type == "drift" else f"{f.alert_type}:{name}:{f.test}"))
                continue
            severity = "critical" if f.alert_type == "drift" and f.evidence.get("psi", 0) >= 0.25 else "warning"
            finding = Finding(f.alert_type, self.model, self.model_version, name, f.test, f.p_value, threshold,
                              ids[f.position], self.events + f.position + 1, self.scenario, severity,
                              {**f.evidence, "test_statistic": f.statistic, "decision": "p_value < threshold",
                               "position": f.position})
            out.append((f.position, finding))
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
        """Per column: is a drift episode open?"""
        return {name: self.episodes.get(name, {}).get("type") == "drift"
                for name in self.kinds if name in self.window_tests}

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
            episode = self.episodes.get(name)
            if episode is not None and episode["type"] == "drift":
                entry["drifting_since_event"] = episode["started_at_event"] or None
            features[name] = entry
        prediction = features.pop(PREDICTION, None)
        score = features.pop(SCORE, None)
        perf = self.performance
        performance = {"task": perf.task, "baseline": perf.baseline, "baseline_from": perf.source,
                       "windows": perf.history, "estimated_accuracy": perf.estimated,
                       "estimated_baseline": perf.estimate_baseline, "improvements": perf.improvements}
        episodes = {"open": [{"key": k, **e} for k, e in sorted(self.episodes.items())],
                    "closed": list(self.closed_episodes)}
        return {"model": self.model, "model_version": self.model_version, "scenario": self.scenario,
                "performance": performance, "events": self.events, "last_event_id": self.last_event_id, "last_event_time": self.last_event_time,
                "untracked_features": self.untracked_features, "prediction": prediction, "score": score,
                "features": features, "episodes": episodes}

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
            "episodes": self.episodes,
            "closed_episodes": self.closed_episodes,
            "untracked_features": self.untracked_features,
            "early_missing": self.early_missing,
            "performance": self.performance.to_dict(),
            "policy": self.policy.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict, settings: Settings, profile: ReferenceProfile | None = None) -> ModelState:
        if state.get("format") not in (_FORMAT, _OLD_FORMAT):
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
        if state["format"] == _OLD_FORMAT:
            ms.episodes, ms.closed_episodes = _migrated_episodes(state["last_alert_at"]), []
        else:
            ms.episodes = {k: dict(v) for k, v in state["episodes"].items()}
            ms.closed_episodes = [dict(e) for e in state["closed_episodes"]]
        ms.untracked_features = int(state["untracked_features"])
        ms.early_missing = {k: int(v) for k, v in state["early_missing"].items()}
        ms.performance = PerformanceTracker.from_dict(state["performance"], settings)
        ms.policy = RetrainPolicy.from_dict(state["policy"], settings)
        return ms


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


def _num(x: float) -> float | None:
    return None if x != x else x
