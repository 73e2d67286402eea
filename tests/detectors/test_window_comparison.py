import numpy as np
import orjson
import pytest

from detectors.window_comparison import FeatureWindowTest
from tests.detectors.synthetic import ar1

ALPHA = 1e-6


def _significant(findings):
    return sorted({f.test for f in findings if f.p_value < ALPHA})




def test_quiet_on_the_reference_distribution():
    rng = np.random.default_rng(0)
    test = FeatureWindowTest.from_reference("numeric", rng.normal(0, 1, 20000))
    assert _significant(test.update(rng.normal(0, 1, 200_000))) == []


def test_autocorrelation_is_calibrated_away():
    rng = np.random.default_rng(1)
    test = FeatureWindowTest.from_reference("numeric", ar1(rng, 20000))
    assert test.to_dict()["reference"]["inflation"] > 1.5
    assert _significant(test.update(ar1(rng, 200_000))) == []


def test_variance_doubling_and_missing_values():
    rng = np.random.default_rng(2)
    test = FeatureWindowTest.from_reference("numeric", rng.normal(0, 1, 20000))
    assert "chi_square" in _significant(test.update(rng.normal(0, np.sqrt(2), 500)))
    values = rng.normal(0, 1, 500)
    values[:100] = np.nan
    assert _significant(test.update(values)) == ["missing_rate"]


def test_categorical_shift_and_new_category():
    rng = np.random.default_rng(3)
    cats = np.array(["a", "b", "c", "d"])
    test = FeatureWindowTest.from_reference("categorical", list(rng.choice(cats, 20000, p=[.4, .3, .2, .1])))
    assert _significant(test.update(list(rng.choice(cats, 500, p=[.4, .3, .2, .1])))) == []
    assert "chi_square" in _significant(test.update(list(rng.choice(cats, 500, p=[.25, .25, .25, .25]))))
    new = list(rng.choice(cats, 500, p=[.4, .3, .2, .1]))
    new[:30] = ["e"] * 30
    assert "unseen_category" in _significant(test.update(new))


def test_without_reference_the_first_windows_become_one():
    rng = np.random.default_rng(4)
    test = FeatureWindowTest("numeric", window_size=500, edge_events=2000, baseline_windows=8)
    assert test.update(rng.normal(5, 1, 6000)) == [] and test.ready
    assert _significant(test.update(rng.normal(5, 1, 50_000))) == []
    assert "chi_square" in _significant(test.update(rng.normal(5, 2, 500)))


def test_batching_and_save_restore_change_nothing():
    rng = np.random.default_rng(5)
    values = np.r_[rng.normal(0, 1, 9000), rng.normal(0, 1.5, 3000)]
    values[rng.random(values.size) < 0.05] = np.nan

    def run(chunks, restore):
        test, out, offset = FeatureWindowTest("numeric"), [], 0
        for chunk in np.array_split(values, chunks):
            if restore:
                test = FeatureWindowTest.from_dict(orjson.loads(orjson.dumps(test.to_dict())))
            out += [(f.test, f.position + offset, round(f.statistic, 9)) for f in test.update(chunk)]
            offset += chunk.size
        return out

    whole = run(1, False)
    assert whole and run(37, True) == whole


def test_bad_arguments():
    with pytest.raises(ValueError):
        FeatureWindowTest("text")
    with pytest.raises(ValueError):
        FeatureWindowTest("numeric", window_size=5)
