"""The compact series a model version keeps for its report: bounded, whatever the number of events."""

from __future__ import annotations

import math

import numpy as np

from detectors.online import StateVersionError
from detectors.timeline import Timeline

__all__ = ["ReportSeries"]

_FORMAT = "driftline.report_series/1"


class ReportSeries:
    """Per column: the window test's drift statistic over time (``max`` per bucket, -log10 of its p-value),
    the missing rate per window (``mean``), and the production counts on the window test's bins (numeric
    columns; categorical ones have their frequencies already). Per model: realized performance per window of
    labels (``min`` for accuracy, ``max`` for MAE, so a bucket shows its worst window) and the estimate from
    scores (``mean``).

    Points are recorded per completed window of the window test (``window_size`` events) or of labels, so the
    series depend on the event sequence only, not on how events were grouped into messages. Each series holds
    at most ``capacity`` buckets (``Timeline``); the counts are one integer per bin.
    """

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        self.statistic: dict[str, Timeline] = {}
        self.missing: dict[str, Timeline] = {}
        self.counts: dict[str, list[int]] = {}
        self.metric: str | None = None
        self.realized: Timeline | None = None
        self.estimated = Timeline(capacity, "mean")

    def record_window(self, column: str, index: int, detector: str, statistic: float, p_value: float) -> None:
        """One completed window of ``column``'s window test, ending at event ``index`` (0-based)."""
        if detector == "chi_square":
            series = self.statistic.setdefault(column, Timeline(self.capacity, "max"))
            series.update(index, -math.log10(max(p_value, 1e-300)))
        elif detector == "missing_rate" and math.isfinite(statistic):
            self.missing.setdefault(column, Timeline(self.capacity, "mean")).update(index, statistic)

    def record_counts(self, column: str, counts: np.ndarray | None) -> None:
        if counts is None:
            return
        kept = self.counts.get(column)
        if kept is None or len(kept) != len(counts):
            self.counts[column] = [int(c) for c in counts]
        else:
            self.counts[column] = [a + int(b) for a, b in zip(kept, counts)]

    def record_realized(self, index: int, metric: str, value: float) -> None:
        if self.realized is None or self.metric != metric:
            self.metric = metric
            self.realized = Timeline(self.capacity, "max" if metric == "mae" else "min")
        if math.isfinite(value):
            self.realized.update(index, value)

    def record_estimated(self, index: int, value: float) -> None:
        if math.isfinite(value):
            self.estimated.update(index, value)

    def to_dict(self) -> dict:
        """Columns by name: the order they first completed a window in depends on how events were cut."""
        return {"format": _FORMAT, "capacity": self.capacity,
                "statistic": {k: v.to_dict() for k, v in sorted(self.statistic.items())},
                "missing": {k: v.to_dict() for k, v in sorted(self.missing.items())},
                "counts": dict(sorted(self.counts.items())), "metric": self.metric,
                "realized": None if self.realized is None else self.realized.to_dict(),
                "estimated": self.estimated.to_dict()}

    @classmethod
    def from_dict(cls, state: dict) -> ReportSeries:
        if state.get("format") != _FORMAT:
            raise StateVersionError(f"unknown report series format {state.get('format')!r}")
        series = cls(int(state["capacity"]))
        series.statistic = {k: Timeline.from_dict(v) for k, v in state["statistic"].items()}
        series.missing = {k: Timeline.from_dict(v) for k, v in state["missing"].items()}
        series.counts = {k: [int(c) for c in v] for k, v in state["counts"].items()}
        series.metric = state["metric"]
        series.realized = None if state["realized"] is None else Timeline.from_dict(state["realized"])
        series.estimated = Timeline.from_dict(state["estimated"])
        return series
