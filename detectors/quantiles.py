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
        # Dense bucket counts per sign: counts[i] is bucket ``offset + i``.
        self._positive = _Buckets()
        self._negative = _Buckets()
        self._zero = 0

    @property
    def count(self) -> int:
        return self._zero + self._positive.total + self._negative.total

    def update(self, values: np.ndarray) -> None:
        # flat and, for a view against the grain, a contiguous copy: numpy's vectorised log and its scalar one
        # (which a reversed view gets) can differ in the last bit, and so move a value across a bucket edge
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size and values.min() >= self.min_value and values.max() < math.inf:
            # the common case: every value finite, positive and not counted as zero (a NaN fails both tests);
            # the same buckets as below, with a third of its array operations
            self._add(self._positive, values)
            return
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        magnitude = np.abs(values)
        small = magnitude < self.min_value
        self._zero += int(small.sum())
        for buckets, part in ((self._positive, magnitude[(values > 0) & ~small]),
                              (self._negative, magnitude[(values < 0) & ~small])):
            if part.size:
                self._add(buckets, part)

    def _add(self, buckets: _Buckets, magnitudes: np.ndarray) -> None:
        """Count magnitudes (finite, at least ``min_value``) in the buckets of their sign."""
        keys = np.ceil(np.log(magnitudes) / self._log_gamma).astype(np.int64)
        lo = int(keys.min())
        buckets.add(lo, np.bincount(keys - lo))
        buckets.collapse(self.max_buckets)

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
        neg, pos = self._negative, self._positive
        if rank < neg.total:  # most negative first: the negative buckets from the top key down
            idx = int(np.searchsorted(np.cumsum(neg.counts[::-1]), rank, side="right"))
            return -self._value(neg.offset + neg.counts.size - 1 - idx)
        rank -= neg.total
        if rank < self._zero:
            return 0.0
        rank -= self._zero
        idx = int(np.searchsorted(np.cumsum(pos.counts), rank, side="right"))
        return self._value(pos.offset + min(idx, pos.counts.size - 1))

    def __iadd__(self, other: QuantileSketch) -> QuantileSketch:
        if other.alpha != self.alpha or other.min_value != self.min_value:
            raise ValueError("only sketches with the same alpha and min_value merge")
        self._zero += other._zero
        for mine, theirs in ((self._positive, other._positive), (self._negative, other._negative)):
            if theirs.total:
                mine.add(theirs.offset, theirs.counts)
                mine.collapse(self.max_buckets)
        return self

    def to_dict(self) -> dict:
        return {
            "alpha": self.alpha,
            "max_buckets": self.max_buckets,
            "min_value": self.min_value,
            "zero": self._zero,
            "positive": self._positive.to_dict(),
            "negative": self._negative.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict) -> QuantileSketch:
        sketch = cls(alpha=float(state["alpha"]), max_buckets=int(state["max_buckets"]),
                     min_value=float(state["min_value"]))
        sketch._zero = int(state["zero"])
        sketch._positive = _Buckets.from_dict(state["positive"])
        sketch._negative = _Buckets.from_dict(state["negative"])
        return sketch


class _Buckets:
    """Contiguous bucket counts starting at key ``offset``."""

    def __init__(self, offset: int = 0, counts: np.ndarray | None = None) -> None:
        self.offset = offset
        self.counts = np.zeros(0, dtype=np.int64) if counts is None else counts

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def add(self, offset: int, counts: np.ndarray) -> None:
        if self.counts.size == 0:
            self.offset, self.counts = offset, counts.astype(np.int64, copy=True)
            return
        lo = min(self.offset, offset)
        hi = max(self.offset + self.counts.size, offset + counts.size)
        if lo != self.offset or hi != self.offset + self.counts.size:
            grown = np.zeros(hi - lo, dtype=np.int64)
            grown[self.offset - lo:self.offset - lo + self.counts.size] = self.counts
            self.offset, self.counts = lo, grown
        self.counts[offset - lo:offset - lo + counts.size] += counts

    def collapse(self, max_buckets: int) -> None:
        excess = self.counts.size - max_buckets
        if excess > 0:  # pool the buckets nearest zero into the lowest one kept
            self.counts[excess] += self.counts[:excess].sum()
            self.counts = self.counts[excess:].copy()
            self.offset += excess

    def to_dict(self) -> dict:
        return {"offset": self.offset, "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, state: dict) -> _Buckets:
        return cls(int(state["offset"]), np.asarray(state["counts"], dtype=np.int64))
