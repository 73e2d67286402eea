"""Two-sided CUSUM on a standardised signal, with its threshold set from a target false-alarm rate."""

from __future__ import annotations

import functools
import math

from detectors.online import StateVersionError

__all__ = ["Cusum", "cusum_threshold"]

_FORMAT = "driftline.cusum/1"


@functools.lru_cache(maxsize=256)
def cusum_threshold(k: float, arl0: float) -> float:
    """Threshold ``h`` giving an in-control average run length of about ``arl0`` per side.

    Cached: every monitor restored from saved state needs it again for the same few designs.

    Siegmund's approximation for a N(0, 1) signal:
    ``ARL0 = (exp(2k h') - 2k h' - 1) / (2 k^2)`` with ``h' = h + 1.166``,
    solved for ``h`` by bisection.
    """
    if k <= 0 or arl0 <= 1:
        raise ValueError("k must be positive and arl0 greater than 1")

    def arl(h: float) -> float:
        hp = h + 1.166
        return (math.exp(2 * k * hp) - 2 * k * hp - 1) / (2 * k * k)

    lo, hi = 0.0, 1.0
    while arl(hi) < arl0:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if arl(mid) < arl0 else (lo, mid)
    return hi


class Cusum:
    """Page's two-sided CUSUM for a shift of the mean of a N(0, 1) signal.

    ``S+ = max(0, S+ + x - k)`` and ``S- = max(0, S- - x - k)``; a change is
    signalled when either exceeds ``h``, and both restart from zero. Unlike
    Page-Hinkley it compares with a fixed baseline (the signal is standardised
    against the reference or the self-baseline), which is what gives it the
    shortest detection delay for a given false-alarm rate.

    Parameters
    ----------
    k
        Allowance: half the shift (in signal units) the test is tuned for.
    h
        Decision threshold; see ``cusum_threshold``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> signal = np.r_[rng.normal(0, 1, 300), rng.normal(2, 1, 300)]
    >>> cusum = Cusum(k=1.0, h=cusum_threshold(1.0, 1e6))
    >>> firings = [i for i, x in enumerate(signal) if cusum.update(x)]
    >>> firings[0]  # the shift starts at 300; it fires again each time the sums refill
    305

    References
    ----------
    Page, E. S. (1954). Continuous inspection schemes. Biometrika 41.
    Siegmund, D. (1985). Sequential Analysis. Springer.
    """

    name = "cusum"

    def __init__(self, k: float, h: float) -> None:
        if k <= 0 or h <= 0:
            raise ValueError("CUSUM needs k > 0 and h > 0")
        self.k = k
        self.h = h
        self._up = 0.0
        self._down = 0.0
        self._statistic = 0.0
        self._direction = 1

    @property
    def statistic(self) -> float:
        """The larger of the two sums at the last update (before any restart)."""
        return self._statistic

    @property
    def direction(self) -> int:
        """+1 if the upper sum was the larger at the last update (the mean went up), else -1; after a
        signal, the side that signalled."""
        return self._direction

    def update(self, x: float) -> bool:
        self._up = max(0.0, self._up + x - self.k)
        self._down = max(0.0, self._down - x - self.k)
        self._statistic = max(self._up, self._down)
        self._direction = 1 if self._up >= self._down else -1
        if self._statistic > self.h:
            self._up = self._down = 0.0
            return True
        return False

    def run(self, xs: list[float]) -> int | None:
        """``update`` with each of ``xs`` in turn until one signals; returns its index (None: none did).

        The same arithmetic, operation for operation, as ``update`` (``max(0.0, v)`` is ``v`` only when
        ``v > 0.0``), without a call per value: the state afterwards is the same, bit for bit.
        """
        if not xs:
            return None
        up, down, k, h = self._up, self._down, self.k, self.h
        for i, x in enumerate(xs):
            up = up + x - k
            if not up > 0.0:
                up = 0.0
            down = down - x - k
            if not down > 0.0:
                down = 0.0
            statistic = down if down > up else up
            if statistic > h:
                self._statistic, self._direction = statistic, 1 if up >= down else -1
                self._up = self._down = 0.0
                return i
        self._up, self._down = up, down
        self._statistic, self._direction = statistic, 1 if up >= down else -1
        return None

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "params": {"k": self.k, "h": self.h}, "up": self._up, "down": self._down,
                "statistic": self._statistic}

    @classmethod
    def from_dict(cls, state: dict) -> Cusum:
        if state.get("format") != _FORMAT:
            raise StateVersionError(f"unknown CUSUM state format {state.get('format')!r}")
        cusum = cls(**state["params"])
        cusum._up, cusum._down = float(state["up"]), float(state["down"])
        cusum._statistic = float(state["statistic"])
        cusum._direction = 1 if cusum._up >= cusum._down else -1
        return cusum
