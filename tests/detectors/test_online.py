"""The wrappers decide exactly as river does, and survive a save/restore mid-stream."""

import numpy as np
import orjson
import pytest
from river import drift

from detectors import AdwinDetector, PageHinkleyDetector, StateVersionError


def _stream(seed):
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0, 1, 2000), rng.normal(0.8, 1, 2000), rng.normal(-0.5, 2, 2000)]


def _detections(detector, stream, restore_every=None):
    hits = []
    for i, x in enumerate(stream):
        if restore_every and i % restore_every == 0:
            state = orjson.loads(orjson.dumps(detector.to_dict()))  # through JSON, as in Redis
            detector = type(detector).from_dict(state)
        if detector.update(float(x)):
            hits.append(i)
    return hits


def _river_detections(detector, stream):
    hits = []
    for i, x in enumerate(stream):
        detector.update(float(x))
        if detector.drift_detected:
            hits.append(i)
    return hits


@pytest.mark.parametrize("seed", [0, 1])
def test_page_hinkley_matches_river_and_round_trips(seed):
    stream = _stream(seed)
    expected = _river_detections(drift.PageHinkley(threshold=25.0, delta=0.5, min_instances=30, alpha=0.9999),
                                 stream)
    assert expected, "the stream should contain detectable changes"
    assert _detections(PageHinkleyDetector(threshold=25.0, delta=0.5), stream) == expected
    assert _detections(PageHinkleyDetector(threshold=25.0, delta=0.5), stream, restore_every=97) == expected


@pytest.mark.parametrize("seed", [0, 1])
def test_adwin_matches_river_and_round_trips(seed):
    stream = _stream(seed)
    expected = _river_detections(drift.ADWIN(delta=0.002, clock=1, grace_period=10), stream)
    assert expected
    assert _detections(AdwinDetector(delta=0.002, clock=1), stream) == expected
    assert _detections(AdwinDetector(delta=0.002, clock=1), stream, restore_every=101) == expected


def test_foreign_state_is_refused():
    state = AdwinDetector().to_dict()
    with pytest.raises(StateVersionError):
        AdwinDetector.from_dict({**state, "river": "0.0.1"})
    with pytest.raises(StateVersionError):
        PageHinkleyDetector.from_dict({"format": "something/9"})


def test_bad_arguments_fail_at_construction():
    with pytest.raises(ValueError):
        AdwinDetector(delta=2.0)
    with pytest.raises(ValueError):
        PageHinkleyDetector(threshold=0)
