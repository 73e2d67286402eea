"""Count, missing count, mean, variance, min and max of a numeric stream."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["BLOCK", "NumericSummary"]

BLOCK = 64


class NumericSummary:
    """Running moments of a numeric column, updated a batch at a time.

    Present values are folded in fixed blocks of ``BLOCK`` values, each merged
    with the pairwise formula of Chan, Golub and LeVeque in the order the values
    came; the open block waits in the state. The moments are therefore a function
    of the value sequence alone, bit for bit, however it was cut into
    ``update`` calls (a worker may apply one message or a whole batch at once).
    The properties include the open block. NaN marks a missing value: it is
    counted in ``missing`` and left out of the moments. Summaries merge with
    ``+=`` (the other's open block is merged as one more block).

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
        self._open: list[float] = []  # present values of the block not yet merged, in order

    def _closed(self) -> NumericSummary:
        """This summary with its open block merged: what the properties read."""
        if not self._open:
            return self
        out = NumericSummary()
        out._n, out._mean, out._m2, out._min, out._max = self._n, self._mean, self._m2, self._min, self._max
        out._fold(np.array(self._open))
        return out

    @property
    def count(self) -> int:
        """Number of present (non-missing) values."""
        return self._n + len(self._open)

    @property
    def missing(self) -> int:
        return self._missing

    @property
    def mean(self) -> float:
        s = self._closed()
        return s._mean if s._n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); NaN with fewer than two values."""
        s = self._closed()
        return s._m2 / (s._n - 1) if s._n > 1 else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.variance) if self.count > 1 else math.nan

    @property
    def min(self) -> float:
        return min([self._min, *self._open]) if self.count else math.nan

    @property
    def max(self) -> float:
        return max([self._max, *self._open]) if self.count else math.nan

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        present = values[~np.isnan(values)]
        self._missing += int(values.size - present.size)
        if present.size == 0:
            return
        if self._open:
            present = np.concatenate([np.array(self._open), present])
        whole = present.size // BLOCK * BLOCK
        if whole:
            self._merge_blocks(present[:whole].reshape(-1, BLOCK))
        self._open = present[whole:].tolist()

    def add(self, value: float) -> None:
        """``update`` with one value, without an array per value (the same blocks, the same bits)."""
        if math.isnan(value):
            self._missing += 1
            return
        self._open.append(value)
        if len(self._open) == BLOCK:
            self._merge_blocks(np.array(self._open).reshape(1, BLOCK))
            self._open = []

    def _merge_blocks(self, blocks: np.ndarray) -> None:
        means = blocks.mean(axis=1)
        m2s = np.square(blocks - means[:, None]).sum(axis=1)
        # ``_combine`` per block, inlined: the same operations in the same order
        n, mu, acc = self._n, self._mean, self._m2
        for mean, m2 in zip(means.tolist(), m2s.tolist()):
            total = n + BLOCK
            delta = mean - mu
            mu += delta * BLOCK / total
            acc += m2 + delta * delta * n * BLOCK / total
            n = total
        self._n, self._mean, self._m2 = n, mu, acc
        self._min = min(self._min, min(blocks.min(axis=1).tolist()))  # the first of equal ones, as block by block
        self._max = max(self._max, max(blocks.max(axis=1).tolist()))

    def _fold(self, present: np.ndarray) -> None:
        if present.size:
            mean = float(present.mean())
            self._combine(int(present.size), mean, float(np.square(present - mean).sum()), float(present.min()),
                          float(present.max()))

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
        self._fold(np.array(self._open))
        self._combine(other._n, other._mean, other._m2, other._min, other._max)
        self._fold(np.array(other._open))
        self._open = []
        return self

    def to_dict(self) -> dict:
        return {
            "n": self._n,
            "missing": self._missing,
            "mean": self._mean,
            "m2": self._m2,
            "min": self._min if self._n else None,
            "max": self._max if self._n else None,
            "open": self._open,
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
        summary._open = [float(v) for v in state.get("open", [])]  # saved before blocks: all merged already
        return summary
