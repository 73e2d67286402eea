"""The performance tracker: realized windows against scikit-learn, the production baseline against numpy,
its bound, one class rule for realized accuracy and the error stream, and its saved form."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from sklearn import metrics as sk

from detectors.model.label_join import Joined
from detectors.model.params import PerformanceParams
from detectors.model.performance_tracker import PerformanceTracker

ERROR_MONITOR = {"block_size": 20, "pilot_size": 50, "baseline_blocks": 10, "winsor": 0.0}
PARAMS = PerformanceParams(window=200, baseline_windows=2, min_drop=0.02, error_monitor=ERROR_MONITOR)


def _joined(predictions, labels, start: int = 0, scores=None) -> list[Joined]:
    scores = scores if scores is not None else [None] * len(labels)
    return [Joined(f"e{start + i}", "1", p, s, y, 0.0) for i, (p, s, y) in enumerate(zip(predictions, scores, labels))]


def _stream(n: int, accuracy: float, seed: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    predictions = np.where(rng.random(n) < accuracy, labels, 1 - labels)
    return predictions.tolist(), labels.tolist()


def test_realized_windows_match_scikit_learn_and_the_baseline_is_their_mean():
    predictions, labels = _stream(600, 0.85, seed=1)
    tracker = PerformanceTracker(PARAMS)
    assert tracker.on_labels(_joined(predictions, labels)) == []
    assert len(tracker.history) == 3 and tracker.labels == 600
    for w, window in enumerate(tracker.history):
        cut = slice(200 * w, 200 * (w + 1))
        assert window["accuracy"] == pytest.approx(sk.accuracy_score(labels[cut], predictions[cut]), abs=1e-12)
        assert window["f1"] == pytest.approx(sk.f1_score(labels[cut], predictions[cut]), abs=1e-12)
    assert tracker.baseline["accuracy"] == pytest.approx(np.mean([h["accuracy"] for h in tracker.history[:2]]))
    assert tracker.source == "production"


def test_a_drop_past_the_bound_is_a_finding_and_the_bound_is_the_larger_of_min_drop_and_three_errors():
    before, labels = _stream(400, 0.9, seed=2)
    tracker = PerformanceTracker(PARAMS)
    tracker.on_labels(_joined(before, labels))
    base = tracker.baseline["accuracy"]
    assert tracker.bound("accuracy", 200) == pytest.approx(base - max(0.02, 3 * math.sqrt(base * (1 - base) / 200)))
    worse, labels = _stream(200, 0.6, seed=3)
    [finding] = [f for f in tracker.on_labels(_joined(worse, labels, 400)) if not f.hold and
                 f.detector == "realized_accuracy"]
    assert finding.statistic == pytest.approx(sk.accuracy_score(labels, worse))
    assert finding.threshold == pytest.approx(tracker.bound("accuracy", 200))
    assert finding.evidence["last_window_event_id"] == "e599"


def test_prediction_true_and_label_1_are_one_class_for_accuracy_and_for_the_error_stream():
    labels = [1, "1", 1.0, "true", 0, "0", False, "false"] * 50
    predictions = [True, 1, "1", True, 0, False, "0", 0.0] * 50
    tracker = PerformanceTracker(PARAMS)
    tracker.on_labels(_joined(predictions, labels))
    assert [h["accuracy"] for h in tracker.history] == [1.0, 1.0]
    assert [tracker._error(j) for j in _joined(predictions[:8], labels[:8])] == [0.0] * 8
    assert [tracker._error(j) for j in _joined([True, "yes"], [0, "no"])] == [1.0, 1.0]


def test_a_restored_tracker_behaves_like_the_one_that_was_saved():
    predictions, labels = _stream(3000, 0.9, seed=4)
    worse, worse_labels = _stream(3000, 0.55, seed=5)
    rng = np.random.default_rng(6)
    scores = rng.random(6000).tolist()
    original = PerformanceTracker(PARAMS)
    original.on_labels(_joined(predictions[:1300], labels[:1300], 0, scores))
    restored = PerformanceTracker.from_dict(orjson.loads(orjson.dumps(original.to_dict())), PARAMS)
    rest = _joined(predictions[1300:] + worse, labels[1300:] + worse_labels, 1300, scores[1300:])
    found = [t.on_labels(list(rest)) for t in (original, restored)]
    assert any(not f.hold for f in found[0]), "the drop must be found, else the comparison says nothing"
    assert found[0] == found[1]
    events = [{"event_id": f"p{i}", "prediction": int(s > 0.5), "score": s} for i, s in enumerate(scores)]
    assert original.on_predictions(events) == restored.on_predictions(events)
    assert orjson.dumps(restored.to_dict()) == orjson.dumps(original.to_dict())


def test_the_saved_window_wins_and_the_configured_minimum_drop_applies():
    tracker = PerformanceTracker(PARAMS)
    saved = tracker.to_dict()
    assert saved["format"] == "driftline.performance/3" and saved["params"]["window"] == 200
    configured = PerformanceParams(window=500, baseline_windows=3, min_drop=0.1, error_monitor=ERROR_MONITOR)
    restored = PerformanceTracker.from_dict(saved, configured)
    assert (restored.params.window, restored.params.baseline_windows, restored.params.min_drop) == (200, 2, 0.1)
    old = {k: v for k, v in saved.items() if k != "params"} | {"format": "driftline.performance/2"}
    assert PerformanceTracker.from_dict(old, configured).params == configured  # saved before params: configured


@pytest.mark.parametrize("seed", range(6))
def test_estimated_accuracy_windows_are_numpy_s_whatever_the_cut(seed):
    """Each window of ``window`` scored events estimates mean(p if predicted positive else 1 - p) (numpy, on the
    whole stream), at the event that closes it, however the events are cut into calls and saved between them;
    events without a score are left out; the saved form is the one of a single call."""
    rng = np.random.default_rng(seed)
    n, window = 2500, int(rng.choice([1, 7, 200]))
    params = PerformanceParams(window=window, baseline_windows=3, min_drop=0.02, error_monitor=ERROR_MONITOR)
    scores = np.r_[rng.beta(2, 5, n // 2), rng.beta(5, 5, n - n // 2)]
    predictions = (scores > 0.3).astype(int).tolist()
    kept = rng.random(n) > 0.05
    events = [{"event_id": f"e{i}", "prediction": predictions[i], "score": float(scores[i]) if kept[i] else None}
              for i in range(n)]
    scored = np.flatnonzero(kept)
    p = scores[scored]
    right = np.where(np.asarray(predictions)[scored] == 1, p, 1 - p)
    closed = len(scored) // window
    expected = [(int(scored[(k + 1) * window - 1]), float(right[k * window:(k + 1) * window].mean()))
                for k in range(closed)]
    whole = PerformanceTracker(params)
    whole.on_predictions(events)
    tracker, got, start = PerformanceTracker(params), [], 0
    while start < n:
        size = int(rng.choice([1, 5, 199, 600]))
        tracker.on_predictions(events[start:start + size])
        got += [(start + position, estimate) for position, estimate in tracker.estimates]
        start += size
        if rng.random() < 0.3:
            tracker = PerformanceTracker.from_dict(orjson.loads(orjson.dumps(tracker.to_dict())), params)
    assert [g[0] for g in got] == [e[0] for e in expected]
    np.testing.assert_allclose([g[1] for g in got], [e[1] for e in expected], rtol=1e-12)
    assert orjson.dumps(tracker.to_dict()) == orjson.dumps(whole.to_dict())
    assert whole.estimated == pytest.approx(expected[-1][1], rel=1e-12)
