"""What a model monitor shows: ``driftline status``'s view and the metrics gauges' readings."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from detectors.model.columns import NUMERIC, PREDICTION, SCORE

if TYPE_CHECKING:
    from detectors.model.monitor import ModelMonitor

__all__ = ["decision", "describe", "drifting", "readings"]


def readings(monitor: ModelMonitor) -> list[tuple[str, str, float, float]]:
    """(feature, detector, statistic, threshold) now, higher meaning more drifted: the CUSUM sum and its
    threshold; for the window test, -log10 of the last p-value and of the model-level threshold."""
    out = []
    for name, m in monitor.monitors.items():
        if m.monitoring and "cusum" in m.detectors:
            out.append((name, "cusum", m.cusum_statistic, m.cusum_threshold))
    threshold = monitor.window_threshold()
    for name, test in monitor.window_tests.items():
        if test.last_p_value is not None:
            out.append((name, "chi_square", -math.log10(max(test.last_p_value, 1e-300)), -math.log10(threshold)))
    return out


def drifting(monitor: ModelMonitor) -> dict[str, bool]:
    """Per column: is a drift episode open?"""
    return {name: monitor.episodes.get(name, {}).get("type") == "drift"
            for name in monitor.kinds if name in monitor.window_tests}


def decision(monitor: ModelMonitor) -> dict:
    """The retrain policy's current verdict (``continue`` or ``retrain``), its reasons and since when."""
    return dict(monitor.policy.verdict)


def describe(monitor: ModelMonitor) -> dict:
    """The statistics as ``driftline status`` shows them."""
    features = {}
    for name in sorted(monitor.kinds):
        kind = monitor.kinds[name]
        if kind == NUMERIC and name in monitor.numeric:
            s, q = monitor.numeric[name], monitor.sketches[name]
            entry = {"kind": kind, "count": s.count, "missing": s.missing, "mean": _num(s.mean),
                     "std": _num(s.std), "min": _num(s.min), "max": _num(s.max),
                     "p50": _num(q.quantile(0.5)), "p90": _num(q.quantile(0.9)), "p99": _num(q.quantile(0.99))}
        elif name in monitor.categorical:
            f = monitor.categorical[name]
            entry = {"kind": kind, "count": f.count, "missing": f.missing, "frequencies": f.frequencies}
        else:
            continue  # profiled but not seen yet
        entry["type_mismatches"] = monitor.mismatches.get(name, 0)
        episode = monitor.episodes.get(name)
        if episode is not None and episode["type"] == "drift":
            entry["drifting_since_event"] = episode["started_at_event"] or None
        features[name] = entry
    prediction = features.pop(PREDICTION, None)
    score = features.pop(SCORE, None)
    perf = monitor.performance
    performance = {"task": perf.task, "baseline": perf.baseline, "baseline_from": perf.source,
                   "windows": perf.history, "estimated_accuracy": perf.estimated,
                   "estimated_baseline": perf.estimate_baseline, "improvements": perf.improvements}
    episodes = {"open": [{"key": k, **e} for k, e in sorted(monitor.episodes.items())],
                "closed": list(monitor.closed_episodes)}
    return {"decision": decision(monitor), "model": monitor.model, "model_version": monitor.model_version,
            "scenario": monitor.scenario, "performance": performance, "events": monitor.events, "last_event_id": monitor.last_event_id,
            "last_event_time": monitor.last_event_time, "untracked_features": monitor.untracked_features,
            "prediction": prediction, "score": score, "features": features, "episodes": episodes}


def _num(x: float) -> float | None:
    return None if x != x else x
