"""Alerts on the control topic: a stable JSON schema with deterministic ids.

Schema (every field always present)::

    id              hex digest of type, model, version, feature, detector and
                    the last event id (for a resolution, also its status and
                    episode): the same decision always has the same id, so
                    consumers drop duplicates after a worker restart
    type            "drift" | "data_quality" | "performance" | "retrain"
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
"""

from __future__ import annotations

from stream_processors.model_state import Finding, alert_id

__all__ = ["alert_id", "finding_alert"]


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
