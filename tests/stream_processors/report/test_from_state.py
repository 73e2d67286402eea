"""The report of a model monitor fed with drifting inputs and labels: built from its saved state, rendered."""

from __future__ import annotations

import numpy as np
import orjson

from detectors.model.label_join import Joined
from detectors.model.monitor import ModelMonitor
from stream_processors.batch import logic_params
from stream_processors.config import Settings
from stream_processors.report import render_report
from stream_processors.report.from_state import report_from_state

SETTINGS = Settings(window_size=200, edge_events=200, baseline_windows=2, performance_window=200)


def monitor_with_drift_and_labels(n: int = 6000, accuracy_after: float = 0.85, seed: int = 1) -> ModelMonitor:
    """x shifts by 1.5 sd half way, region changes its mix; accuracy goes from 0.85 to ``accuracy_after``."""
    rng = np.random.default_rng(seed)
    monitor = ModelMonitor("credit", "1", logic_params(SETTINGS).monitor)
    half = n // 2
    for start in range(0, n, 100):
        at = np.arange(start, start + 100)
        x = rng.normal(0, 1, 100) + np.where(at >= half, 1.5, 0.0)
        region = np.where(at >= half, rng.choice(["n", "s"], 100), rng.choice(["n", "s", "e"], 100, p=[.6, .3, .1]))
        events = [{"event_id": f"e{i}", "timestamp": 1000.0 + int(i), "prediction": int(x[k] > 0), "score": None,
                   "features": {"x": float(x[k]), "region": str(region[k]), "y": float(rng.normal())}}
                  for k, i in enumerate(at)]
        monitor.apply(events)
        right = rng.random(100) < np.where(at >= half, accuracy_after, 0.85)
        monitor.apply_labels([Joined(e["event_id"], "1", e["prediction"], None,
                                     e["prediction"] if right[k] else 1 - e["prediction"], e["timestamp"])
                              for k, e in enumerate(events)])
    return ModelMonitor.from_dict(orjson.loads(orjson.dumps(monitor.to_dict())), monitor.params)


def test_the_report_of_a_drifting_model_orders_by_drift_and_shows_the_policy_verdict():
    monitor = monitor_with_drift_and_labels()
    data = report_from_state(monitor, [], generated_at=0.0)
    assert data.decision.verdict == monitor.policy.verdict["verdict"]
    assert [f.name for f in data.features_by_drift()][0] == "x"
    x = next(f for f in data.features if f.name == "x")
    assert x.drift_ratio > 1 and any(e.ended_at is None or e.ended_at >= 3000 for e in x.episodes)
    # production counts on the test's bins: every present value after the bins were fixed (event 200)
    assert sum(x.distribution.production) == monitor.numeric["x"].count - 200
    assert [i for i, _ in x.missing] == [i for i, _ in x.statistic] and all(v == 0 for _, v in x.missing)
    region = next(f for f in data.features if f.name == "region")
    assert region.distribution.categories[:3] == tuple(monitor.window_tests["region"].categories)
    assert data.performance and len(data.performance[0].realized) == 6000 // 200
    html = render_report(data)
    assert 'data-feature="x"' in html and 'data-feature="region"' in html


def test_retrain_after_a_drop_in_accuracy_and_continue_while_it_holds():
    held = monitor_with_drift_and_labels(accuracy_after=0.85)
    assert held.policy.verdict["verdict"] == "continue"
    assert "x" in held.policy.verdict["drifted_features"] and "performance holds" in held.policy.verdict["evidence"]
    dropped = monitor_with_drift_and_labels(accuracy_after=0.55)
    verdict = dropped.policy.verdict
    assert verdict["verdict"] == "retrain" and verdict["rule"] == "performance"
    data = report_from_state(dropped, [], generated_at=0.0)
    assert data.decision.verdict == "retrain" and data.decision.reasons
    assert data.decision.since_event == verdict["since_event"]


def test_last_n_keeps_the_series_and_alerts_of_the_period_and_leaves_other_versions_out():
    monitor = monitor_with_drift_and_labels()
    alert = {"id": "a", "status": "firing", "type": "drift", "severity": "critical", "detector": "cusum",
             "feature": "x", "statistic": 9.0, "threshold": 7.0, "model": "credit", "model_version": "1"}
    alerts = [{**alert, "id": "early", "evidence": {"last_event_id": "e999", "events_seen": 1000}},
              {**alert, "id": "late", "evidence": {"last_event_id": "e4999", "events_seen": 5000}},
              {**alert, "id": "other", "model_version": "2", "evidence": {"last_event_id": "e4999",
                                                                          "events_seen": 5000}}]
    whole = report_from_state(monitor, alerts, generated_at=0.0)
    assert [a.id for a in whole.alerts] == ["early", "late"]
    cut = report_from_state(monitor, alerts, generated_at=0.0, last=2000)
    assert [a.id for a in cut.alerts] == ["late"] and cut.period == (4000, 5999)
    x = next(f for f in cut.features if f.name == "x")
    assert x.statistic and min(i for i, _ in x.statistic) >= 4000
