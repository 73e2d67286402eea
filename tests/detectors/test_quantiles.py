import numpy as np
import pytest

from detectors import QuantileSketch

QS = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]


def _check_relative_error(sketch, values, alpha):
    ordered = np.sort(values)
    for q in QS:
        estimate = sketch.quantile(q)
        # The sketch returns a value within alpha of the item of rank floor(q*(n-1)) or the next one.
        lo = ordered[int(np.floor(q * (values.size - 1)))]
        hi = ordered[int(np.ceil(q * (values.size - 1)))]
        tol = alpha * max(abs(lo), abs(hi)) + 1e-12
        assert lo - tol <= estimate <= hi + tol, (q, estimate, lo, hi)


@pytest.mark.parametrize("make", [
    lambda r: r.lognormal(0, 2, 20000),
    lambda r: r.normal(0, 10, 20000),
    lambda r: -r.exponential(5, 20000),
    lambda r: np.r_[np.zeros(500), r.normal(3, 1, 5000)],
])
def test_quantiles_within_relative_error(make):
    values = make(np.random.default_rng(1))
    sketch = QuantileSketch(alpha=0.01)
    for chunk in np.array_split(values, 13):
        sketch.update(chunk)
    assert sketch.count == values.size
    _check_relative_error(sketch, values, 0.01)


def test_merge_is_exact_and_round_trips():
    rng = np.random.default_rng(2)
    a, b = rng.normal(5, 2, 3000), rng.normal(-5, 2, 3000)
    left, right, whole = QuantileSketch(), QuantileSketch(), QuantileSketch()
    left.update(a)
    right.update(b)
    whole.update(np.r_[a, b])
    left += right
    assert left.to_dict() == whole.to_dict()
    assert QuantileSketch.from_dict(left.to_dict()).to_dict() == left.to_dict()


def test_nan_ignored_and_empty_is_nan():
    sketch = QuantileSketch()
    assert np.isnan(sketch.quantile(0.5))
    sketch.update(np.array([np.nan, 1.0, np.inf]))
    assert sketch.count == 1


def test_bucket_cap_keeps_upper_quantiles():
    values = np.logspace(-8, 8, 50000)
    sketch = QuantileSketch(alpha=0.01, max_buckets=64)
    sketch.update(values)
    assert len(sketch.to_dict()["positive"]["counts"]) <= 64
    assert sketch.quantile(0.99) == pytest.approx(np.quantile(values, 0.99), rel=0.02)


def test_bad_arguments():
    for kwargs in ({"alpha": 0}, {"alpha": 1.5}, {"max_buckets": 2}, {"min_value": 0}):
        with pytest.raises(ValueError):
            QuantileSketch(**kwargs)
    with pytest.raises(ValueError):
        QuantileSketch().quantile(1.5)
