"""A model version's state is a function of its event sequence only: however the sequence is cut into
``apply`` calls, the saved form is the same bytes and the same findings come out, so the worker may apply a
whole batch of messages in one call and a replay after a crash reaches the state it would have reached."""

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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n=st.integers(50, 700), data=st.data())
def test_the_state_and_findings_do_not_depend_on_how_events_are_cut_into_calls(seed, n, data):
    events = _stream(seed, n)
    cuts = data.draw(st.lists(st.integers(1, n - 1), max_size=12))
    whole_state, whole_findings = _run(events, [])
    cut_state, cut_findings = _run(events, cuts)
    assert cut_findings == whole_findings
    assert cut_state == whole_state


def test_one_event_per_call_equals_one_call():
    events = _stream(7, 600)
    whole_state, whole_findings = _run(events, [])
    single_state, single_findings = _run(events, list(range(1, 600)))
    assert any(f[1] == "firing" for f in whole_findings)  # the stream does drift: findings are compared
    assert single_findings == whole_findings
    assert single_state == whole_state
