import json

import numpy as np
import pytest

from detectors.online import StateVersionError
from detectors.timeline import Timeline

NUMPY = {"max": np.max, "min": np.min, "mean": np.mean}


def _fed(reduce: str, n: int, capacity: int = 16, seed: int = 0) -> tuple[Timeline, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    indices = np.cumsum(rng.integers(1, 5, n))
    values = rng.normal(0, 1, n)
    timeline = Timeline(capacity=capacity, reduce=reduce)
    for i, v in zip(indices, values):
        timeline.update(int(i), float(v))
    return timeline, indices, values


@pytest.mark.parametrize("reduce", ["max", "min", "mean"])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 1000, 4097])
def test_buckets_equal_numpys_reduction_of_the_raw_points(reduce, n):
    timeline, indices, values = _fed(reduce, n)
    stride = timeline.stride
    full = n // stride
    expected = NUMPY[reduce](values[: full * stride].reshape(full, stride), axis=1)
    expected_idx = indices[: full * stride].reshape(full, stride)[:, -1]
    if n % stride:
        expected = np.r_[expected, NUMPY[reduce](values[full * stride:])]
        expected_idx = np.r_[expected_idx, indices[-1]]
    got_idx, got = (np.array(c) for c in zip(*timeline.points()))
    np.testing.assert_array_equal(got_idx, expected_idx)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert timeline.count == n


@pytest.mark.parametrize("reduce", ["max", "min", "mean"])
def test_stays_bounded_and_covers_every_point(reduce):
    timeline, indices, _ = _fed(reduce, 100_000, capacity=64)
    points = timeline.points()
    assert 32 <= len(points) <= 65
    assert points[-1][0] == indices[-1]
    assert timeline.count == 100_000


def test_max_keeps_the_peak_and_where_it_crossed():
    values = np.zeros(50_000)
    values[31_337] = 7.0
    timeline = Timeline(capacity=32, reduce="max")
    for i, v in enumerate(values):
        timeline.update(i, float(v))
    crossing = [(i, v) for i, v in timeline.points() if v > 1.0]
    assert len(crossing) == 1 and crossing[0][1] == 7.0
    start = crossing[0][0] - timeline.stride + 1
    assert start <= 31_337 <= crossing[0][0]


@pytest.mark.parametrize("reduce", ["max", "min", "mean"])
@pytest.mark.parametrize("split", [0, 1, 15, 16, 999])
def test_round_trip_then_further_updates_are_identical(reduce, split):
    rng = np.random.default_rng(5)
    values = rng.exponential(1.0, 1500)
    uninterrupted, restored = Timeline(capacity=16, reduce=reduce), Timeline(capacity=16, reduce=reduce)
    for i, v in enumerate(values[:split]):
        uninterrupted.update(i, float(v))
        restored.update(i, float(v))
    restored = Timeline.from_dict(json.loads(json.dumps(restored.to_dict())))
    for i, v in enumerate(values[split:], start=split):
        uninterrupted.update(i, float(v))
        restored.update(i, float(v))
    assert restored.to_dict() == uninterrupted.to_dict()
    assert restored.points() == uninterrupted.points()


def test_saved_form_size_per_series():
    """About 3.4 kB of JSON per series at the default capacity (128), over a million events."""
    timeline = Timeline()
    rng = np.random.default_rng(1)
    for i, v in enumerate(rng.normal(0, 1, 2000)):  # one point per window of 500 events
        timeline.update(500 * (i + 1) - 1, float(v))
    size = len(json.dumps(timeline.to_dict(), separators=(",", ":")))
    assert 64 * 20 < size < 128 * 40


def test_bad_arguments_and_inputs_fail():
    for capacity in (0, 3):
        with pytest.raises(ValueError):
            Timeline(capacity=capacity)
    with pytest.raises(ValueError):
        Timeline(reduce="median")
    timeline = Timeline()
    with pytest.raises(ValueError):
        timeline.update(0, float("nan"))
    timeline.update(10, 1.0)
    with pytest.raises(ValueError):
        timeline.update(9, 1.0)


def test_unknown_format_is_refused():
    state = Timeline().to_dict()
    state["format"] = "driftline.timeline/0"
    with pytest.raises(StateVersionError):
        Timeline.from_dict(state)
