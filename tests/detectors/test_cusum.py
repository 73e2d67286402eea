"""CUSUM: the sums against a plain recursion, the threshold against Siegmund's formula solved by scipy, and
the saved form round-tripping into the same firings."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from scipy import optimize

from detectors.cusum import Cusum, cusum_threshold
from detectors.online import StateVersionError


def _reference(signal: np.ndarray, k: float, h: float) -> tuple[list[int], list[float]]:
    """Page's recursion written out: firings and the statistic after each value."""
    up = down = 0.0
    firings, stats = [], []
    for i, x in enumerate(signal):
        up, down = max(0.0, up + x - k), max(0.0, down - x - k)
        stats.append(max(up, down))
        if max(up, down) > h:
            firings.append(i)
            up = down = 0.0
    return firings, stats


@pytest.mark.parametrize("k, arl0", [(0.25, 500.0), (0.5, 1e4), (1.0, 1e6)])
def test_the_threshold_solves_siegmunds_approximation(k, arl0):
    def excess(h: float) -> float:
        hp = h + 1.166
        return (math.exp(2 * k * hp) - 2 * k * hp - 1) / (2 * k * k) - arl0

    expected = optimize.brentq(excess, 0.0, 100.0, xtol=1e-12)
    assert cusum_threshold(k, arl0) == pytest.approx(expected, rel=1e-9)


def test_sums_statistic_and_direction_follow_the_recursion():
    rng = np.random.default_rng(3)
    signal = np.r_[rng.normal(0, 1, 400), rng.normal(-1.5, 1, 200), rng.normal(1.5, 1, 200)]
    k, h = 0.5, 6.0
    cusum = Cusum(k, h)
    fired, stats, directions = [], [], []
    for i, x in enumerate(signal):
        if cusum.update(float(x)):
            fired.append(i)
            directions.append(cusum.direction)
        stats.append(cusum.statistic)
    expected_firings, expected_stats = _reference(signal, k, h)
    assert fired == expected_firings and fired, "the shifts must be found"
    np.testing.assert_allclose(stats, expected_stats, rtol=0, atol=1e-12)
    assert -1 in directions and 1 in directions  # the drop fires downwards, the rise upwards
    assert all(d == -1 for i, d in zip(fired, directions) if 400 <= i < 600)


def test_bad_arguments_fail_at_construction():
    for k, h in ((0, 1), (1, 0), (-1, 5)):
        with pytest.raises(ValueError):
            Cusum(k, h)
    with pytest.raises(ValueError):
        cusum_threshold(0.5, 1.0)


def test_a_restored_cusum_fires_where_the_original_does():
    rng = np.random.default_rng(11)
    signal = np.r_[rng.normal(0, 1, 300), rng.normal(1.0, 1, 300)]
    original = Cusum(0.5, cusum_threshold(0.5, 1e4))
    for x in signal[:320]:
        original.update(float(x))
    restored = Cusum.from_dict(orjson.loads(orjson.dumps(original.to_dict())))
    assert restored.statistic == original.statistic and restored.direction == original.direction
    rest = [[i for i, x in enumerate(signal[320:]) if c.update(float(x))] for c in (original, restored)]
    assert rest[0] and rest[0] == rest[1]
    assert restored.to_dict() == original.to_dict()


def test_an_unknown_format_is_refused():
    with pytest.raises(StateVersionError):
        Cusum.from_dict({**Cusum(1, 2).to_dict(), "format": "driftline.cusum/9"})
