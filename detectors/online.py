"""river's ADWIN and Page-Hinkley behind one small contract with a saved form.

Both wrappers keep river's algorithm and decisions unchanged; what they add is
an explicit, versioned state that can be written to a store and read back
without unpickling anything:

- Page-Hinkley is pure Python in river; its six state fields are saved by name.
- ADWIN's window lives in river's compiled core, which exposes its own typed
  state bytes (``__getstate__``/``__setstate__``, a fixed binary layout, not
  pickle). They are saved base64-encoded beside river's version; state written
  by another river version is refused (the caller starts a fresh detector).
"""

from __future__ import annotations

import base64
import math

import river
from river import drift

__all__ = ["AdwinDetector", "PageHinkleyDetector", "StateVersionError"]

_PH_FORMAT = "driftline.page_hinkley/1"
_ADWIN_FORMAT = "driftline.adwin/1"


class StateVersionError(ValueError):
    """Saved detector state was written in a format this build cannot read."""


class PageHinkleyDetector:
    """Page-Hinkley test (river) for a shift of the mean, either direction.

    Parameters
    ----------
    threshold
        Cumulative deviation that signals a change (lambda).
    delta
        Magnitude of change tolerated per observation.
    min_instances
        Observations before the test may fire.
    alpha
        Forgetting factor of the cumulative sums.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> stream = np.r_[rng.normal(0, 1, 300), rng.normal(2, 1, 300)]
    >>> ph = PageHinkleyDetector(threshold=25.0, delta=0.5)
    >>> [i for i, x in enumerate(stream) if ph.update(x)]
    [314]
    """

    def __init__(self, threshold: float = 25.0, delta: float = 0.5, min_instances: int = 30,
                 alpha: float = 0.9999) -> None:
        if threshold <= 0 or delta < 0 or min_instances < 1 or not 0 < alpha <= 1:
            raise ValueError("Page-Hinkley needs threshold > 0, delta >= 0, min_instances >= 1, 0 < alpha <= 1")
        self.threshold = threshold
        self.delta = delta
        self.min_instances = min_instances
        self.alpha = alpha
        self._river = drift.PageHinkley(min_instances=min_instances, delta=delta, threshold=threshold,
                                        alpha=alpha, mode="both")

    name = "page_hinkley"

    @property
    def drift_detected(self) -> bool:
        return self._river.drift_detected

    @property
    def statistic(self) -> float:
        """The larger of the upward and downward test values."""
        r = self._river
        return max(r._sum_increase - r._min_increase, r._max_decrease - r._sum_decrease)

    def update(self, x: float) -> bool:
        self._river.update(x)
        return self._river.drift_detected

    def to_dict(self) -> dict:
        r = self._river
        return {
            "format": _PH_FORMAT,
            "params": {"threshold": self.threshold, "delta": self.delta,
                       "min_instances": self.min_instances, "alpha": self.alpha},
            "drift_detected": r._drift_detected,
            # floats, as from_dict restores them: river starts some of these as ints, and a restored detector
            # must save the same bytes as one that never left memory
            "n": float(r._x_mean.n),
            "mean": float(r._x_mean.get()),
            "sum_increase": float(r._sum_increase),
            "sum_decrease": float(r._sum_decrease),
            "min_increase": _finite_or_none(float(r._min_increase)),
            "max_decrease": float(r._max_decrease),
        }

    @classmethod
    def from_dict(cls, state: dict) -> PageHinkleyDetector:
        if state.get("format") != _PH_FORMAT:
            raise StateVersionError(f"unknown Page-Hinkley state format {state.get('format')!r}")
        detector = cls(**state["params"])
        r = detector._river
        r._drift_detected = bool(state["drift_detected"])
        r._x_mean.n = float(state["n"])
        r._x_mean._mean = float(state["mean"])
        r._sum_increase = float(state["sum_increase"])
        r._sum_decrease = float(state["sum_decrease"])
        r._min_increase = math.inf if state["min_increase"] is None else float(state["min_increase"])
        r._max_decrease = float(state["max_decrease"])
        return detector


class AdwinDetector:
    """ADWIN (river): adaptive windowing that cuts the window when its halves differ.

    Parameters
    ----------
    delta
        Confidence of a cut; smaller means fewer false alarms and later detection.
    clock
        Updates between two checks for a cut.
    grace_period
        Observations before the first check.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> stream = np.r_[rng.normal(0, 1, 300), rng.normal(2, 1, 300)]
    >>> adwin = AdwinDetector(delta=0.002, clock=1)
    >>> [i for i, x in enumerate(stream) if adwin.update(x)]
    [310]
    """

    name = "adwin"

    def __init__(self, delta: float = 0.002, clock: int = 1, grace_period: int = 10) -> None:
        if not 0 < delta < 1 or clock < 1 or grace_period < 1:
            raise ValueError("ADWIN needs 0 < delta < 1, clock >= 1, grace_period >= 1")
        self.delta = delta
        self.clock = clock
        self.grace_period = grace_period
        self._river = drift.ADWIN(delta=delta, clock=clock, grace_period=grace_period)

    @property
    def drift_detected(self) -> bool:
        return self._river.drift_detected

    @property
    def estimation(self) -> float:
        """Mean of the current window (after a cut: of the newer part)."""
        return self._river.estimation

    @property
    def width(self) -> int:
        return int(self._river.width)

    def update(self, x: float) -> bool:
        self._river.update(x)
        return self._river.drift_detected

    def run(self, xs: list[float], stop: int) -> int | None:
        """``update`` with ``xs[:stop]`` in turn until a cut; returns the index of that value (None: none).

        river's ``update`` resets a detector that found a cut before it adds a value, then keeps whether the
        value made one; this does the same, with one call into river's window per value.
        """
        river = self._river
        for i in range(stop):
            if river._drift_detected:  # a cut at the last update: river starts afresh first
                if self.update(xs[i]):
                    return i
                continue
            if river._helper.update(xs[i]):
                river._drift_detected = True
                return i
        return None

    def to_dict(self) -> dict:
        return {
            "format": _ADWIN_FORMAT,
            "river": river.__version__,
            "params": {"delta": self.delta, "clock": self.clock, "grace_period": self.grace_period},
            "drift_detected": self._river._drift_detected,
            "window": base64.b64encode(self._river._helper.__getstate__()).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, state: dict) -> AdwinDetector:
        if state.get("format") != _ADWIN_FORMAT:
            raise StateVersionError(f"unknown ADWIN state format {state.get('format')!r}")
        if state.get("river") != river.__version__:
            raise StateVersionError(
                f"ADWIN state was saved by river {state.get('river')}, this build runs river {river.__version__}")
        detector = cls(**state["params"])
        detector._river._helper.__setstate__(base64.b64decode(state["window"]))
        detector._river._drift_detected = bool(state["drift_detected"])
        return detector


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
