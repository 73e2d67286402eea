"""Reference profiles: summaries and performance against numpy, the saved form round-tripping into the same
window tests and monitors."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detectors.online import StateVersionError
from detectors.profile import ReferenceProfile, build_profile

MONITOR = {"block_size": 10, "pilot_size": 50, "baseline_blocks": 10}


def _profile(n: int = 3000, seed: int = 5) -> tuple[ReferenceProfile, dict]:
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, n)
    x[::50] = np.nan
    c = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]).tolist()
    labels = rng.integers(0, 2, n).tolist()
    predictions = [y if rng.random() < 0.8 else 1 - y for y in labels]
    columns = {"x": ("numeric", x), "c": ("categorical", c)}
    profile = build_profile("m", "1", columns, created_at=1.0, window_size=200, monitor_params=MONITOR,
                            predictions=predictions, labels=labels, category_monitor_params=MONITOR)
    return profile, {"x": x, "c": c, "labels": labels, "predictions": predictions}


def test_numeric_summary_and_quantiles_match_numpy():
    profile, data = _profile()
    entry = profile.columns["x"]
    present = data["x"][~np.isnan(data["x"])]
    assert entry["kind"] == "numeric"
    np.testing.assert_allclose(list(entry["quantiles"].values()),
                               np.quantile(present, [.01, .05, .25, .5, .75, .95, .99]), rtol=1e-12)
    assert entry["monitor"] is not None and entry["window_test"]["kind"] == "numeric"


def test_category_frequencies_and_performance_match_numpy():
    profile, data = _profile()
    counts = profile.columns["c"]["summary"]
    values, n = np.unique(data["c"], return_counts=True)
    assert _counts(counts) == {str(k): int(v) for k, v in zip(values, n)}
    accuracy = np.mean(np.array(data["labels"]) == np.array(data["predictions"]))
    assert profile.performance["task"] == "classification"
    assert profile.performance["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert profile.performance["positive"] == 1 and "error_monitor" in profile.performance
    assert set(profile.columns["c"]["category_monitors"]) <= {"a", "b", "c"}


def _counts(summary: dict) -> dict:
    """Category counts from a CategoryFrequencies saved form."""
    from detectors.frequencies import CategoryFrequencies

    return dict(CategoryFrequencies.from_dict(summary).frequencies)


def test_regression_performance_matches_numpy():
    rng = np.random.default_rng(2)
    y = rng.normal(10, 2, 500)
    p = y + rng.normal(0.3, 1, 500)
    profile = build_profile("m", "1", {"x": ("numeric", y)}, 1.0, window_size=100, monitor_params=MONITOR,
                            predictions=p.tolist(), labels=y.tolist())
    err = p - y
    assert profile.performance["task"] == "regression"
    assert profile.performance["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-12)
    assert profile.performance["rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-12)


def test_a_restored_profile_gives_the_same_window_tests_and_monitors():
    profile, _ = _profile()
    restored = ReferenceProfile.from_dict(orjson.loads(orjson.dumps(profile.to_dict())))
    rng = np.random.default_rng(9)
    shifted = rng.normal(4.0, 3.0, 2000)
    a, b = profile.monitor("x"), restored.monitor("x")
    assert [f.position for f in a.update(shifted)] == [f.position for f in b.update(shifted)]
    ta, tb = profile.window_test("x"), restored.window_test("x")
    assert [f.p_value for f in ta.update(shifted)] == [f.p_value for f in tb.update(shifted)]
    assert restored.kind("c") == "categorical" and restored.kind("nope") is None
    assert set(restored.category_monitors("c")) == set(profile.category_monitors("c"))


def test_columns_of_different_lengths_are_refused_and_unknown_formats_too():
    with pytest.raises(ValueError):
        build_profile("m", "1", {"x": ("numeric", [1.0]), "y": ("numeric", [1.0, 2.0])}, 1.0)
    with pytest.raises(StateVersionError):
        ReferenceProfile.from_dict({"format": "driftline.reference_profile/0"})
