"""Tumbling-window tests of one feature against its reference: distribution and data quality."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from detectors.distances import (binned_ks, binned_wasserstein, binomial_sf, chi_square_homogeneity, chi_square_sf,
                                 jensen_shannon, population_stability_index)
from detectors.frequencies import category_keys
from detectors.online import StateVersionError
from detectors.quantiles import QuantileSketch

__all__ = ["FeatureWindowTest", "WindowFinding"]

_FORMAT = "driftline.window_test/1"
EVIDENCE_BELOW = 0.01
"""PSI, Jensen-Shannon, KS and Wasserstein are computed only for windows whose p-value is below this: they
are evidence for alerts, and no alert threshold is that high (1% of quiet windows pay for them)."""
NUMERIC, CATEGORICAL = "numeric", "categorical"


@dataclass(frozen=True)
class WindowFinding:
    """One test of one completed window; the caller decides significance across the model."""

    test: str            # chi_square | missing_rate | out_of_range | unseen_category
    alert_type: str      # drift | data_quality
    statistic: float
    p_value: float
    position: int        # index, in the batch given to update, of the window's last value
    evidence: dict


class FeatureWindowTest:
    """Compares each tumbling window of ``window_size`` events with a reference.

    Numeric values are binned at the reference's quantiles (``bins``
    equiprobable bins), categories by name (the reference's most frequent
    ``max_categories``, the rest pooled). Per window:

    - ``chi_square``: Pearson's homogeneity test of window vs reference
      counts. Its p-value is calibrated by an inflation factor measured on the
      reference itself: the reference is cut into windows of the same size and
      each is tested against the rest; the mean statistic over its degrees of
      freedom (at least 1, raised by its standard error) divides the
      statistic. Autocorrelated data, whose windows vary more than
      independent draws, thus raise no extra alarms. With reference data in
      hand, the factor is also computed from the autocorrelation of each
      bin's indicator over the whole reference (a design effect), and the
      larger of the two is used. PSI, Jensen-Shannon and binned KS come along
      as evidence.
    - ``missing_rate``: binomial test of the window's missing count against
      the reference's missing rate.
    - ``out_of_range`` (numeric): values outside the reference's [min, max],
      against the 2 / (n + 1) chance of an exchangeable new value.
    - ``unseen_category`` (categorical): values of categories the reference
      never had, against the Good-Turing estimate of unseen mass.

    Without a reference (``from_reference`` not used), the feature's own first
    events make one: ``edge_events`` events fix the bins, the next
    ``baseline_windows`` windows give the counts and the calibration.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> test = FeatureWindowTest.from_reference("numeric", rng.normal(0, 1, 20000), window_size=500)
    >>> [f.test for f in test.update(rng.normal(0, 1, 500)) if f.p_value < 1e-6]
    []
    >>> [f.test for f in test.update(rng.normal(0, 2, 500)) if f.p_value < 1e-6]
    ['chi_square', 'out_of_range']
    """

    def __init__(self, kind: str, window_size: int = 500, bins: int = 10, edge_events: int = 2000,
                 baseline_windows: int = 8, max_categories: int = 50) -> None:
        if kind not in (NUMERIC, CATEGORICAL):
            raise ValueError(f"kind must be numeric or categorical, got {kind!r}")
        if window_size < 20 or bins < 2 or edge_events < bins or baseline_windows < 2 or max_categories < 1:
            raise ValueError("window_size >= 20, bins >= 2, edge_events >= bins, baseline_windows >= 2, "
                             "max_categories >= 1")
        self.kind = kind
        self.window_size = window_size
        self.bins = bins
        self.edge_events = edge_events
        self.baseline_windows = baseline_windows
        self.max_categories = max_categories
        self._phase = "edges"
        self._seen = 0
        self._sketch = QuantileSketch(alpha=0.005)   # numeric, edges phase
        self._edge_counts: dict[str, int] = {}       # categorical, edges phase
        self._edge_range = [math.inf, -math.inf]
        self._range_n = 0                            # present values the range was taken over
        self._edges: list[float] = []
        self._categories: list[str] = []
        self.binned_from: int | None = None
        self.binned_counts: np.ndarray | None = None
        self._baseline: list[list[int]] = []         # per baseline window: counts..., missing, total
        self._reference: dict = {}
        self._window = self._empty_window()
        self._last_p: float | None = None

    # -- reference -------------------------------------------------------------------------------------------
    @classmethod
    def from_reference(cls, kind: str, values, window_size: int = 500, bins: int = 10,
                       max_categories: int = 50) -> FeatureWindowTest:
        """Scenario I: bins, counts and calibration from reference data, in its original order."""
        test = cls(kind, window_size=window_size, bins=bins, max_categories=max_categories)
        if kind == NUMERIC:
            values = np.asarray(values, dtype=np.float64)
            present = values[~np.isnan(values)]
            if present.size < bins:
                raise ValueError(f"a numeric reference needs at least {bins} present values")
            test._edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])).tolist()
            test._edge_range = [float(present.min()), float(present.max())]
            test._range_n = int(present.size)
        else:
            values = category_keys(values)
            counts: dict[str, int] = {}
            for v in values:
                if v is not None:
                    counts[v] = counts.get(v, 0) + 1
            test._edge_counts = counts
            test._categories = sorted(counts, key=lambda c: (-counts[c], c))[:max_categories]
        windows = [test._count(values[i:i + window_size]) for i in range(0, len(values), window_size)]
        full = [w for w in windows if w[-1] == window_size] or windows
        test._finish_reference(full, sum(np.asarray(w) for w in windows).tolist(),
                               design_effect=test._design_effect(values))
        return test

    def _design_effect(self, values, max_lag: int = 50) -> float:
        """Expected chi-square inflation of dependent data, from the reference's bin autocorrelations.

        A bin's count over a window of n has variance n p (1 - p) (1 + 2 sum_k rho(k)); the chi-square
        statistic's mean grows by the (1 - p)-weighted average of those factors. Lags are Bartlett-weighted.
        """
        idx, _ = self._bins(values)
        idx = idx[idx != self._n_bins()]  # the present values' bins
        n, bins = idx.size, self._n_bins()
        if n < 4 * max_lag:
            return 1.0
        p = np.bincount(idx, minlength=bins) / n
        var = p * (1 - p)
        factor = np.ones(bins)
        for k in range(1, max_lag + 1):
            same = idx[:-k][idx[:-k] == idx[k:]]
            joint = np.bincount(same, minlength=bins) / (n - k)
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = np.where(var > 0, (joint - p * p) / var, 0.0)
            factor += 2 * (1 - k / (max_lag + 1)) * rho
        weights = 1 - p
        return float(max(1.0, np.sum(weights * factor) / np.sum(weights)))

    def _finish_reference(self, windows: list[list[int]], total: list[int], design_effect: float = 1.0) -> None:
        counts = np.asarray(total[:-2], dtype=np.int64)
        missing, n_total = total[-2], total[-1]
        present = int(counts.sum())
        stats = []
        for w in windows:
            w = np.asarray(w)
            stat, dof = chi_square_homogeneity(counts - w[:-2], w[:-2])
            stats.append((stat, dof))
        dof = max(np.mean([d for _, d in stats]) if stats else 1.0, 1.0)
        ratio = float(np.mean([s / d for s, d in stats])) if stats else 1.0
        # upper confidence bound of the inflation: chi2/dof has relative sd sqrt(2/dof)
        inflation = max(1.0, ratio) * (1.0 + 2.0 * math.sqrt(2.0 / dof) / math.sqrt(max(len(stats), 1)))
        inflation = max(inflation, design_effect)
        singletons = sum(1 for c in self._edge_counts.values() if c == 1) if self.kind == CATEGORICAL else 0
        self._reference = {
            "counts": counts.tolist(), "missing": int(missing), "total": int(n_total), "present": present,
            "inflation": inflation, "min": self._edge_range[0], "max": self._edge_range[1],
            "range_n": self._range_n,
            "unseen_rate": (singletons + 0.5) / (present + 1.0),
        }
        self._phase = "testing"
        self._sketch = QuantileSketch(alpha=0.005)
        self._edge_counts = {}
        self._baseline = []

    @property
    def ready(self) -> bool:
        return self._phase == "testing"

    @property
    def categories(self) -> list[str]:
        """A categorical column's known categories, most frequent first (empty until they are fixed)."""
        return list(self._categories)

    @property
    def last_p_value(self) -> float | None:
        """p-value of the last completed window's distribution test."""
        return self._last_p

    @property
    def edges(self) -> list[float]:
        """A numeric column's inner bin edges (empty until they are fixed): bins are (-inf, e0], ..., (ek, inf)."""
        return list(self._edges)

    @property
    def reference(self) -> dict | None:
        """The reference counts (``counts`` per bin, ``missing``, ``total``, ``min``, ``max``), once testing."""
        return self._reference if self._phase == "testing" else None

    @property
    def edge_events_left(self) -> int:
        """Values still to be seen before the bins are fixed (0 once they are)."""
        return max(self.edge_events - self._seen, 0) if self._phase == "edges" else 0

    # -- counting --------------------------------------------------------------------------------------------
    def _n_bins(self) -> int:
        return len(self._edges) + 1 if self.kind == NUMERIC else len(self._categories) + 1

    def _empty_window(self) -> dict:
        return {"counts": None, "missing": 0, "total": 0, "outside": 0, "unseen": 0}

    def _bins(self, values) -> tuple[np.ndarray, np.ndarray | list]:
        """Each value's bin, missing ones in an extra last bin; and the values as binned (floats or category
        keys)."""
        missing_bin = self._n_bins()
        if self.kind == NUMERIC:
            values = np.asarray(values, dtype=np.float64)
            bins = np.searchsorted(np.asarray(self._edges), values, side="right")
            bins[np.isnan(values)] = missing_bin
            return bins, values
        lookup = {c: i for i, c in enumerate(self._categories)}
        lookup[None] = missing_bin  # no category key is None
        keys = category_keys(values)
        return np.fromiter(map(lookup.get, keys, itertools.repeat(len(self._categories))), dtype=np.int64,
                           count=len(keys)), keys

    def _count(self, values) -> list[int]:
        """Counts per bin, the missing count and the number of values."""
        both = np.bincount(self._bins(values)[0], minlength=self._n_bins() + 1)
        return both[:-1].tolist() + [int(both[-1]), len(values)]

    # -- streaming -------------------------------------------------------------------------------------------
    def update(self, values) -> list[WindowFinding]:
        """Values of consecutive events (NaN or None for missing); findings of every window completed.
        ``binned_from`` is then the first of these values counted on fixed bins (None: none was), and
        ``binned_counts`` their counts on those bins (None: none was)."""
        n = len(values)
        start, findings = 0, []
        self.binned_from = 0 if self._phase != "edges" else None
        self.binned_counts = None
        binned_phase, binned_at, bins, odd = None, 0, None, None
        while start < n:
            if self._phase == "edges":
                take = min(self.edge_events - self._seen, n - start)
                self._collect_edges(values[start:start + take])
                self._seen += take
                start += take
                if self._seen >= self.edge_events:
                    self._fix_bins()
                    self.binned_from = start if self._phase != "edges" else None
                continue
            if binned_phase != self._phase:  # the bins are fixed: every value's bin at once, for the whole rest
                binned_phase, binned_at = self._phase, start
                bins, odd = self._binned(values[start:])
            take = min(self.window_size - self._window["total"], n - start)
            a, b = start - binned_at, start - binned_at + take
            counts = self._add_binned(values[start:start + take], bins[a:b], 0 if odd is None else
                                      int(np.count_nonzero(odd[a:b])))
            self.binned_counts = counts if self.binned_counts is None else self.binned_counts + counts
            self._seen += take
            start += take
            if self._window["total"] == self.window_size:
                if self._phase == "baseline":
                    w = self._window
                    self._baseline.append(w["counts"].tolist() + [w["missing"], w["total"]])
                    if len(self._baseline) >= self.baseline_windows:
                        total = np.sum(np.asarray(self._baseline), axis=0).tolist()
                        self._finish_reference(self._baseline, total)
                else:
                    findings += self._test_window(start - 1)
                self._window = self._empty_window()
        if self.binned_from is not None and self.binned_counts is None:  # bins fixed by the last value: none yet
            self.binned_counts = np.zeros(self._n_bins(), dtype=np.int64)
        return findings

    def _binned(self, values) -> tuple[np.ndarray, np.ndarray | None]:
        """Each value's bin (``_bins``) and, where the phase counts them, whether it is outside the reference range
        / an unseen category."""
        bins, values = self._bins(values)
        if self.kind == NUMERIC:
            # in the baseline the range is widened by each slice before it is checked: nothing lies outside
            return bins, None if self._phase == "baseline" else \
                (values < self._edge_range[0]) | (values > self._edge_range[1])
        other = len(self._categories)
        if self._phase == "testing":  # unseen: not a bin's category (the counts seen before the bins are gone)
            return bins, bins == other
        known = self._edge_counts
        odd = bins == other
        if odd.any():  # in the other bin: unseen unless it was counted while the bins were being fixed
            where = np.flatnonzero(odd)
            odd[where] = [values[i] not in known for i in where.tolist()]
        return bins, odd

    def _add_binned(self, values, bins: np.ndarray, odd: int) -> np.ndarray:
        """Add values to the open window, their bins known; returns the present values' counts."""
        if self._phase == "baseline" and self.kind == NUMERIC:
            values = np.asarray(values, dtype=np.float64)
            self._widen_range(values[~np.isnan(values)])
        both = np.bincount(bins, minlength=self._n_bins() + 1)
        counts, missing = both[:-1], int(both[-1])
        w = self._window
        w["counts"] = counts.copy() if w["counts"] is None else w["counts"] + counts  # binned_counts is not it
        w["missing"] += missing
        w["total"] += len(values)
        w["outside" if self.kind == NUMERIC else "unseen"] += odd
        return counts

    def _widen_range(self, present: np.ndarray) -> None:
        if present.size:
            self._edge_range = [min(self._edge_range[0], float(present.min())),
                                max(self._edge_range[1], float(present.max()))]
            self._range_n += int(present.size)

    def _collect_edges(self, values) -> None:
        if self.kind == NUMERIC:
            values = np.asarray(values, dtype=np.float64)
            present = values[~np.isnan(values)]
            self._sketch.update(present)
            self._widen_range(present)
        else:
            counts = self._edge_counts
            for k, n in Counter(k for k in category_keys(values) if k is not None).items():
                counts[k] = counts.get(k, 0) + n

    def _fix_bins(self) -> None:
        if self.kind == NUMERIC:
            if self._sketch.count < self.bins:
                self._seen = 0  # nearly all missing so far: keep collecting
                return
            qs = [self._sketch.quantile(q) for q in np.linspace(0, 1, self.bins + 1)[1:-1]]
            self._edges = sorted(set(qs))
        else:
            counts = self._edge_counts
            self._categories = sorted(counts, key=lambda c: (-counts[c], c))[: self.max_categories]
        self._phase = "baseline"

    def _test_window(self, position: int) -> list[WindowFinding]:
        ref, w = self._reference, self._window
        ref_counts = np.asarray(ref["counts"])
        findings = []
        present = int(w["counts"].sum())
        if present:
            stat, dof = chi_square_homogeneity(ref_counts, w["counts"])
            self._last_p = chi_square_sf(stat / ref["inflation"], dof)
            evidence = {"dof": dof, "inflation": round(ref["inflation"], 4), "window_events": w["total"]}
            if self._last_p < EVIDENCE_BELOW:
                evidence.update(psi=population_stability_index(ref_counts, w["counts"]),
                                jensen_shannon=jensen_shannon(ref_counts, w["counts"]),
                                ks=binned_ks(ref_counts, w["counts"]))
                if self.kind == NUMERIC:
                    evidence["wasserstein"] = binned_wasserstein(ref_counts, w["counts"], np.asarray(self._edges))
            findings.append(WindowFinding("chi_square", "drift", stat, self._last_p, position, evidence))
        c = ref["inflation"]  # dependent data: fewer effective events than counted
        p_missing = (ref["missing"] + 0.5) / (ref["total"] + 1.0)
        findings.append(WindowFinding(
            "missing_rate", "data_quality", w["missing"] / w["total"],
            _binomial_sf_effective(w["missing"], w["total"], p_missing, c), position,
            {"reference_rate": ref["missing"] / max(ref["total"], 1), "missing": w["missing"],
             "window_events": w["total"]}))
        if present and self.kind == NUMERIC:
            p_out = min(1.0, 2.0 / (ref["range_n"] + 1.0))
            findings.append(WindowFinding(
                "out_of_range", "data_quality", w["outside"] / present,
                _binomial_sf_effective(w["outside"], present, p_out, c),
                position, {"reference_min": ref["min"], "reference_max": ref["max"], "outside": w["outside"]}))
        elif present:
            findings.append(WindowFinding(
                "unseen_category", "data_quality", w["unseen"] / present,
                _binomial_sf_effective(w["unseen"], present, min(1.0, ref["unseen_rate"]), c), position,
                {"unseen": w["unseen"], "known_categories": len(self._categories)}))
        return findings

    # -- saved form ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        w = self._window
        return {
            "format": _FORMAT, "kind": self.kind,
            "params": {"window_size": self.window_size, "bins": self.bins, "edge_events": self.edge_events,
                       "baseline_windows": self.baseline_windows, "max_categories": self.max_categories},
            "phase": self._phase, "seen": self._seen, "sketch": self._sketch.to_dict(),
            "edge_counts": self._edge_counts, "edge_range": [_finite(x) for x in self._edge_range],
            "edges": self._edges, "categories": self._categories, "baseline": self._baseline,
            "range_n": self._range_n,
            "reference": self._reference, "last_p": self._last_p,
            "window": {**w, "counts": None if w["counts"] is None else w["counts"].tolist()},
        }

    @classmethod
    def from_dict(cls, state: dict) -> FeatureWindowTest:
        if state.get("format") != _FORMAT:
            raise StateVersionError(f"unknown window test state format {state.get('format')!r}")
        test = cls(state["kind"], **state["params"])
        test._phase, test._seen = state["phase"], int(state["seen"])
        test._sketch = QuantileSketch.from_dict(state["sketch"])
        test._edge_counts = {str(k): int(v) for k, v in state["edge_counts"].items()}
        lo, hi = state["edge_range"]
        test._edge_range = [math.inf if lo is None else lo, -math.inf if hi is None else hi]
        test._edges, test._categories = list(state["edges"]), list(state["categories"])
        test._range_n = int(state["range_n"])
        test._baseline = [list(map(int, w)) for w in state["baseline"]]
        test._reference = dict(state["reference"])
        test._last_p = state["last_p"]
        w = dict(state["window"])
        w["counts"] = None if w["counts"] is None else np.asarray(w["counts"], dtype=np.int64)
        test._window = w
        return test


def _binomial_sf_effective(k: int, n: int, p: float, inflation: float) -> float:
    """Binomial tail with counts scaled to an effective sample size of n / inflation."""
    return binomial_sf(int(k / inflation), max(1, round(n / inflation)), p)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
