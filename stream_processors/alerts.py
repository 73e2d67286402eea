"""Alerts on the control topic: a stable JSON schema with deterministic ids.

Schema (every field always present)::

    id              hex digest of type, model, version, feature, detector and
                    the last event id: the same decision always has the same
                    id, so consumers drop duplicates after a worker restart
    type            "drift" | "data_quality" | "performance" | "retrain"
    model, model_version
    feature         feature name, "__prediction__", "__score__", or null for model-level alerts
    detector        "cusum" | "adwin" | "page_hinkley" | "chi_square" | "missing_rate" |
                    "out_of_range" | "unseen_category" | "type_mismatch" | "realized_accuracy" |
                    "realized_mae" | "cbpe_accuracy" | "confidence_accuracy" | "retrain_policy"
    severity        "warning" | "critical"
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
    return {
        "id": alert_id(finding.alert_type, finding.model, finding.model_version, finding.feature, finding.detector,
                       finding.last_event_id),
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
