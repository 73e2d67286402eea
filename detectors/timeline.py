"""A time series of fixed capacity that keeps its shape over any number of points."""

from __future__ import annotations

import math

from detectors.online import StateVersionError

__all__ = ["Timeline"]

_FORMAT = "driftline.timeline/1"
_REDUCTIONS = ("max", "min", "mean")


class Timeline:
    """(event index, value) points, halved in resolution whenever full.

    Points are gathered into buckets of ``stride`` consecutive points; a full
    bucket is appended to the series. When the series holds ``capacity``
    buckets, adjacent pairs are merged and the stride doubles, so the series
    always covers every point seen with between ``capacity / 2`` and
    ``capacity`` buckets of equal size, plus the bucket being filled. All
    buckets hold the same number of points, so a bucket's value is exactly the
    reduction of its raw points, whatever the order of merges.

    The reduction is chosen per use: ``max`` for a drift statistic compared
    with an upper threshold (every crossing stays visible, and the peak of the
    series is the peak of the raw points); ``min`` for a metric that alerts
    when it falls below a bound (accuracy); ``mean`` for a rate (missing
    values). A bucket's index is the event index of its last point: the value
    as of that event.

    Parameters
    ----------
    capacity
        Most buckets kept; even, at least 2. The saved form grows linearly with it.
    reduce
        ``"max"``, ``"min"`` or ``"mean"``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> statistic = np.r_[rng.normal(0, 1, 6000), rng.normal(9, 1, 4000)]
    >>> timeline = Timeline(capacity=16, reduce="max")
    >>> for i, value in enumerate(statistic):
    ...     timeline.update(i, float(value))
    >>> timeline.stride, len(timeline.points())
    (1024, 10)
    >>> [i for i, v in timeline.points() if v > 8.0][0]  # the first bucket past 8 ends at event 6143
    6143
    """

    def __init__(self, capacity: int = 128, reduce: str = "max") -> None:
        if capacity < 2 or capacity % 2:
            raise ValueError(f"capacity must be an even number of at least 2, got {capacity}")
        if reduce not in _REDUCTIONS:
            raise ValueError(f"reduce must be one of {', '.join(_REDUCTIONS)}, got {reduce!r}")
        self.capacity = capacity
        self.reduce = reduce
        self._stride = 1
        self._indices: list[int] = []
        self._values: list[float] = []  # for "mean": the sum of the bucket's points
        self._pending_n = 0
        self._pending_index = -1
        self._pending_value = 0.0
        self._last_index: int | None = None

    @property
    def stride(self) -> int:
        """Points per full bucket."""
        return self._stride

    @property
    def count(self) -> int:
        """Points seen."""
        return len(self._indices) * self._stride + self._pending_n

    def update(self, index: int, value: float) -> None:
        index = int(index)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value} (record only defined values)")
        if self._last_index is not None and index < self._last_index:
            raise ValueError(f"event index went back from {self._last_index} to {index}")
        self._last_index = index
        self._pending_value = value if self._pending_n == 0 else self._combine(self._pending_value, value)
        self._pending_n += 1
        self._pending_index = index
        if self._pending_n == self._stride:
            self._indices.append(index)
            self._values.append(self._pending_value)
            self._pending_n = 0
            if len(self._indices) == self.capacity:
                self._halve()

    def points(self) -> list[tuple[int, float]]:
        """The buckets as (index of their last event, value), the one being filled last."""
        divisor = self._stride if self.reduce == "mean" else 1
        out = [(i, v / divisor) for i, v in zip(self._indices, self._values)]
        if self._pending_n:
            pending = self._pending_value / self._pending_n if self.reduce == "mean" else self._pending_value
            out.append((self._pending_index, pending))
        return out

    def _combine(self, a: float, b: float) -> float:
        if self.reduce == "max":
            return a if a >= b else b
        if self.reduce == "min":
            return a if a <= b else b
        return a + b

    def _halve(self) -> None:
        self._indices = self._indices[1::2]
        self._values = [self._combine(a, b) for a, b in zip(self._values[0::2], self._values[1::2])]
        self._stride *= 2

    def to_dict(self) -> dict:
        return {
            "format": _FORMAT,
            "capacity": self.capacity,
            "reduce": self.reduce,
            "stride": self._stride,
            "indices": list(self._indices),
            "values": list(self._values),
            "pending": [self._pending_n, self._pending_index, self._pending_value],
            "last_index": self._last_index,
        }

    @classmethod
    def from_dict(cls, state: dict) -> Timeline:
        if state.get("format") != _FORMAT:
            raise StateVersionError(f"unknown timeline state format {state.get('format')!r}")
        timeline = cls(capacity=int(state["capacity"]), reduce=str(state["reduce"]))
        timeline._stride = int(state["stride"])
        timeline._indices = [int(i) for i in state["indices"]]
        timeline._values = [float(v) for v in state["values"]]
        if len(timeline._indices) != len(timeline._values) or len(timeline._indices) >= timeline.capacity:
            raise ValueError("timeline state has mismatched or too many buckets")
        n, index, value = state["pending"]
        timeline._pending_n, timeline._pending_index, timeline._pending_value = int(n), int(index), float(value)
        timeline._last_index = None if state["last_index"] is None else int(state["last_index"])
        return timeline
