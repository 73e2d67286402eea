"""Online drift detection on one numeric feature, a batch of values at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detectors.moments import NumericSummary
from detectors.online import AdwinDetector, PageHinkleyDetector, StateVersionError

__all__ = ["Firing", "NumericDriftMonitor"]

_FORMAT = "driftline.numeric_drift_monitor/1"


@dataclass(frozen=True)
class Firing:
    """A detector's verdict: which detector fired, on what, and where."""

    detector: str
    statistic: float
    threshold: float
    position: int
    """Index, in the batch given to ``update``, of the last value the detector had seen."""
    events_seen: int
    """Values this monitor had seen up to and including that one."""
    shift_sigma: float
    """Recent mean minus baseline mean, in baseline standard deviations."""


class NumericDriftMonitor:
    """ADWIN and Page-Hinkley on the standardised block means of one feature.

    The first ``baseline_size`` present values form the baseline (mean and
    standard deviation) that standardises every later value. Values are then
    grouped into consecutive blocks of ``block_size``; each block's mean,
    scaled to unit variance under the baseline (``mean * sqrt(block_size)``),
    feeds both detectors. Block means tame heavy tails and keep the per-event
    cost vectorised; a firing still names the last value of its block. Missing
    values (NaN) are skipped.

    Parameters
    ----------
    baseline_size
        Values taken as the self-baseline.
    block_size
        Values per detector update.
    ph_threshold, ph_delta
        Page-Hinkley's lambda and tolerated change, in block-signal units.
    adwin_delta
        ADWIN's confidence.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> values = np.r_[rng.normal(10, 2, 4000), rng.normal(12, 2, 2000)]
    >>> monitor = NumericDriftMonitor()
    >>> firings = monitor.update(values)
    >>> [(f.detector, f.position) for f in firings]
    [('page_hinkley', 4139), ('adwin', 4139)]
    """

    def __init__(self, baseline_size: int = 500, block_size: int = 20, ph_threshold: float = 25.0,
                 ph_delta: float = 0.5, adwin_delta: float = 0.002) -> None:
        if baseline_size < 2 or block_size < 1:
            raise ValueError("baseline_size must be at least 2 and block_size at least 1")
        self.baseline_size = baseline_size
        self.block_size = block_size
        self.ph_threshold = ph_threshold
        self.ph_delta = ph_delta
        self.adwin_delta = adwin_delta
        self._baseline = NumericSummary()
        self._seen = 0
        self._block_sum = 0.0
        self._block_n = 0
        self._recent = 0.0
        self._ph = PageHinkleyDetector(threshold=ph_threshold, delta=ph_delta)
        self._adwin = AdwinDetector(delta=adwin_delta)

    @property
    def warmed_up(self) -> bool:
        return self._baseline.count >= self.baseline_size

    def update(self, values: np.ndarray) -> list[Firing]:
        values = np.asarray(values, dtype=np.float64)
        positions = np.flatnonzero(~np.isnan(values))
        present = values[positions]
        if not self.warmed_up:
            take = min(self.baseline_size - self._baseline.count, present.size)
            self._baseline.update(present[:take])
            self._seen += take
            positions, present = positions[take:], present[take:]
            if present.size == 0:
                return []
        scale = self._baseline.std if self._baseline.std > 0 else 1.0
        z = (present - self._baseline.mean) / scale
        return self._feed_blocks(z, positions)

    def _feed_blocks(self, z: np.ndarray, positions: np.ndarray) -> list[Firing]:
        b = self.block_size
        first = b - self._block_n  # values still needed to complete the open block
        if z.size < first:
            self._block_sum += float(z.sum())
            self._block_n += z.size
            self._seen += z.size
            return []
        ends = np.arange(first - 1, z.size, b)  # index of each complete block's last value
        sums = np.add.reduceat(z[: ends[-1] + 1], np.r_[0, ends[:-1] + 1])
        sums[0] += self._block_sum
        signals = sums / math.sqrt(b)
        firings = []
        base_seen = self._seen
        for signal, end in zip(signals.tolist(), ends.tolist()):
            self._recent = 0.8 * self._recent + 0.2 * signal / math.sqrt(b)
            seen = base_seen + end + 1
            ph_fired = self._ph.update(signal)
            adwin_fired = self._adwin.update(signal)
            if ph_fired:
                firings.append(Firing(self._ph.name, self._ph.statistic, self.ph_threshold,
                                      int(positions[end]), seen, self._recent))
            if adwin_fired:
                firings.append(Firing(self._adwin.name, abs(self._adwin.estimation) / math.sqrt(b),
                                      self.adwin_delta, int(positions[end]), seen, self._recent))
        tail = z[ends[-1] + 1:]
        self._block_sum = float(tail.sum())
        self._block_n = tail.size
        self._seen += z.size
        return firings

    def to_dict(self) -> dict:
        return {
            "format": _FORMAT,
            "params": {"baseline_size": self.baseline_size, "block_size": self.block_size,
                       "ph_threshold": self.ph_threshold, "ph_delta": self.ph_delta,
                       "adwin_delta": self.adwin_delta},
            "baseline": self._baseline.to_dict(),
            "seen": self._seen,
            "block_sum": self._block_sum,
            "block_n": self._block_n,
            "recent": self._recent,
            "page_hinkley": self._ph.to_dict(),
            "adwin": self._adwin.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict) -> NumericDriftMonitor:
        if state.get("format") != _FORMAT:
            raise StateVersionError(f"unknown monitor state format {state.get('format')!r}")
        monitor = cls(**state["params"])
        monitor._baseline = NumericSummary.from_dict(state["baseline"])
        monitor._seen = int(state["seen"])
        monitor._block_sum = float(state["block_sum"])
        monitor._block_n = int(state["block_n"])
        monitor._recent = float(state["recent"])
        monitor._ph = PageHinkleyDetector.from_dict(state["page_hinkley"])
        monitor._adwin = AdwinDetector.from_dict(state["adwin"])
        return monitor
