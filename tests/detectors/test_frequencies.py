from collections import Counter

import numpy as np
import pytest

from detectors import CategoryFrequencies


def test_counts_match_counter():
    rng = np.random.default_rng(0)
    values = list(rng.choice(["a", "b", "c", "d"], size=1000)) + [None] * 7 + [True, False, True]
    f = CategoryFrequencies()
    f.update(values[:500])
    f.update(values[500:])
    expected = Counter(v for v in values if v is not None and not isinstance(v, bool))
    expected.update({"true": 2, "false": 1})
    assert f.frequencies == dict(expected)
    assert f.missing == 7
    assert f.count == len(values) - 7


def test_cap_pools_the_rest():
    f = CategoryFrequencies(max_categories=3)
    f.update([str(i) for i in range(10)])
    assert f.frequencies == {"0": 1, "1": 1, "2": 1, "__other__": 7}
    assert f.count == 10


def test_merge_and_round_trip():
    a, b = CategoryFrequencies(), CategoryFrequencies()
    a.update(["x", "y", None])
    b.update(["y", "z"])
    a += b
    assert a.frequencies == {"x": 1, "y": 2, "z": 1} and a.missing == 1
    assert CategoryFrequencies.from_dict(a.to_dict()).to_dict() == a.to_dict()


def test_bad_argument():
    with pytest.raises(ValueError):
        CategoryFrequencies(max_categories=0)
