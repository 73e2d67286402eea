"""A model version's statistics are a function of its event sequence only, so the worker may apply a batch's
messages in one call while they are quiet, and a replay after a crash, which groups messages into batches
otherwise, reaches the same bytes. (Findings, episodes and the retrain policy are still decided per call:
the batch falls back to one call per message when a call is not quiet.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.model.monitor import ModelMonitor
from stream_processors.batch import logic_params
from stream_processors.config import Settings

_SETTINGS = {"window_size": 40, "edge_events": 40, "baseline_windows": 2, "cooldown_events": 30,
             "performance_window": 20, "block_size": 5, "pilot_size": 20, "baseline_blocks": 10}


def _params():
    params = logic_params(Settings(**_SETTINGS)).monitor
    return dataclasses.replace(params, max_features=4)


def _stream(seed: int, n: int) -> list[dict]:
    """Numeric, categorical and boolean features with nulls, values of the wrong type, a feature that
    appears late, more features than are followed, and a shift half way."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shift = 3.0 if i > n // 2 else 0.0
        u = rng.random(6)
        features = {"x": None if u[0] < 0.1 else ("oops" if u[0] < 0.13 else float(rng.normal(shift, 1))),
                    "c": None if u[1] < 0.1 else (7 if u[1] < 0.12 else "abc"[int(u[1] * 3) if not shift else 0]),
                    "b": bool(u[2] < (0.8 if shift else 0.3))}
        if i > n // 4:
            features["late"] = int(rng.integers(0, 5 + 20 * bool(shift)))
        if u[3] < 0.05:
            features[f"extra{int(u[4] * 3)}"] = 1.0
        out.append({"event_id": f"e{i}", "model": "m", "model_version": "1", "timestamp": float(1000.0 + i - 5 * u[5]),
                    "prediction": int(u[3] < (0.2 + 0.5 * bool(shift))),
                    "score": None if u[4] < 0.05 else float(u[4]), "features": features})
    return out


def _run(events: list[dict], cuts: list[int]) -> tuple[bytes, list]:
    monitor = ModelMonitor("m", "1", _params())
    findings = []
    bounds = [0, *sorted(set(cuts)), len(events)]
    for a, b in zip(bounds, bounds[1:]):
        findings += [(f.id, f.status, f.episode_id, f.last_event_id, f.events_seen, f.alert_type, f.feature,
                      f.detector) for f in monitor.apply(events[a:b])]
    return orjson.dumps(monitor.to_dict()), findings


def _run_batched(events: list[dict], messages: list[int], batches: list[int]) -> tuple[bytes, list]:
    """As the worker applies: ``messages`` cut the events into messages, ``batches`` cut the messages into
    batches; a batch's messages are one call when that call is quiet (no finding, the retrain verdict
    unchanged), else the state is restored and the messages are applied one call each."""
    monitor = ModelMonitor("m", "1", _params())
    findings = []
    edges = [0, *sorted(set(messages)), len(events)]
    units = [events[a:b] for a, b in zip(edges, edges[1:])]
    groups = [0, *sorted({b for b in batches if 0 < b < len(units)}), len(units)]
    for a, b in zip(groups, groups[1:]):
        saved, verdict = orjson.dumps(monitor.to_dict()), monitor.policy.verdict.get("verdict")
        merged = monitor.apply([e for unit in units[a:b] for e in unit])
        if merged or monitor.policy.verdict.get("verdict") != verdict:
            monitor = ModelMonitor("m", "1", _params()) if a == 0 else \
                ModelMonitor.from_dict(orjson.loads(saved), _params())  # as the worker rebuilds
            merged = [f for unit in units[a:b] for f in monitor.apply(unit)]
        findings += [(f.id, f.status, f.episode_id, f.last_event_id, f.events_seen, f.alert_type, f.feature,
                      f.detector) for f in merged]
    return orjson.dumps(monitor.to_dict()), findings


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n=st.integers(50, 700), data=st.data())
def test_the_state_and_findings_do_not_depend_on_how_messages_are_grouped_into_batches(seed, n, data):
    """What the worker relies on: a batch that applies its messages as one call while they are quiet reaches
    the bytes and findings of one call per message, however a restart regroups messages into batches."""
    events = _stream(seed, n)
    messages = data.draw(st.lists(st.integers(1, n - 1), max_size=40))
    batches = data.draw(st.lists(st.integers(1, len(set(messages)) + 1), max_size=8))
    per_message_state, per_message_findings = _run(events, messages)
    batched_state, batched_findings = _run_batched(events, messages, batches)
    assert batched_findings == per_message_findings
    assert batched_state == per_message_state


def test_one_event_per_call_equals_one_call():
    events = _stream(7, 600)
    whole_state, whole_findings = _run(events, [])
    single_state, single_findings = _run(events, list(range(1, 600)))
    assert any(f[1] == "firing" for f in whole_findings)  # the stream does drift: findings are compared
    assert single_findings == whole_findings
    assert single_state == whole_state
