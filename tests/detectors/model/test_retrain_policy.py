"""The retrain policy's rules, its cooldown, the performance episode that waits out the cooldown, and its
saved form."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from detectors.model.monitor import ModelMonitor
from detectors.model.params import PolicyParams
from detectors.model.retrain_policy import RetrainPolicy
from detectors.model.verdicts import Finding, episode_key
from detectors.online import StateVersionError
from stream_processors.batch import logic_params
from stream_processors.config import Settings

POLICY = PolicyParams(window_events=1000, cooldown_events=5000, drift_features=2, on_drift_alone=True,
                      on_data_quality=False)


def _monitor(policy: PolicyParams = POLICY) -> ModelMonitor:
    params = logic_params(Settings()).monitor
    return ModelMonitor("m", "1", dataclasses.replace(params, policy=policy))


def _finding(alert_type: str, feature: str | None, at: int, detector: str = "cusum",
             severity: str = "critical") -> Finding:
    return Finding(alert_type, "m", "1", feature, detector, 3.0, 1.0, f"e{at}", at, "no_reference", severity)


def _decide(monitor: ModelMonitor, at: int, findings: list[Finding]) -> list[Finding]:
    monitor.events = at
    for f in findings:  # the monitor opens an episode for each firing before the policy sees it
        monitor.episodes.setdefault(episode_key(f), {"episode_id": f.id, "type": f.alert_type})
    return monitor.policy.decide(monitor, findings)


def test_drift_of_enough_input_features_within_the_window_triggers_once():
    monitor = _monitor()
    assert _decide(monitor, 100, [_finding("drift", "x", 100), _finding("drift", "__prediction__", 100)]) == []
    assert _decide(monitor, 2000, [_finding("drift", "y", 2000)]) == []  # x is out of the window by now
    [trigger] = _decide(monitor, 2500, [_finding("drift", "z", 2500)])
    assert trigger.alert_type == "retrain" and trigger.evidence["rule"] == "drift"
    assert trigger.evidence["drifted_features"] == ["y", "z"] and trigger.statistic == 2.0
    assert trigger.threshold == 2.0 and trigger.last_event_id == "e2500"
    assert _decide(monitor, 3000, [_finding("drift", "x", 3000)]) == []  # cooling down


def test_drift_alone_does_not_trigger_when_turned_off():
    monitor = _monitor(dataclasses.replace(POLICY, on_drift_alone=False))
    assert _decide(monitor, 10, [_finding("drift", "x", 10), _finding("drift", "y", 10)]) == []


def test_a_performance_alert_triggers_and_names_its_alert():
    monitor = _monitor()
    finding = _finding("performance", None, 50, detector="realized_accuracy")
    [trigger] = _decide(monitor, 50, [finding])
    assert trigger.evidence["rule"] == "performance"
    assert [r["id"] for r in trigger.evidence["reasons"]] == [finding.id]


def test_data_quality_triggers_only_when_asked_and_only_critical():
    quality = [_finding("data_quality", "x", 10, detector="type_mismatch")]
    assert _decide(_monitor(), 10, quality) == []
    on = _monitor(dataclasses.replace(POLICY, on_data_quality=True))
    assert _decide(on, 10, [_finding("data_quality", "x", 10, "missing_rate", severity="warning")]) == []
    [trigger] = _decide(on, 11, quality)
    assert trigger.evidence["rule"] == "data_quality"


def test_a_performance_episode_opened_in_the_cooldown_triggers_when_it_ends_if_still_open():
    monitor = _monitor()
    assert _decide(monitor, 100, [_finding("performance", None, 100, "realized_accuracy")])
    held = _finding("performance", None, 2000, "cbpe_accuracy")
    assert _decide(monitor, 2000, [held]) == [] and len(monitor.policy.waiting) == 1
    [late] = _decide(monitor, 5200, [])
    assert late.evidence["rule"] == "performance" and late.evidence["reasons"][0]["id"] == held.id
    assert monitor.policy.waiting == []


def test_a_restored_policy_decides_as_the_saved_one():
    monitor = _monitor()
    _decide(monitor, 100, [_finding("drift", "x", 100)])
    saved = orjson.loads(orjson.dumps(monitor.policy.to_dict()))
    assert saved["format"] == "driftline.retrain_policy/2" and saved["params"]["drift_features"] == 2
    twin = _monitor()
    twin.policy = RetrainPolicy.from_dict(saved, POLICY)
    later = [_finding("drift", "y", 400)]
    assert _decide(monitor, 400, later) == _decide(twin, 400, later) != []
    assert twin.policy.to_dict() == monitor.policy.to_dict()
    old = {k: v for k, v in saved.items() if k not in ("format", "params")}  # inside model state /4
    assert RetrainPolicy.from_dict(old, POLICY).recent_drift == saved["recent_drift"]
    with pytest.raises(StateVersionError):
        RetrainPolicy.from_dict({**saved, "format": "driftline.retrain_policy/9"}, POLICY)


def test_the_verdict_is_continue_until_a_trigger_then_retrain_while_its_episode_stays_open():
    monitor = _monitor()
    _decide(monitor, 100, [_finding("drift", "x", 100)])
    verdict = monitor.policy.verdict
    assert verdict["verdict"] == "continue" and verdict["since_at"] == 0 and verdict["drifted_features"] == ["x"]
    finding = _finding("performance", None, 300, detector="realized_accuracy")
    [trigger] = _decide(monitor, 300, [finding])
    verdict = monitor.policy.verdict
    assert verdict["verdict"] == "retrain" and verdict["trigger_id"] == trigger.id
    assert verdict["rule"] == trigger.evidence["rule"] == "performance"
    assert verdict["reasons"] == trigger.evidence["reasons"] and verdict["since_event"] == "e300"
    assert _decide(monitor, 400, []) == [] and monitor.policy.verdict["verdict"] == "retrain"  # still open
    monitor.episodes.pop(episode_key(finding))  # the performance episode resolved
    monitor.last_event_id = "e500"
    _decide(monitor, 500, [])
    verdict = monitor.policy.verdict
    assert verdict["verdict"] == "continue" and verdict["since_at"] == 500 and verdict["since_event"] == "e500"
    assert trigger.id in verdict["explanation"]


def test_a_drift_rule_verdict_holds_while_enough_features_stay_drifted_within_the_window():
    monitor = _monitor()
    [trigger] = _decide(monitor, 100, [_finding("drift", "x", 100), _finding("drift", "y", 100)])
    assert monitor.policy.verdict["verdict"] == "retrain" and monitor.policy.verdict["rule"] == "drift"
    _decide(monitor, 1000, [])
    assert monitor.policy.verdict["verdict"] == "retrain"
    _decide(monitor, 1101, [])  # both drifts are now older than window_events
    assert monitor.policy.verdict["verdict"] == "continue"


def test_the_verdict_round_trips_and_a_policy_saved_without_one_loads_as_continue():
    monitor = _monitor()
    _decide(monitor, 50, [_finding("performance", None, 50, detector="realized_accuracy")])
    saved = orjson.loads(orjson.dumps(monitor.policy.to_dict()))
    restored = RetrainPolicy.from_dict(saved, POLICY)
    assert restored.verdict == monitor.policy.verdict and restored.to_dict() == saved
    old = {k: v for k, v in saved.items() if k not in ("verdict", "holding")}
    old["format"] = "driftline.retrain_policy/1"
    loaded = RetrainPolicy.from_dict(old, POLICY)
    assert loaded.verdict["verdict"] == "continue" and loaded.verdict["since_at"] == 50
