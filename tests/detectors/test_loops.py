"""The detectors' inner loops, taken out of per-value and per-block calls for speed, against the per-block code
they replaced (kept here as the oracle): the same findings, and the same saved state, bit for bit.

Each oracle is the code as it was, run on the same inputs; a differing bit anywhere (a statistic, a position, a
saved float) fails the test. The chi-square statistic is also checked against scipy's.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import orjson
import pytest
from scipy import stats

from detectors.cusum import Cusum
from detectors.distances import chi_square_homogeneity
from detectors.feature_monitor import Firing, NumericDriftMonitor
from detectors.frequencies import category_keys
from detectors.moments import BLOCK, NumericSummary
from detectors.online import AdwinDetector
from detectors.quantiles import QuantileSketch
from detectors.window_comparison import FeatureWindowTest


def _bits(x) -> bytes:
    return orjson.dumps(x, option=orjson.OPT_SERIALIZE_NUMPY)


# -- CUSUM and ADWIN: a run of values against one update per value -----------------------------------------------
@pytest.mark.parametrize("seed", range(40))
def test_cusum_run_is_update_per_value(seed):
    rng = np.random.default_rng(seed)
    xs = (rng.normal(0, 1, 400) + np.where(np.arange(400) > rng.integers(0, 400), rng.normal(0, 3), 0)).tolist()
    xs[int(rng.integers(0, 400))] = -0.0
    k, h = float(rng.uniform(0.1, 1.5)), float(rng.uniform(1, 20))
    fast, slow = Cusum(k, h), Cusum(k, h)
    start = 0
    while start < len(xs):
        fired = fast.run(xs[start:])
        expected = next((i for i, x in enumerate(xs[start:]) if slow.update(x)), None)
        assert fired == expected
        assert _bits(fast.to_dict()) == _bits(slow.to_dict())
        assert (fast.statistic, fast.direction) == (slow.statistic, slow.direction)
        start = len(xs) if fired is None else start + fired + 1


def test_cusum_run_of_nothing_changes_nothing():
    c = Cusum(0.5, 5.0)
    c.update(2.0)
    before = (c.to_dict(), c.direction)
    assert c.run([]) is None
    assert (c.to_dict(), c.direction) == before


@pytest.mark.parametrize("seed", range(20))
def test_adwin_run_is_update_per_value(seed):
    rng = np.random.default_rng(seed)
    xs = np.r_[rng.normal(0, 1, 300), rng.normal(rng.choice([0.0, 2.0]), 1, 300)].tolist()
    delta = float(rng.choice([0.5, 0.01, 1e-5]))
    fast, slow = AdwinDetector(delta=delta), AdwinDetector(delta=delta)
    start = 0
    while start < len(xs):
        stop = int(rng.integers(1, len(xs) - start + 1))
        fired = fast.run(xs[start:], stop)
        expected = next((i for i in range(stop) if slow.update(xs[start + i])), None)
        assert fired == expected
        assert fast.to_dict() == slow.to_dict() and fast.estimation == slow.estimation
        start += stop if fired is None else fired + 1


# -- NumericDriftMonitor: all blocks of an update at once, against one block at a time -------------------------------
class _BlockAtATime(NumericDriftMonitor):
    """The monitor as it was: each block through every detector in turn (the oracle)."""

    def _detect(self, means, ends, positions, firings):
        for i, mean in enumerate(means):
            if self._detect_one(mean, int(positions[ends[i]]), self._seen + ends[i] + 1, firings):
                return i
        return None

    def _detect_one(self, block_mean, position, seen, firings) -> bool:
        signal = (block_mean - self._mean) / self._block_sd
        shift = (block_mean - self._mean) / self._value_sd
        self._recent += self._recent_weight * (signal - self._recent)
        recent_shift = self._recent * self._block_sd / self._value_sd
        if abs(self._recent) > 3 * self._recent_sd and abs(recent_shift) > self.design_shift / 4:
            self.last_shifted_position, self.last_shifted_direction = position, 1 if self._recent > 0 else -1
            self.shifted_positions.append(position)
        fired = []
        if "cusum" in self.detectors and self._cusum.update(signal):
            fired.append(Firing("cusum", self._cusum.statistic, self._h, position, seen, shift,
                                self._cusum.direction))
        if "adwin" in self.detectors and self._adwin.update(signal):
            fired.append(Firing("adwin", abs(self._adwin.estimation), self.adwin_delta, position, seen, shift,
                                1 if self._adwin.estimation >= 0 else -1))
        if "page_hinkley" in self.detectors and self._ph.update(signal):
            fired.append(Firing("page_hinkley", self._ph.statistic, self.ph_threshold, position, seen, shift,
                                1 if shift >= 0 else -1))
        if fired:
            firings.extend(fired)
            self._fresh_detectors()
        return bool(fired)


_COMBOS = [("cusum",), ("adwin",), ("page_hinkley",), ("cusum", "adwin"), ("cusum", "adwin", "page_hinkley"),
           ("adwin", "page_hinkley")]


@pytest.mark.parametrize("seed", range(36))
def test_monitor_blocks_at_once_are_blocks_one_by_one(seed):
    rng = np.random.default_rng(seed)
    n = 15000
    x = rng.normal(0, 1, n)
    for at in sorted(rng.integers(0, n, 4)):
        x[at:] += rng.normal(0, 1.5)
    x[rng.random(n) < 0.05] = np.nan
    params = dict(block_size=int(rng.choice([1, 5, 20])), pilot_size=200, baseline_blocks=20,
                  detectors=_COMBOS[seed % len(_COMBOS)], adwin_delta=float(rng.choice([1e-5, 0.01, 0.2])),
                  ph_threshold=float(rng.choice([5.0, 25.0])), rebaseline=bool(seed % 3),
                  design_shift=float(rng.choice([0.25, 0.5, 1.0])))
    fast, slow = NumericDriftMonitor(**params), _BlockAtATime(**params)
    fired = 0
    i = 0
    while i < n:
        k = int(rng.choice([1, 3, 50, 700, 5000]))
        a, b = fast.update(x[i:i + k]), slow.update(x[i:i + k])
        i += k
        assert _bits([f.__dict__ for f in a]) == _bits([f.__dict__ for f in b])
        assert (fast.last_shifted_position, fast.last_shifted_direction, fast.shifted_positions) == \
            (slow.last_shifted_position, slow.last_shifted_direction, slow.shifted_positions)
        assert _bits(fast.to_dict()) == _bits(slow.to_dict())
        fired += len(a)
    assert fired > 0  # the streams shift: the comparison covered firings


# -- NumericSummary: blocks merged in one loop, against one _combine per block --------------------------------------
@pytest.mark.parametrize("seed", range(20))
def test_summary_blocks_merged_at_once_are_blocks_one_by_one(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.uniform(-1e6, 1e6), rng.uniform(1e-3, 1e3), 5000)
    x[rng.random(x.size) < 0.05] = np.nan
    x[rng.random(x.size) < 0.02] = 0.0
    x[rng.random(x.size) < 0.02] = -0.0
    fast = NumericSummary()
    oracle = NumericSummary()
    i = 0
    while i < x.size:
        k = int(rng.choice([1, 7, BLOCK, 500, 3000]))
        fast.update(x[i:i + k])
        _update_block_by_block(oracle, x[i:i + k])
        i += k
        assert _bits(fast.to_dict()) == _bits(oracle.to_dict())
        assert math.copysign(1, fast.min) == math.copysign(1, oracle.min)


def _update_block_by_block(s: NumericSummary, values) -> None:
    present = values[~np.isnan(values)]
    s._missing += int(values.size - present.size)
    if present.size == 0:
        return
    if s._open:
        present = np.concatenate([np.array(s._open), present])
    whole = present.size // BLOCK * BLOCK
    if whole:
        blocks = present[:whole].reshape(-1, BLOCK)
        means = blocks.mean(axis=1)
        m2s = np.square(blocks - means[:, None]).sum(axis=1)
        for mean, m2, lo, hi in zip(means.tolist(), m2s.tolist(), blocks.min(axis=1).tolist(),
                                    blocks.max(axis=1).tolist()):
            s._combine(BLOCK, mean, m2, lo, hi)
    s._open = present[whole:].tolist()


# -- QuantileSketch: positive values counted without splitting by sign, against the split -----------------------------
@pytest.mark.parametrize("seed", range(20))
def test_sketch_of_positive_values_counts_as_the_split_by_sign(seed):
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-12, 12)
    x = rng.lognormal(0, rng.uniform(0.1, 8), 6000) * scale
    for odd, share in ((np.nan, 0.01), (np.inf, 0.002), (-np.inf, 0.002), (0.0, 0.01), (-0.0, 0.01),
                       (5e-10, 0.01), (-3.0, 0.01), (1e-9, 0.01)):  # 1e-9 is min_value: not zero
        x[rng.random(x.size) < share * rng.integers(0, 2)] = odd
    fast = QuantileSketch(max_buckets=int(rng.choice([8, 64, 2048])))
    oracle = QuantileSketch(max_buckets=fast.max_buckets)
    i = 0
    while i < x.size:
        k = int(rng.choice([1, 2, 9, 100, 1000]))
        fast.update(x[i:i + k])
        _sketch_update_split_by_sign(oracle, x[i:i + k])
        i += k
        assert _bits(fast.to_dict()) == _bits(oracle.to_dict())
    assert fast.count == oracle.count > 0


def test_sketch_takes_scalars_grids_and_views_against_the_grain_as_the_split_by_sign():
    # a reversed view takes numpy's scalar log, which can differ from its vectorised one in the last bit: this
    # value sits where that moves it to the next bucket
    edge = np.array([1.0, 1.2120113842591075e+27])[::-1][:1]
    for values in (np.float64(2.5), 5.0, np.array(7.0), np.ones((2, 3)), np.arange(1.0, 50.0)[::-1], edge,
                   np.arange(1.0, 50.0)[::-3], np.array([[1.0, np.nan], [-2.0, 1e-12]]), np.float32([3.0, 1e-3])):
        fast, oracle = QuantileSketch(), QuantileSketch()
        fast.update(values)
        _sketch_update_split_by_sign(oracle, np.ravel(values))
        assert _bits(fast.to_dict()) == _bits(oracle.to_dict()), values
        assert fast.count == np.count_nonzero(np.isfinite(values))


def _sketch_update_split_by_sign(sketch: QuantileSketch, values) -> None:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    magnitude = np.abs(values)
    small = magnitude < sketch.min_value
    sketch._zero += int(small.sum())
    for buckets, part in ((sketch._positive, magnitude[(values > 0) & ~small]),
                          (sketch._negative, magnitude[(values < 0) & ~small])):
        if part.size:
            keys = np.ceil(np.log(part) / sketch._log_gamma).astype(np.int64)
            lo = int(keys.min())
            buckets.add(lo, np.bincount(keys - lo))
            buckets.collapse(sketch.max_buckets)


# -- chi-square: cell by cell, against the whole table ----------------------------------------------------------------
def _chi_square_table(reference, window):
    table = np.vstack([np.asarray(reference, dtype=np.float64), np.asarray(window, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[1].sum() == 0 or table[0].sum() == 0:
        return 0.0, max(table.shape[1] - 1, 1)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(np.sum((table - expected) ** 2 / expected)), table.shape[1] - 1


def test_chi_square_is_the_whole_tables_bit_for_bit_and_scipys():
    rng = np.random.default_rng(0)
    for i in range(20000):
        bins = int(rng.integers(1, 60)) if i % 10 else int(rng.integers(60, 300))  # the largest: numpy's table
        lam = float(rng.choice([0.3, 3, 50, 5000]))
        r, w = rng.poisson(lam, bins), rng.poisson(lam * rng.random(), bins)
        if i % 3 == 0:
            r[rng.random(bins) < 0.3] = 0
            w[rng.random(bins) < 0.3] = 0
        args = (r, w) if i % 2 else (r.tolist(), w.tolist())
        got, expected = chi_square_homogeneity(*args), _chi_square_table(*args)
        assert got[1] == expected[1] and np.float64(got[0]).tobytes() == np.float64(expected[0]).tobytes()
        table = np.array([r, w])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] >= 2 and table.sum(axis=1).all():
            scipy_stat = stats.chi2_contingency(table, correction=False).statistic
            assert got[0] == pytest.approx(scipy_stat, rel=1e-9, abs=1e-9)


def test_chi_square_refuses_counts_over_other_bins():
    with pytest.raises(ValueError, match="same bins"):
        chi_square_homogeneity([1, 2, 3], [4, 5])


def test_a_monitor_that_fires_often_works_per_block_not_per_remaining_value(monkeypatch):
    """After each firing the rest of an update is fed again: CUSUM must not go over all of it each time (that
    made a drifting stream quadratic in the update's length)."""
    scanned = []
    run = Cusum.run

    def counting(self, xs):
        scanned.append(len(xs))
        return run(self, xs)

    monkeypatch.setattr(Cusum, "run", counting)
    rng = np.random.default_rng(3)
    monitor = NumericDriftMonitor.from_reference(rng.normal(0, 1, 5000), block_size=1, detectors=("cusum",),
                                                 arl0_blocks=2)
    n = 50_000
    firings = monitor.update(rng.normal(2.0, 1, n))
    assert len(firings) > 1000
    assert sum(scanned) <= 512 * (len(firings) + 1) + n  # the whole rest each time: about n * firings / 2


# -- FeatureWindowTest: every value binned once, against each window's slice binned on its own -----------------------
class _SliceBySlice(FeatureWindowTest):
    """The window test as it was: each slice of a window binned and checked on its own (the oracle)."""

    def update(self, values):
        n = len(values)
        start, findings = 0, []
        self.binned_from = 0 if self._phase != "edges" else None
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
            take = min(self.window_size - self._window["total"], n - start)
            self._add_to_window(values[start:start + take])
            self._seen += take
            start += take
            if self._window["total"] == self.window_size:
                if self._phase == "baseline":
                    w = self._window
                    self._baseline.append(w["counts"].tolist() + [w["missing"], w["total"]])
                    if len(self._baseline) >= self.baseline_windows:
                        self._finish_reference(self._baseline, np.sum(np.asarray(self._baseline), axis=0).tolist())
                else:
                    findings += self._test_window(start - 1)
                self._window = self._empty_window()
        self.binned_counts = None if self.binned_from is None else \
            np.bincount(self._indices(values[self.binned_from:])[0], minlength=self._n_bins())
        return findings

    def _indices(self, values):
        if self.kind == "numeric":
            values = np.asarray(values, dtype=np.float64)
            present = values[~np.isnan(values)]
            return np.searchsorted(np.asarray(self._edges), present, side="right"), present, values.size - present.size
        lookup = {c: i for i, c in enumerate(self._categories)}
        keys = [k for k in category_keys(values) if k is not None]
        idx = np.fromiter(map(lookup.get, keys, itertools.repeat(len(self._categories))), dtype=np.int64,
                          count=len(keys))
        return idx, keys, len(values) - len(keys)

    def _bin_index(self, values):
        idx, present, missing = self._indices(values)
        if self.kind == "numeric":
            odd = int(np.count_nonzero((present < self._edge_range[0]) | (present > self._edge_range[1])))
        else:
            known = self._edge_counts if self._phase != "testing" else None
            binned = set(self._categories)
            odd = sum(1 for k in present if k not in binned and (known is None or k not in known))
        return np.bincount(idx, minlength=self._n_bins()), int(missing), odd

    def _add_to_window(self, values) -> None:
        if self._phase == "baseline" and self.kind == "numeric":
            values = np.asarray(values, dtype=np.float64)
            self._widen_range(values[~np.isnan(values)])
        counts, missing, odd = self._bin_index(values)
        w = self._window
        w["counts"] = counts if w["counts"] is None else w["counts"] + counts
        w["missing"] += missing
        w["total"] += len(values)
        w["outside" if self.kind == "numeric" else "unseen"] += odd


def _window_stream(seed: int, n: int):
    rng = np.random.default_rng(seed)
    if seed % 2:
        cardinality = int(rng.choice([3, 40, 80, 400]))
        z = rng.zipf(1.3, n) % cardinality
        later = np.arange(n) > n // 2
        z[later] = (z[later] + rng.integers(0, cardinality // 2 + 1)) % (cardinality + 20)
        values = [None if rng.random() < 0.05 else ("L" * 200 + str(v)) if v % 17 == 5 else True if v == 1 else str(v)
                  for v in z]
        return "categorical", values, rng
    x = rng.normal(0, 1, n)
    x[n // 2:] *= rng.choice([1.0, 3.0])
    x[rng.random(n) < 0.05] = np.nan
    return "numeric", x, rng


@pytest.mark.parametrize("seed", range(30))
def test_window_test_binning_once_is_binning_each_slice(seed):
    kind, values, rng = _window_stream(seed, 8000)
    params = dict(window_size=int(rng.choice([50, 500])), edge_events=int(rng.choice([50, 1000])),
                  baseline_windows=int(rng.choice([2, 5])))
    if kind == "categorical":
        params["max_categories"] = int(rng.choice([5, 50]))
    fast, slow = FeatureWindowTest(kind, **params), _SliceBySlice(kind, **params)
    i = 0
    while i < len(values):
        k = int(rng.choice([1, 3, 50, 700, 5000]))
        a, b = fast.update(values[i:i + k]), slow.update(values[i:i + k])
        i += k
        assert _bits([f.__dict__ for f in a]) == _bits([f.__dict__ for f in b])
        assert fast.binned_from == slow.binned_from
        assert _bits(fast.binned_counts) == _bits(slow.binned_counts)
        assert _bits(fast.to_dict()) == _bits(slow.to_dict())
    assert fast.ready


def test_window_counts_are_numpys_histogram_of_the_values_binned():
    """Independent of either code: the counts from the event the bins were fixed at are numpy's histogram."""
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 3000)
    x[rng.random(x.size) < 0.1] = np.nan
    test = FeatureWindowTest("numeric", window_size=100, edge_events=1000, baseline_windows=2)
    test.update(x[:700])
    assert test.binned_counts is None
    test.update(x[700:2500])
    assert test.binned_from == 300
    later = x[1000:2500]
    later = later[~np.isnan(later)]
    edges = np.asarray(test.edges)
    expected = np.bincount(np.searchsorted(edges, later, side="right"), minlength=edges.size + 1)
    assert test.binned_counts.tolist() == expected.tolist()
    test.update(x[2500:2500])
    assert test.binned_counts.tolist() == [0] * (edges.size + 1)
