"""The model monitor: its saved form round-trips into identical behaviour, and state saved before parameters
were saved (format 4) still loads and carries on exactly as the code that saved it did."""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np
import orjson
import pytest

from detectors import NumericSummary
from detectors.model.monitor import ModelMonitor
from detectors.model.params import MonitorParams
from stream_processors.batch import logic_params
from stream_processors.config import Settings

FIXTURE = orjson.loads((pathlib.Path(__file__).parent / "data" / "model_state_v4.json").read_bytes())


def _params(**changes) -> MonitorParams:
    return logic_params(Settings(**{**FIXTURE["settings"], **changes})).monitor


def _events(start: int, n: int, shift: float, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed + start)
    x = rng.normal(shift, 1.0, n)
    return [{"event_id": f"e{start + i}", "model": "m", "model_version": "1", "timestamp": 1000.0 + start + i,
             "prediction": int(v > 0), "score": float(1 / (1 + np.exp(-v))),
             "features": {"x": float(v), "c": "ab"[i % 2] if shift == 0 else "a", "b": bool(i % 3)}}
            for i, v in enumerate(x)]


def _saved(monitor: ModelMonitor) -> dict:
    """The saved form as the store keeps it (JSON: infinities read back as null)."""
    return orjson.loads(orjson.dumps(monitor.to_dict()))


def _without_versions(state: dict) -> dict:
    """The saved form without what formats 5 and 6 added (format tags and parameters; report series and the
    policy's verdict)."""
    out = {k: v for k, v in state.items() if k not in ("format", "params", "report_series")}
    for part in ("performance", "policy"):
        out[part] = {k: v for k, v in state[part].items() if k not in ("format", "params", "verdict", "holding")}
    return out


def _as_read(state: object) -> object:
    """The saved form as its readers see it, for states that older code continued: moments through their
    properties (an open block of format 6 is unmerged), the open block of a drift monitor and river's
    serialised ADWIN window (float bits) left out, numbers to 9 significant digits (blocks merge in another
    order than the older code's calls did), a drift by its alert id (format 6 counts it from its own event)."""
    if isinstance(state, dict):
        if {"n", "m2", "missing"} <= state.keys():
            summary = NumericSummary.from_dict(state)
            moments = [_as_read(v) for v in (summary.mean, summary.variance) if not math.isnan(v)]
            return [summary.count, summary.missing, *moments]
        skip = {"format", "block_values", "block_sum", "block_n", "adwin"}
        out = {k: _as_read(v) for k, v in state.items() if k not in skip}
        if "recent_drift" in out:
            out["recent_drift"] = {k: v[1] for k, v in out["recent_drift"].items()}
        return out
    if isinstance(state, list):
        return [_as_read(v) for v in state]
    return float(f"{state:.9g}") if isinstance(state, float) else state


def test_state_saved_in_format_4_loads_and_continues_as_the_code_that_saved_it():
    assert FIXTURE["saved"]["format"] == "driftline.model_state/4" and "params" not in FIXTURE["saved"]
    monitor = ModelMonitor.from_dict(FIXTURE["saved"], _params())
    after = FIXTURE["after"]
    for start in range(0, len(after), 100):
        monitor.apply(after[start:start + 100])
    reached = _saved(monitor)
    assert reached["format"] == "driftline.model_state/7" and reached["params"] == _params().to_dict()
    assert _as_read(_without_versions(reached)) == _as_read(_without_versions(FIXTURE["reached"]))


def test_a_restored_monitor_behaves_like_the_one_that_was_saved():
    params = _params()
    original = ModelMonitor("m", "1", params)
    for start in range(0, 1500, 100):
        original.apply(_events(start, 100, 0.0))
    restored = ModelMonitor.from_dict(orjson.loads(orjson.dumps(original.to_dict())), params)
    found = [[], []]
    for start in range(1500, 3000, 100):
        message = _events(start, 100, 2.0)
        for i, monitor in enumerate((original, restored)):
            found[i] += monitor.apply([dict(e) for e in message])
    assert found[0], "the shift must be found, else the comparison says nothing"
    assert found[0] == found[1]
    assert _saved(restored) == _saved(original)


def test_saved_parameters_that_shaped_the_state_win_and_decision_parameters_are_the_configured_ones():
    monitor = ModelMonitor("m", "1", _params())
    monitor.apply(_events(0, 100, 0.0))
    configured = _params(window_size=300, cooldown_events=50, window_alpha=1e-4)
    restored = ModelMonitor.from_dict(monitor.to_dict(), configured)
    assert restored.params.window_size == FIXTURE["settings"]["window_size"]  # saved: the windows it built
    assert restored.params.cooldown_events == 50 and restored.params.window_alpha == 1e-4  # configured
    assert restored.params.monitor == _params().monitor


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _params().cooldown_events = 1  # type: ignore[misc]


def test_an_unknown_format_is_refused():
    from detectors import StateVersionError

    with pytest.raises(StateVersionError):
        ModelMonitor.from_dict({**FIXTURE["saved"], "format": "driftline.model_state/99"}, _params())


FIXTURE_V5 = orjson.loads((pathlib.Path(__file__).parent / "data" / "model_state_v5.json").read_bytes())


def test_state_saved_in_format_5_loads_continues_as_before_and_starts_its_series_and_verdict():
    from detectors.model.label_join import Joined

    params = logic_params(Settings(**FIXTURE_V5["settings"])).monitor
    assert FIXTURE_V5["saved"]["format"] == "driftline.model_state/5"
    monitor = ModelMonitor.from_dict(FIXTURE_V5["saved"], params)
    assert monitor.policy.verdict["verdict"] == "continue" and monitor.series.statistic == {}
    triggers = []
    for message in FIXTURE_V5["after"]:
        found = monitor.apply(message["events"])
        found += monitor.apply_labels([Joined(i, "1", p, s, y, t) for i, p, s, y, t in message["labels"]])
        triggers += [f for f in found if f.alert_type == "retrain"]
    reached = _saved(monitor)
    assert reached["format"] == "driftline.model_state/7"
    assert _as_read(_without_versions(reached)) == _as_read(_without_versions(FIXTURE_V5["reached"]))
    # the code that saved it triggered a retrain after the drop in accuracy: the verdict is that trigger
    assert FIXTURE_V5["reached"]["policy"]["last_trigger_at"] is not None and len(triggers) == 1
    assert monitor.policy.verdict["verdict"] == "retrain"
    assert monitor.policy.verdict["trigger_id"] == triggers[0].id
    assert monitor.policy.verdict["since_event"] == triggers[0].last_event_id
    # the series start with the first window completed after loading (edges, then windows of 200 events)
    ends = [s["edge_events"] + k * s["window_size"] - 1 for s in [FIXTURE_V5["settings"]] for k in range(1, 20)]
    assert [i for i, _ in monitor.series.statistic["x"].points()] == [e for e in ends if 1500 <= e < 2500]
