"""Online drift detection on one numeric feature, a batch of values at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detectors.cusum import Cusum, cusum_threshold
from detectors.moments import NumericSummary
from detectors.online import AdwinDetector, PageHinkleyDetector, StateVersionError
from detectors.quantiles import QuantileSketch

__all__ = ["DETECTORS", "Firing", "NumericDriftMonitor"]

_FORMAT = "driftline.numeric_drift_monitor/3"
_SUMMED_FORMAT = "driftline.numeric_drift_monitor/2"  # kept the open block as a sum: loaded as its mean
DETECTORS = ("cusum", "adwin", "page_hinkley")
_STRETCH_BLOCKS, _STRETCH_VALUES = 64, 512  # blocks of an update fed at once: at least 64 blocks, 512 values


@dataclass(frozen=True)
class Firing:
    """A detector's verdict: which detector fired, on what, and where."""

    detector: str
    statistic: float
    threshold: float
    position: int
    """Index, in the batch given to ``update``, of the last value the detector had seen."""
    events_seen: int
    """Present values this monitor had seen up to and including that one."""
    shift_sigma: float
    """Mean of the firing block minus the baseline mean, in baseline standard deviations of a value."""
    direction: int = 0
    """+1 if the detector saw the mean rise, -1 if fall (CUSUM: the side that signalled; ADWIN: the sign
    of its recent window's mean against the baseline; Page-Hinkley: the sign of ``shift_sigma``)."""


class NumericDriftMonitor:
    """Change detectors on the standardised block means of one feature.

    1. Pilot: the first ``pilot_size`` present values fix winsorising limits
       at their ``winsor`` and ``1 - winsor`` quantiles, so single extreme
       values (heavy tails) cannot dominate a block.
    2. Baseline: the next ``baseline_blocks`` blocks of ``block_size``
       clipped values give the baseline mean and the spread of a block mean,
       measured rather than assumed: autocorrelated data, whose block means
       vary more than independent draws, are standardised by what they do
       (by the upper bound of the estimate, two standard errors up).
    3. Monitoring: each block mean, standardised by the baseline, feeds the
       chosen detectors: a two-sided CUSUM tuned for a shift of
       ``design_shift`` baseline standard deviations with an in-control run
       length of ``arl0_blocks`` blocks; ADWIN (river) with confidence
       ``adwin_delta``; Page-Hinkley (river), off by default. A firing names
       the last value of its block.
    4. Recent level: an exponentially weighted mean of the standardised
       block means (span ``recent_blocks`` blocks), kept through firings.
       After each ``update``, ``last_shifted_position`` names the last block
       at which it still differed from the baseline by more than 3 of its
       standard errors and by more than a quarter of ``design_shift``: the
       drift is still there, even when the detectors, reset by their firing,
       have not fired again yet (``last_shifted_direction`` says which way);
       ``shifted_positions`` names every such block of the ``update``.

    Blocks are cut from the sequence of present values, and the open block's
    values wait in the state: whatever the cut of the values into ``update``
    calls, the same blocks, means and firings come out, bit for bit.

    With a reference (``from_reference``), phases 1 and 2 come from the
    reference data and the baseline stays after a firing. Without one, the
    monitor starts over at phase 1 after a firing: the new level becomes the
    new normal.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> values = np.r_[rng.normal(10, 2, 8000), rng.normal(11, 2, 2000)]
    >>> monitor = NumericDriftMonitor()
    >>> [(f.detector, f.position) for f in monitor.update(values)]
    [('cusum', 8239)]
    """

    def __init__(self, block_size: int = 20, pilot_size: int = 1000, baseline_blocks: int = 200,
                 winsor: float = 0.005, design_shift: float = 0.5, arl0_blocks: float = 1e8,
                 adwin_delta: float = 1e-5, ph_threshold: float = 25.0, ph_delta: float = 0.5,
                 detectors: tuple[str, ...] = ("cusum", "adwin"), rebaseline: bool = True,
                 recent_blocks: int = 100) -> None:
        if block_size < 1 or pilot_size < 10 or baseline_blocks < 10:
            raise ValueError("block_size >= 1, pilot_size >= 10 and baseline_blocks >= 10 are required")
        if not 0 <= winsor < 0.5 or design_shift <= 0 or arl0_blocks <= 1:
            raise ValueError("0 <= winsor < 0.5, design_shift > 0 and arl0_blocks > 1 are required")
        unknown = set(detectors) - set(DETECTORS)
        if recent_blocks < 1:
            raise ValueError("recent_blocks >= 1 is required")
        if unknown or not detectors:
            raise ValueError(f"detectors must be a non-empty subset of {DETECTORS}, got {detectors}")
        self.block_size = block_size
        self.pilot_size = pilot_size
        self.baseline_blocks = baseline_blocks
        self.winsor = winsor
        self.design_shift = design_shift
        self.arl0_blocks = arl0_blocks
        self.adwin_delta = adwin_delta
        self.ph_threshold = ph_threshold
        self.ph_delta = ph_delta
        self.detectors = tuple(detectors)
        self.rebaseline = rebaseline
        self.recent_blocks = recent_blocks
        self._recent_weight = 2.0 / (recent_blocks + 1)
        self._recent_sd = math.sqrt(self._recent_weight / (2.0 - self._recent_weight))  # of the mean, no shift
        self.last_shifted_position: int | None = None
        self.last_shifted_direction = 0
        self.shifted_positions: list[int] = []
        self._k = design_shift * math.sqrt(block_size) / 2
        self._h = cusum_threshold(self._k, 2 * arl0_blocks)  # two sides share the run length
        self._restart()
        self._seen = 0

    def _restart(self) -> None:
        self._phase = "pilot"
        self._pilot = QuantileSketch(alpha=0.005)
        self._limits = (-math.inf, math.inf)
        self._blocks = NumericSummary()       # baseline block means
        self._mean = 0.0                      # baseline mean of a clipped value
        self._block_sd = 1.0                  # baseline sd of a block mean
        self._value_sd = 1.0                  # baseline sd of a value (for shift_sigma)
        self._block_values: list[float] = []  # the clipped values of the open block
        self._recent = 0.0                    # recent level of the standardised block means
        self._fresh_detectors()

    def _fresh_detectors(self) -> None:
        self._cusum = Cusum(self._k, self._h)
        self._adwin = AdwinDetector(delta=self.adwin_delta)
        self._ph = PageHinkleyDetector(threshold=self.ph_threshold, delta=self.ph_delta)

    @classmethod
    def from_reference(cls, values: np.ndarray, **params) -> NumericDriftMonitor:
        """Scenario I: limits and baseline from reference values, in their original order."""
        monitor = cls(**{**params, "rebaseline": False})
        values = np.asarray(values, dtype=np.float64)
        present = values[~np.isnan(values)]
        b = monitor.block_size
        if present.size < b * 10:
            raise ValueError(f"a reference needs at least {b * 10} present values, got {present.size}")
        lo, hi = np.quantile(present, [monitor.winsor, 1 - monitor.winsor])
        clipped = np.clip(present, lo, hi)
        means = clipped[: present.size // b * b].reshape(-1, b).mean(axis=1)
        monitor._limits = (float(lo), float(hi))
        monitor._set_baseline(float(clipped.mean()), float(means.std(ddof=1)), float(clipped.std(ddof=1)))
        return monitor

    def _set_baseline(self, mean: float, block_sd: float, value_sd: float) -> None:
        self._mean = mean
        self._block_sd = block_sd if block_sd > 0 else 1.0
        self._value_sd = value_sd if value_sd > 0 else 1.0
        self._phase = "monitoring"
        self._blocks = NumericSummary()
        self._pilot = QuantileSketch(alpha=0.005)

    @property
    def monitoring(self) -> bool:
        return self._phase == "monitoring"

    @property
    def cusum_statistic(self) -> float:
        return self._cusum.statistic

    @property
    def cusum_threshold(self) -> float:
        return self._h

    def update(self, values: np.ndarray) -> list[Firing]:
        values = np.asarray(values, dtype=np.float64)
        positions = np.flatnonzero(~np.isnan(values))
        present = values[positions]
        firings: list[Firing] = []
        self.last_shifted_position, self.last_shifted_direction = None, 0
        self.shifted_positions = []
        start = 0
        while start < present.size:
            if self._phase == "pilot":
                take = min(self.pilot_size - self._pilot.count, present.size - start)
                self._pilot.update(present[start:start + take])
                self._seen += take
                start += take
                if self._pilot.count >= self.pilot_size:
                    self._limits = (self._pilot.quantile(self.winsor), self._pilot.quantile(1 - self.winsor))
                    self._phase = "baseline"
                continue
            # at most a stretch of blocks at a time: after a firing the rest is fed again, so a stream that fires
            # often costs per block, not per remaining value (an update's cut does not change the outcome)
            stretch = start + max(_STRETCH_BLOCKS * self.block_size, _STRETCH_VALUES)
            done, fired = self._feed_blocks(present[start:stretch], positions[start:stretch], firings)
            start += done
            if fired and self.rebaseline:
                self._restart()
        return firings

    def _feed_blocks(self, values: np.ndarray, positions: np.ndarray, firings: list[Firing]) -> tuple[int, bool]:
        """Feed whole blocks until the phase changes or a detector fires; returns (values used, fired)."""
        b = self.block_size
        waiting = len(self._block_values)
        clipped = np.clip(values, *self._limits)
        if waiting:
            clipped = np.concatenate([np.array(self._block_values), clipped])
        whole = clipped.size // b * b
        means = clipped[:whole].reshape(-1, b).mean(axis=1).tolist()  # one row per block: the same sums always
        if self._phase == "baseline":
            for i, mean in enumerate(means):
                self._blocks.add(mean)
                if self._blocks.count >= self.baseline_blocks:
                    sd = self._blocks.std
                    # the spread is estimated from these blocks only: take its upper bound (2 standard errors)
                    upper = sd * (1 + 2 / math.sqrt(2 * (self._blocks.count - 1)))
                    self._set_baseline(self._blocks.mean, upper, sd * math.sqrt(b))
                    return self._consume((i + 1) * b - waiting), False
        else:
            fired = self._detect(means, range(b - 1 - waiting, whole - waiting, b), positions, firings)
            if fired is not None:
                return self._consume((fired + 1) * b - waiting), True
        self._block_values = clipped[whole:].tolist()
        self._seen += values.size
        return values.size, False

    def _consume(self, used: int) -> int:
        """Close the block ending at value ``used - 1`` of the update."""
        self._block_values = []
        self._seen += used
        return used

    def _detect(self, means: list[float], ends: range, positions: np.ndarray, firings: list[Firing]) -> int | None:
        """The detectors on consecutive block means (``ends``: each block's last value in the update, whose
        event is at ``positions[end]``), up to and including the first block at which one fires; returns that
        block's index (None: none fired).

        Each detector runs over the blocks in one loop of its own, which leaves the same state as taking the
        blocks one at a time: until a block at which one fires the detectors do not meet, and at that block all
        of them have seen the same blocks, and all start afresh after it.
        """
        mean_0, block_sd, value_sd = self._mean, self._block_sd, self._value_sd
        signals = [(m - mean_0) / block_sd for m in means]
        first = len(signals)
        cusum = adwin = page_hinkley = None
        if "cusum" in self.detectors:
            cusum = self._cusum.run(signals)
            first = first if cusum is None else cusum
        if "adwin" in self.detectors:
            adwin = self._adwin.run(signals, min(first + 1, len(signals)))
            first = first if adwin is None else adwin
        if "page_hinkley" in self.detectors:
            page_hinkley = next((i for i in range(min(first + 1, len(signals))) if self._ph.update(signals[i])),
                                None)
            first = first if page_hinkley is None else page_hinkley
        recent, weight, limit, quarter = self._recent, self._recent_weight, 3 * self._recent_sd, self.design_shift / 4
        for i in range(min(first + 1, len(signals))):  # the recent level, up to the block that fired
            recent += weight * (signals[i] - recent)
            if abs(recent) > limit and abs(recent * block_sd / value_sd) > quarter:
                position = int(positions[ends[i]])
                self.last_shifted_position, self.last_shifted_direction = position, 1 if recent > 0 else -1
                self.shifted_positions.append(position)
        self._recent = recent
        if first == len(signals):
            return None
        position, seen = int(positions[ends[first]]), self._seen + ends[first] + 1
        shift = (means[first] - mean_0) / value_sd
        fired = []
        if cusum == first:
            fired.append(Firing("cusum", self._cusum.statistic, self._h, position, seen, shift,
                                self._cusum.direction))
        if adwin == first:
            fired.append(Firing("adwin", abs(self._adwin.estimation), self.adwin_delta, position, seen, shift,
                                1 if self._adwin.estimation >= 0 else -1))
        if page_hinkley == first:
            fired.append(Firing("page_hinkley", self._ph.statistic, self.ph_threshold, position, seen, shift,
                                1 if shift >= 0 else -1))
        firings.extend(fired)
        self._fresh_detectors()
        return first

    def to_dict(self) -> dict:
        return {
            "format": _FORMAT,
            "params": {"block_size": self.block_size, "pilot_size": self.pilot_size,
                       "baseline_blocks": self.baseline_blocks, "winsor": self.winsor,
                       "design_shift": self.design_shift, "arl0_blocks": self.arl0_blocks,
                       "adwin_delta": self.adwin_delta, "ph_threshold": self.ph_threshold,
                       "ph_delta": self.ph_delta, "detectors": list(self.detectors), "rebaseline": self.rebaseline,
                       "recent_blocks": self.recent_blocks},
            "phase": self._phase, "seen": self._seen, "pilot": self._pilot.to_dict(),
            "limits": [_finite(x) for x in self._limits], "blocks": self._blocks.to_dict(),
            "mean": self._mean, "block_sd": self._block_sd, "value_sd": self._value_sd,
            "block_values": self._block_values, "recent": self._recent,
            "cusum": self._cusum.to_dict(), "adwin": self._adwin.to_dict(), "page_hinkley": self._ph.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict) -> NumericDriftMonitor:
        if state.get("format") not in (_FORMAT, _SUMMED_FORMAT):
            raise StateVersionError(f"unknown monitor state format {state.get('format')!r}")
        params = dict(state["params"])
        params["detectors"] = tuple(params["detectors"])
        m = cls(**params)
        m._phase, m._seen = state["phase"], int(state["seen"])
        m._pilot = QuantileSketch.from_dict(state["pilot"])
        lo, hi = state["limits"]
        m._limits = (-math.inf if lo is None else lo, math.inf if hi is None else hi)
        m._blocks = NumericSummary.from_dict(state["blocks"])
        m._mean, m._block_sd, m._value_sd = state["mean"], state["block_sd"], state["value_sd"]
        if state["format"] == _SUMMED_FORMAT:  # the open block's values were summed: each becomes their mean
            n = int(state["block_n"])
            m._block_values = [float(state["block_sum"]) / n] * n if n else []
        else:
            m._block_values = [float(v) for v in state["block_values"]]
        m._recent = float(state.get("recent", 0.0))  # saved before the recent level was kept: start it afresh
        m._cusum = Cusum.from_dict(state["cusum"])
        m._adwin = AdwinDetector.from_dict(state["adwin"])
        m._ph = PageHinkleyDetector.from_dict(state["page_hinkley"])
        return m


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
