"""What a report shows, as plain frozen values: the renderer's whole input.

Everything here is built from what a worker keeps (its model state, the
reference profile, the alerts on the control topic); nothing here reads it.
A series is a tuple of (event index, value) points, as ``Timeline.points()``
gives them, oriented so that a value above its threshold is the bad side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["AlertRow", "Decision", "DecisionReason", "Distribution", "Episode", "FeatureSection", "MetricFigure",
           "OutputSection", "PerformanceSeries", "ReportData", "Series"]

Series = tuple[tuple[int, float], ...]

VERDICTS = ("continue", "retrain")


@dataclass(frozen=True)
class Distribution:
    """Reference and production counts on the same bins.

    Numeric: ``edges`` holds one more value than each count vector (the
    reference profile's bin edges; production values counted on them with
    ``numpy.histogram``). Categorical: ``categories`` names each count.
    ``reference`` is None without a reference profile.
    """

    production: tuple[float, ...]
    reference: tuple[float, ...] | None = None
    edges: tuple[float, ...] | None = None
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if (self.edges is None) == (self.categories is None):
            raise ValueError("a distribution has either bin edges (numeric) or categories, not both")
        bins = len(self.edges) - 1 if self.edges is not None else len(self.categories)
        if len(self.production) != bins or (self.reference is not None and len(self.reference) != bins):
            raise ValueError(f"counts must have {bins} values, one per bin or category")

    @property
    def kind(self) -> str:
        return "numeric" if self.edges is not None else "categorical"


@dataclass(frozen=True)
class Episode:
    """A drift or data-quality episode: where it began and, once resolved, where it ended (event indices)."""

    started_at: int
    ended_at: int | None = None
    started_at_event: str | None = None
    ended_at_event: str | None = None
    detector: str = ""
    severity: str = "warning"


@dataclass(frozen=True)
class FeatureSection:
    """One input feature: its distributions, its drift statistic over time, its episodes, its data quality."""

    name: str
    kind: str
    distribution: Distribution
    statistic: Series
    threshold: float
    statistic_name: str = "drift statistic"
    episodes: tuple[Episode, ...] = ()
    missing_rate: float | None = None
    reference_missing_rate: float | None = None
    unseen_categories: tuple[tuple[str, int], ...] = ()
    missing: Series = ()  # the missing rate over time (mean per bucket)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"{self.name!r}: the threshold must be positive and finite, got {self.threshold}")

    @property
    def drift_ratio(self) -> float:
        """The peak of the statistic over the period divided by its threshold (0 without points).

        Above 1 the feature crossed its threshold in the period. The peak, not
        the latest value, because detectors restart after each firing: the
        latest value of a feature that drifted hard can be back near zero.
        Features are ordered by this ratio, highest first.
        """
        return max((v for _, v in self.statistic), default=0.0) / self.threshold

    @property
    def open_episode(self) -> Episode | None:
        return next((e for e in self.episodes if e.ended_at is None), None)


@dataclass(frozen=True)
class OutputSection:
    """The model's prediction or score: reference vs production distribution."""

    name: str
    distribution: Distribution


@dataclass(frozen=True)
class MetricFigure:
    """A latest performance figure and its reference value, as in a retrain trigger's ``evidence.performance``."""

    kind: str  # realized | estimated
    metric: str
    value: float
    reference: float | None = None


@dataclass(frozen=True)
class DecisionReason:
    """An alert behind the decision (a trigger's ``evidence.reasons`` entry)."""

    alert_id: str
    type: str
    detector: str
    statistic: float
    threshold: float
    feature: str | None = None


@dataclass(frozen=True)
class Decision:
    """``continue`` or ``retrain``, why, and since when."""

    verdict: str
    explanation: str
    rule: str | None = None
    since_event: str | None = None
    since_time: float | None = None
    reasons: tuple[DecisionReason, ...] = ()
    figures: tuple[MetricFigure, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @classmethod
    def from_trigger(cls, trigger: dict) -> Decision:
        """The decision a retrain trigger (as published on the control topic) stands for."""
        evidence = trigger.get("evidence") or {}
        reasons = tuple(
            DecisionReason(alert_id=str(r.get("id", "")), type=str(r.get("type", "")), detector=str(r["detector"]),
                           statistic=float(r["statistic"]), threshold=float(r["threshold"]), feature=r.get("feature"))
            for r in evidence.get("reasons", []))
        figures = tuple(
            MetricFigure(kind=kind, metric=metric, value=float(v["value"]),
                         reference=None if v.get("reference") is None else float(v["reference"]))
            for kind, metrics in (evidence.get("performance") or {}).items() if isinstance(metrics, dict)
            for metric, v in metrics.items() if isinstance(v, dict) and v.get("value") is not None)
        return cls(verdict="retrain", explanation=str(evidence.get("explanation", "")), rule=evidence.get("rule"),
                   since_event=evidence.get("last_event_id"), since_time=trigger.get("created_at"),
                   reasons=reasons, figures=figures)


@dataclass(frozen=True)
class PerformanceSeries:
    """One metric over time: realized (as labels arrived) and estimated, with the reference level and alert bound."""

    metric: str
    realized: Series = ()
    estimated: Series = ()
    reference: float | None = None
    bound: float | None = None
    higher_is_better: bool = True


@dataclass(frozen=True)
class AlertRow:
    """An alert or retrain trigger of the period, as published on the control topic."""

    id: str
    status: str
    type: str
    severity: str
    detector: str
    feature: str | None
    statistic: float
    threshold: float
    last_event_id: str | None
    created_at: float | None = None
    started_at_event: str | None = None

    @classmethod
    def from_alert(cls, alert: object) -> AlertRow:
        """The row of one control-topic message; ``ValueError`` if it is not an object or a field it shows
        has the wrong type (anyone who can write to the topic can send one). Numbers may be non-finite and
        ``created_at`` out of range: the renderer shows those as "?"."""
        if not isinstance(alert, dict):
            raise ValueError(f"not an object but {type(alert).__name__}")
        evidence = alert.get("evidence")
        if evidence is None:
            evidence = {}
        elif not isinstance(evidence, dict):
            raise ValueError(f"evidence is {type(evidence).__name__}, not an object")
        return cls(id=_text(alert, "id", required=True), status=_text(alert, "status") or "firing",
                   type=_text(alert, "type", required=True), severity=_text(alert, "severity") or "",
                   detector=_text(alert, "detector") or "", feature=_text(alert, "feature"),
                   statistic=_number(alert, "statistic", required=True),
                   threshold=_number(alert, "threshold", required=True),
                   last_event_id=_text(evidence, "last_event_id"), created_at=_number(alert, "created_at"),
                   started_at_event=_text(alert, "started_at_event"))


def _text(record: dict, key: str, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} is {'missing' if value is None else type(value).__name__}, not a string")
    return value


def _number(record: dict, key: str, required: bool = False) -> float | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} is {'missing' if value is None else type(value).__name__}, not a number")
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float: as good as infinite, shown as "?"
        return math.inf if value > 0 else -math.inf


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows, for one model version over a period of events."""

    model: str
    model_version: str
    scenario: str
    events: int
    generated_at: float
    decision: Decision
    features: tuple[FeatureSection, ...]
    outputs: tuple[OutputSection, ...] = ()
    performance: tuple[PerformanceSeries, ...] = ()
    alerts: tuple[AlertRow, ...] = ()
    period: tuple[int, int] | None = None  # first and last event index shown (``--last N``)
    skipped_alerts: int = 0  # control-topic messages of this model that ``AlertRow.from_alert`` refused

    def features_by_drift(self) -> tuple[FeatureSection, ...]:
        """Features ordered by ``drift_ratio``, highest first; ties by name."""
        return tuple(sorted(self.features, key=lambda f: (-f.drift_ratio, f.name)))

    def last(self, n: int) -> ReportData:
        """The report of the last ``n`` events (``--last N``): series and episodes cut to them.

        A bucket is kept when its last event is in the period. Alerts are kept
        as given: pass those of the period.
        """
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        first = max(self.events - n, 0)

        def cut(series: Series) -> Series:
            return tuple(p for p in series if p[0] >= first)

        features = tuple(replace(f, statistic=cut(f.statistic), missing=cut(f.missing),
                                 episodes=tuple(e for e in f.episodes if e.ended_at is None or e.ended_at >= first))
                         for f in self.features)
        performance = tuple(replace(p, realized=cut(p.realized), estimated=cut(p.estimated))
                            for p in self.performance)
        return replace(self, features=features, performance=performance, period=(first, max(self.events - 1, first)))
