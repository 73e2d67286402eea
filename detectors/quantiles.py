"""A mergeable quantile sketch with relative-error guarantees (DDSketch)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["QuantileSketch"]


class QuantileSketch:
    """Quantiles of a numeric stream within a relative error ``alpha``.

    Values are counted in logarithmic buckets: bucket ``k`` holds the values
    in ``(gamma**(k-1), gamma**k]`` with ``gamma = (1 + alpha) / (1 - alpha)``,
    negative values mirror into a second set of buckets and values closer to
    zero than ``min_value`` share a zero bucket. Any reported quantile is within
    ``alpha`` relative error of a value of the stream of the same rank.
    Two sketches with the same ``alpha`` merge exactly (``+=``), so per-batch
    sketches add up to the sketch of the whole stream. When more than
    ``max_buckets`` buckets are in use, the ones nearest zero are collapsed,
    which keeps the guarantee for the upper quantiles.

    Parameters
    ----------
    alpha
        Relative accuracy, between 0 and 1.
    max_buckets
        Buckets kept per sign before the smallest are collapsed.
    min_value
        Magnitude under which a value counts as zero.

    Examples
    --------
    >>> import numpy as np
    >>> sketch = QuantileSketch(alpha=0.01)
    >>> sketch.update(np.arange(1, 1001, dtype=float))
    >>> q = sketch.quantile(0.5)
    >>> abs(q - 500.5) / 500.5 < 0.01
    True

    References
    ----------
    Masson, C., Rim, J. E., Lee, H. K. (2019). DDSketch: a fast and
    fully-mergeable quantile sketch with relative-error guarantees. VLDB.
    """

    def __init__(self, alpha: float = 0.01, max_buckets: int = 2048, min_value: float = 1e-9) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if max_buckets < 8:
            raise ValueError(f"max_buckets must be at least 8, got {max_buckets}")
        if min_value <= 0:
            raise ValueError(f"min_value must be positive, got {min_value}")
        self.alpha = alpha
        self.max_buckets = max_buckets
        self.min_value = min_value
        self._log_gamma = math.log((1.0 + alpha) / (1.0 - alpha))
        self._positive: dict[int, int] = {}
        self._negative: dict[int, int] = {}
        self._zero = 0

    @property
    def count(self) -> int:
        return self._zero + sum(self._positive.values()) + sum(self._negative.values())

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        magnitude = np.abs(values)
        small = magnitude < self.min_value
        self._zero += int(small.sum())
        self._add_keys(self._positive, magnitude[(values > 0) & ~small])
        self._add_keys(self._negative, magnitude[(values < 0) & ~small])

    def _add_keys(self, store: dict[int, int], magnitudes: np.ndarray) -> None:
        if magnitudes.size == 0:
            return
        keys = np.ceil(np.log(magnitudes) / self._log_gamma).astype(np.int64)
        unique, counts = np.unique(keys, return_counts=True)
        for key, n in zip(unique.tolist(), counts.tolist()):
            store[key] = store.get(key, 0) + n
        self._collapse(store)

    def _collapse(self, store: dict[int, int]) -> None:
        if len(store) <= self.max_buckets:
            return
        keys = sorted(store)
        cut = keys[len(keys) - self.max_buckets]
        pooled = sum(store.pop(k) for k in keys if k < cut)
        store[cut] += pooled

    def _value(self, key: int) -> float:
        gamma = math.exp(self._log_gamma)
        return 2.0 * math.exp(key * self._log_gamma) / (gamma + 1.0)

    def quantile(self, q: float) -> float:
        """The value at quantile ``q`` in [0, 1]; NaN for an empty sketch."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        total = self.count
        if total == 0:
            return math.nan
        rank = q * (total - 1)
        seen = 0
        for key in sorted(self._negative, reverse=True):
            seen += self._negative[key]
            if seen > rank:
                return -self._value(key)
        seen += self._zero
        if seen > rank:
            return 0.0
        for key in sorted(self._positive):
            seen += self._positive[key]
            if seen > rank:
                return self._value(key)
        return self._value(max(self._positive))

    def __iadd__(self, other: QuantileSketch) -> QuantileSketch:
        if other.alpha != self.alpha or other.min_value != self.min_value:
            raise ValueError("only sketches with the same alpha and min_value merge")
        self._zero += other._zero
        for mine, theirs in ((self._positive, other._positive), (self._negative, other._negative)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
            self._collapse(mine)
        return self

    def to_dict(self) -> dict:
        return {
            "alpha": self.alpha,
            "max_buckets": self.max_buckets,
            "min_value": self.min_value,
            "zero": self._zero,
            "positive": [[k, n] for k, n in sorted(self._positive.items())],
            "negative": [[k, n] for k, n in sorted(self._negative.items())],
        }

    @classmethod
    def from_dict(cls, state: dict) -> QuantileSketch:
        sketch = cls(alpha=float(state["alpha"]), max_buckets=int(state["max_buckets"]),
                     min_value=float(state["min_value"]))
        sketch._zero = int(state["zero"])
        sketch._positive = {int(k): int(n) for k, n in state["positive"]}
        sketch._negative = {int(k): int(n) for k, n in state["negative"]}
        return sketch
