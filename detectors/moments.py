"""Count, missing count, mean, variance, min and max of a numeric stream."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NumericSummary"]


class NumericSummary:
    """Running moments of a numeric column, updated a batch at a time.

    A batch is folded in with the pairwise formula of Chan, Golub and LeVeque,
    so a summary updated batch by batch equals one computed over all values at
    once, to floating-point rounding. NaN marks a missing value: it is counted
    in ``missing`` and left out of the moments. Summaries merge with ``+=``.

    Examples
    --------
    >>> import numpy as np
    >>> s = NumericSummary()
    >>> s.update(np.array([1.0, 2.0, np.nan]))
    >>> s.update(np.array([3.0, 4.0]))
    >>> s.count, s.missing, s.mean, round(s.variance, 6), s.min, s.max
    (4, 1, 2.5, 1.666667, 1.0, 4.0)

    References
    ----------
    Chan, T. F., Golub, G. H., LeVeque, R. J. (1979). Updating formulae and a
    pairwise algorithm for computing sample variances.
    """

    def __init__(self) -> None:
        self._n = 0
        self._missing = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._min = math.inf
        self._max = -math.inf

    @property
    def count(self) -> int:
        """Number of present (non-missing) values."""
        return self._n

    @property
    def missing(self) -> int:
        return self._missing

    @property
    def mean(self) -> float:
        return self._mean if self._n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); NaN with fewer than two values."""
        return self._m2 / (self._n - 1) if self._n > 1 else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.variance) if self._n > 1 else math.nan

    @property
    def min(self) -> float:
        return self._min if self._n else math.nan

    @property
    def max(self) -> float:
        return self._max if self._n else math.nan

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        present = values[~np.isnan(values)]
        self._missing += int(values.size - present.size)
        if present.size == 0:
            return
        batch_mean = float(present.mean())
        batch_m2 = float(np.square(present - batch_mean).sum())
        self._combine(int(present.size), batch_mean, batch_m2, float(present.min()), float(present.max()))

    def _combine(self, n: int, mean: float, m2: float, lo: float, hi: float) -> None:
        if n == 0:
            return
        total = self._n + n
        delta = mean - self._mean
        self._mean += delta * n / total
        self._m2 += m2 + delta * delta * self._n * n / total
        self._n = total
        self._min = min(self._min, lo)
        self._max = max(self._max, hi)

    def __iadd__(self, other: NumericSummary) -> NumericSummary:
        self._missing += other._missing
        self._combine(other._n, other._mean, other._m2, other._min, other._max)
        return self

    def to_dict(self) -> dict:
        return {
            "n": self._n,
            "missing": self._missing,
            "mean": self._mean,
            "m2": self._m2,
            "min": self._min if self._n else None,
            "max": self._max if self._n else None,
        }

    @classmethod
    def from_dict(cls, state: dict) -> NumericSummary:
        summary = cls()
        summary._n = int(state["n"])
        summary._missing = int(state["missing"])
        summary._mean = float(state["mean"])
        summary._m2 = float(state["m2"])
        summary._min = math.inf if state["min"] is None else float(state["min"])
        summary._max = -math.inf if state["max"] is None else float(state["max"])
        return summary
