"""Cutting events into typed columns: the C-speed paths give what a value-by-value reading gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.frequencies import category_key, category_keys
from detectors.model.columns import NUMBER_TYPES, ValueOutOfRange, numeric_column
from detectors.model.monitor import _feature_columns

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5), st.text(min_size=120, max_size=140))


def _numeric_by_value(column: list) -> tuple[list[float], list[int]]:
    """One value at a time: a number is itself, anything else is missing (and a mismatch unless it is null)."""
    values = [float(v) if type(v) in NUMBER_TYPES else float("nan") for v in column]
    mismatched = [i for i, v in enumerate(column) if v is not None and type(v) not in NUMBER_TYPES]
    return values, mismatched


@settings(max_examples=300, deadline=None)
@given(st.lists(scalars, max_size=40))
def test_numeric_column_reads_each_value_as_one_at_a_time_would(column):
    expected, mismatched = _numeric_by_value(column)
    if any(abs(v) > 1e15 for v in expected if v == v):
        with pytest.raises(ValueOutOfRange):
            numeric_column(column, 1e15)
        return
    values, found = numeric_column(column, 1e15)
    np.testing.assert_array_equal(values, np.array(expected, dtype=np.float64))
    assert found == mismatched


@settings(max_examples=300, deadline=None)
@given(st.lists(scalars, max_size=40))
def test_category_keys_are_each_values_key(column):
    assert category_keys(column) == [None if v is None else category_key(v) for v in column]


def test_short_strings_are_their_own_keys_and_a_long_one_is_shortened():
    assert category_keys(["rent", None, ""]) == ["rent", None, ""]
    keys = category_keys(["a", "x" * 129])
    assert keys[0] == "a" and keys[1] == category_key("x" * 129) and len(keys[1]) < 129


names = st.sampled_from(["a", "b", "c", "d"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(names, scalars, max_size=4), max_size=12), st.lists(names, unique=True, max_size=4),
       st.data())
def test_feature_columns_equal_a_lookup_per_event(dicts, followed, data):
    # a followed feature starts at 0 unless the call brought it (then at an event that carries it)
    starts = {}
    for name in followed:
        carriers = [i for i, d in enumerate(dicts) if name in d]
        starts[name] = data.draw(st.sampled_from([0] + carriers[:1]))
    expected = {name: (start, [d.get(name) for d in dicts[start:]]) for name, start in starts.items()}
    found = _feature_columns(dicts, starts)
    assert found == expected
    assert all(type(column) is list for _start, column in found.values())
