"""The control topic's alert records: every field of the documented schema, ids deterministic and distinct
between a firing and its resolution."""

from __future__ import annotations

import hashlib

from detectors.model.verdicts import Finding, alert_id
from stream_processors.alerts import finding_alert, quarantine_alert, state_lost_alert

SCHEMA = {"id", "status", "episode_id", "started_at_event", "type", "model", "model_version", "feature",
          "detector", "severity", "statistic", "threshold", "scenario", "created_at", "evidence"}


def _finding(**changes) -> Finding:
    base = dict(alert_type="drift", model="m", model_version="1", feature="x", detector="cusum", statistic=9.5,
                threshold=5.0, last_event_id="e42", events_seen=42, scenario="no_reference", severity="critical",
                evidence={"shift_sigma": 1.2, "position": 3})
    return Finding(**{**base, **changes})


def test_a_firing_alert_carries_the_schema_and_its_own_episode():
    alert = finding_alert(_finding(), created_at=12.5)
    assert set(alert) == SCHEMA
    expected_id = hashlib.sha256("\x1f".join(["drift", "m", "1", "x", "cusum", "e42"]).encode()).hexdigest()[:32]
    assert alert["id"] == expected_id == alert_id("drift", "m", "1", "x", "cusum", "e42")
    assert alert["episode_id"] == alert["id"] and alert["started_at_event"] == "e42"
    assert alert["status"] == "firing" and alert["created_at"] == 12.5
    assert alert["evidence"] == {"last_event_id": "e42", "events_seen": 42, "shift_sigma": 1.2}  # no position
    assert (alert["statistic"], alert["threshold"], alert["severity"]) == (9.5, 5.0, "critical")


def test_a_resolution_names_its_episode_and_has_an_id_of_its_own():
    firing = finding_alert(_finding(), 1.0)
    resolved = finding_alert(_finding(status="resolved", episode_id=firing["id"], started_at_event="e42",
                                      last_event_id="e900"), 2.0)
    assert resolved["episode_id"] == firing["id"] and resolved["started_at_event"] == "e42"
    assert resolved["id"] != firing["id"]
    assert resolved["id"] != alert_id("drift", "m", "1", "x", "cusum", "e900")  # status and episode count
    assert finding_alert(_finding(), 99.0)["id"] == firing["id"]  # deterministic: replays give the same id


def test_worker_alerts_carry_the_schema():
    q = quarantine_alert("state", "m", "1", "ValueError: bad", b"raw bytes", 3.0)
    assert set(q) == SCHEMA and q["type"] == "state_quarantined" and q["severity"] == "critical"
    assert q["evidence"]["sha256"] == hashlib.sha256(b"raw bytes").hexdigest()
    assert q["id"] == quarantine_alert("state", "m", "1", "other text", b"raw bytes", 4.0)["id"]
    assert q["id"] != quarantine_alert("profile", "m", "1", "ValueError: bad", b"raw bytes", 3.0)["id"]
    lost = state_lost_alert("t", 2, 100, 0, rebuild=True, created_at=5.0)
    assert set(lost) == SCHEMA and lost["type"] == "state_lost" and lost["model"] is None
    assert lost["evidence"]["rebuild"] is True and "offset 0" in lost["evidence"]["decision"]
    assert lost["id"] != state_lost_alert("t", 2, 101, 0, rebuild=True, created_at=5.0)["id"]
