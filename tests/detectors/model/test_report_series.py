"""The series a model monitor keeps for its report, checked against numpy on the same events, and their saved
form."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detectors import StateVersionError
from detectors.model.label_join import Joined
from detectors.model.monitor import ModelMonitor
from detectors.model.report_series import ReportSeries
from stream_processors.batch import logic_params
from stream_processors.config import Settings

SETTINGS = Settings(window_size=200, edge_events=200, baseline_windows=2, performance_window=100)
N = 4000


def _fed(message_size: int) -> tuple[ModelMonitor, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, N) + np.where(np.arange(N) >= 2000, 1.0, 0.0)
    missing = rng.random(N) < np.where(np.arange(N) >= 3000, 0.2, 0.05)
    right = rng.random(N) < 0.85
    monitor = ModelMonitor("m", "1", logic_params(SETTINGS).monitor)
    events = [{"event_id": f"e{i}", "timestamp": 1000.0 + i, "prediction": int(x[i] > 0), "score": None,
               "features": {"x": None if missing[i] else float(x[i]), "c": "ab"[i % 2]}} for i in range(N)]
    for start in range(0, N, message_size):
        message = events[start:start + message_size]
        monitor.apply(message)
        monitor.apply_labels([Joined(e["event_id"], "1", e["prediction"], None,
                                     e["prediction"] if right[int(e["event_id"][1:])] else 1 - e["prediction"],
                                     e["timestamp"]) for e in message])
    return monitor, x, missing, right


def test_missing_rate_counts_and_realized_accuracy_match_numpy_on_the_same_events():
    monitor, x, missing, right = _fed(100)
    series = monitor.series
    # the column starts at its first value (its kind is known from it); windows of 200 events after 200 events
    # that fix the bins
    first = int(np.argmax(~missing))
    ends = np.arange(first + 200 + 200 - 1, N, 200)
    tested = ends[ends >= first + 200 + 2 * 200]  # the first two windows make the baseline: no test, no point
    rates = [(e, missing[e - 199:e + 1].mean()) for e in tested]
    assert [i for i, _ in series.missing["x"].points()] == [int(e) for e, _ in rates]
    np.testing.assert_allclose([v for _, v in series.missing["x"].points()], [r for _, r in rates], rtol=1e-12)
    # production counts on the window test's bins, from the moment they were fixed (200 events in)
    edges = np.asarray(monitor.window_tests["x"].edges)
    present = x[first + 200:][~missing[first + 200:]]
    expected = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    assert series.counts["x"] == expected.tolist()
    # the drift statistic is -log10 of each window test's p-value; it rises past the threshold after the shift
    points = series.statistic["x"].points()
    threshold = -np.log10(monitor.window_threshold())
    assert max(v for i, v in points if i < 2000) < threshold < max(v for i, v in points if i >= 2200)
    # realized accuracy per window of 100 labels (one window closes per message of 100 events)
    accuracy = right.reshape(-1, 100).mean(axis=1)
    realized = series.realized.points()
    assert series.metric == "accuracy" and len(realized) == len(accuracy)
    np.testing.assert_allclose([v for _, v in realized], accuracy, rtol=1e-12)


def test_the_series_depend_on_the_events_not_on_how_they_were_grouped():
    one = _fed(100)[0].series.to_dict()
    other = _fed(37)[0].series.to_dict()
    for part in ("statistic", "missing", "counts"):
        assert one[part] == other[part]


def test_the_series_stay_bounded_and_round_trip():
    series = ReportSeries(capacity=8)
    for i in range(10_000):
        series.record_window("x", i, "chi_square", 0.0, 0.5)
        series.record_window("x", i, "missing_rate", 0.1, 0.5)
    assert len(series.statistic["x"].points()) <= 9 and series.statistic["x"].count == 10_000
    saved = orjson.loads(orjson.dumps(series.to_dict()))
    assert ReportSeries.from_dict(saved).to_dict() == saved
    with pytest.raises(StateVersionError):
        ReportSeries.from_dict({**saved, "format": "driftline.report_series/9"})


def test_every_window_closed_by_one_message_of_labels_is_recorded():
    monitor, _x, _missing, right = _fed(100)
    again = ModelMonitor("m", "1", monitor.params)
    events = [{"event_id": f"e{i}", "timestamp": 1000.0 + i, "prediction": 1, "score": None,
               "features": {"x": 0.0}} for i in range(1000)]
    again.apply(events)
    again.apply_labels([Joined(e["event_id"], "1", 1, None, int(right[i]), e["timestamp"])
                        for i, e in enumerate(events)])
    values = [v for _, v in again.series.realized.points()]
    np.testing.assert_allclose(values, right[:1000].reshape(-1, 100).mean(axis=1), rtol=1e-12)
