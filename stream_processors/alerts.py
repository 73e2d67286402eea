"""Alerts on the control topic: a stable JSON schema with deterministic ids.

Schema (every field always present)::

    id              hex digest of type, model, version, feature, detector and
                    the last event id (for a resolution, also its status and
                    episode): the same decision always has the same id, so
                    consumers drop duplicates after a worker restart
    type            "drift" | "data_quality" | "performance" | "retrain" |
                    "state_quarantined" | "state_lost" (worker faults, below)
    model, model_version
    feature         feature name, "__prediction__", "__score__", or null for model-level alerts
    detector        "cusum" | "adwin" | "page_hinkley" | "chi_square" | "missing_rate" |
                    "out_of_range" | "unseen_category" | "type_mismatch" | "realized_accuracy" |
                    "realized_mae" | "cbpe_accuracy" | "confidence_accuracy" | "retrain_policy"
    severity        "warning" | "critical" (a resolution keeps its firing's)
    status          "firing" | "resolved" (Alertmanager's lifecycle)
    episode_id      the id of the firing that opened the episode (a firing's own id)
    started_at_event  the last event id of that firing: where the episode began
    statistic       the value the decision was made on
    threshold       what it was compared with (evidence.decision says how)
    scenario        "reference" | "no_reference"
    created_at      epoch seconds when the worker decided
    evidence        {"last_event_id", "events_seen", "decision", ...test specifics}
    signature       only with a signing key set: {"alg", "key_id", "value"}, an HMAC-SHA256 over the
                    rest of the message (stream_processors/signing.py); every message of the control
                    topic goes through :func:`control_record`, which adds it

Two alerts are about the worker's own state, not about a model's data; both
are ``critical`` and have ``detector`` "state_loader":

- ``state_quarantined``: a model version's saved state, or its reference
  profile, could not be loaded. The record was moved aside under its own key
  (``driftline:{app}:quarantine:{record}:{evidence.sha256}`` in Redis), and the version continues from a fresh state
  (``driftline status`` says so). ``evidence.error`` names what failed.
- ``state_lost``: Kafka says this worker group consumed a partition, but Redis
  holds no offset for it: the state of the models on that partition is gone.
  ``model`` is null; ``evidence`` names the topic, partition and offsets.
"""

from __future__ import annotations

import hashlib

import orjson

from detectors.model.verdicts import Finding, alert_id
from stream_processors.signing import Signer

__all__ = ["alert_id", "control_record", "finding_alert", "quarantine_alert", "state_lost_alert"]


def finding_alert(finding: Finding, created_at: float) -> dict:
    evidence = {k: v for k, v in finding.evidence.items() if k != "position"}
    own_id = finding.id
    return {
        "id": own_id,
        "status": finding.status,
        "episode_id": finding.episode_id or own_id,
        "started_at_event": finding.started_at_event or finding.last_event_id,
        "type": finding.alert_type,
        "model": finding.model,
        "model_version": finding.model_version,
        "feature": finding.feature,
        "detector": finding.detector,
        "severity": finding.severity,
        "statistic": finding.statistic,
        "threshold": finding.threshold,
        "scenario": finding.scenario,
        "created_at": created_at,
        "evidence": {"last_event_id": finding.last_event_id, "events_seen": finding.events_seen, **evidence},
    }


def _worker_alert(alert_type: str, model: str | None, model_version: str | None, ident: str, created_at: float,
                  evidence: dict) -> dict:
    own_id = alert_id(alert_type, model or "", model_version or "", None, "state_loader", ident)
    return {
        "id": own_id,
        "status": "firing",
        "episode_id": own_id,  # an event, not a condition: there is no resolution to wait for
        "started_at_event": None,
        "type": alert_type,
        "model": model,
        "model_version": model_version,
        "feature": None,
        "detector": "state_loader",
        "severity": "critical",
        "statistic": 1.0,
        "threshold": 0.0,
        "scenario": None,
        "created_at": created_at,
        "evidence": {"last_event_id": None, "events_seen": 0, **evidence},
    }


def quarantine_alert(kind: str, model: str, model_version: str, error: str, raw: bytes,
                     created_at: float) -> dict:
    digest = hashlib.sha256(raw).hexdigest()
    return _worker_alert("state_quarantined", model, model_version, f"{kind}:{digest}", created_at, {
        "record": kind, "error": error, "sha256": digest,
        "decision": f"the saved {kind} could not be loaded; the version continues from a fresh state"})


def state_lost_alert(topic: str, partition: int, committed: int, earliest: int, rebuild: bool,
                     created_at: float) -> dict:
    action = f"rebuilding from offset {earliest}" if rebuild else \
        f"continuing from offset {committed}; set DRIFTLINE_REBUILD_ON_STATE_LOSS=true to rebuild"
    return _worker_alert("state_lost", None, None, f"{topic}:{partition}:{committed}", created_at, {
        "topic": topic, "partition": partition, "kafka_committed_offset": committed, "earliest_offset": earliest,
        "rebuild": rebuild, "decision": f"Redis holds no offset for a consumed partition; {action}"})


def control_record(alert: dict, signer: Signer | None) -> bytes:
    """The bytes of ``alert`` on the control topic: signed when the worker has a signing key."""
    return orjson.dumps(signer.sign(alert) if signer is not None else alert)
