import numpy as np
import pytest

from detectors import NumericSummary


def _batches(values, rng):
    cuts = np.sort(rng.choice(np.arange(1, values.size), size=7, replace=False))
    return np.split(values, cuts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_updates_match_numpy(seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(1e6, 3.0, 5000)  # large offset: naive sum-of-squares would lose precision
    values[rng.random(values.size) < 0.05] = np.nan
    summary = NumericSummary()
    for batch in _batches(values, rng):
        summary.update(batch)
    present = values[~np.isnan(values)]
    assert summary.count == present.size
    assert summary.missing == values.size - present.size
    assert summary.mean == pytest.approx(np.mean(present), rel=1e-12)
    assert summary.std == pytest.approx(np.std(present, ddof=1), rel=1e-9)
    assert summary.min == present.min() and summary.max == present.max()


def test_merge_equals_single_pass():
    rng = np.random.default_rng(4)
    a, b = rng.exponential(2.0, 300), rng.normal(-5, 1, 700)
    left, right, whole = NumericSummary(), NumericSummary(), NumericSummary()
    left.update(a)
    right.update(b)
    whole.update(np.r_[a, b])
    left += right
    assert left.count == whole.count
    assert left.mean == pytest.approx(whole.mean, rel=1e-12)
    assert left.variance == pytest.approx(whole.variance, rel=1e-12)
    assert (left.min, left.max) == (whole.min, whole.max)


def test_empty_and_all_missing():
    s = NumericSummary()
    s.update(np.array([np.nan, np.nan]))
    assert s.count == 0 and s.missing == 2
    assert np.isnan(s.mean) and np.isnan(s.std) and np.isnan(s.min)


def test_round_trip():
    s = NumericSummary()
    s.update(np.array([3.0, np.nan, -1.5, 8.25]))
    restored = NumericSummary.from_dict(s.to_dict())
    assert restored.to_dict() == s.to_dict()
    restored.update(np.array([2.0]))
    s.update(np.array([2.0]))
    assert restored.to_dict() == s.to_dict()


def test_values_added_one_by_one_equal_any_cut_into_updates_to_the_bit():
    import orjson

    rng = np.random.default_rng(11)
    values = rng.lognormal(0, 2, 1000)
    values[rng.random(1000) < 0.1] = np.nan
    whole, one_by_one, cut = NumericSummary(), NumericSummary(), NumericSummary()
    whole.update(values)
    for v in values.tolist():
        one_by_one.add(v)
    for chunk in np.split(values, [1, 2, 70, 71, 300, 999]):
        cut.update(chunk)
    assert orjson.dumps(one_by_one.to_dict()) == orjson.dumps(whole.to_dict()) == orjson.dumps(cut.to_dict())
    present = values[~np.isnan(values)]
    assert whole.count == present.size and whole.missing == values.size - present.size
    np.testing.assert_allclose([whole.mean, whole.variance], [present.mean(), present.var(ddof=1)], rtol=1e-12)
