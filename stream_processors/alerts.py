"""Alerts on the control topic: a stable JSON schema with deterministic ids.

Schema (every field always present)::

    id              hex digest of type, model, version, feature, detector and
                    the last event id: the same decision always has the same
                    id, so consumers drop duplicates after a worker restart
    type            "drift" | "data_quality" | "performance" | "retrain"
    model, model_version
    feature         feature name, "__prediction__", or null for model-level alerts
    detector        "adwin" | "page_hinkley" | ...
    severity        "warning" | "critical"
    statistic       the detector's test value when it fired
    threshold       the value it was compared with
    scenario        "reference" | "no_reference"
    created_at      epoch seconds when the worker decided
    evidence        {"last_event_id", "events_seen", ...detector specifics}
"""

from __future__ import annotations

import hashlib

from stream_processors.model_state import DriftFinding

__all__ = ["alert_id", "drift_alert", "CRITICAL_SHIFT_SIGMA"]

CRITICAL_SHIFT_SIGMA = 1.0
"""A drift whose recent mean moved this many baseline standard deviations is critical."""


def alert_id(alert_type: str, model: str, model_version: str, feature: str | None, detector: str,
             last_event_id: str) -> str:
    text = "\x1f".join([alert_type, model, model_version, feature or "", detector, last_event_id])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def drift_alert(finding: DriftFinding, created_at: float) -> dict:
    severity = "critical" if abs(finding.shift_sigma) >= CRITICAL_SHIFT_SIGMA else "warning"
    return {
        "id": alert_id("drift", finding.model, finding.model_version, finding.feature, finding.detector,
                       finding.last_event_id),
        "type": "drift",
        "model": finding.model,
        "model_version": finding.model_version,
        "feature": finding.feature,
        "detector": finding.detector,
        "severity": severity,
        "statistic": finding.statistic,
        "threshold": finding.threshold,
        "scenario": "no_reference",
        "created_at": created_at,
        "evidence": {
            "last_event_id": finding.last_event_id,
            "events_seen": finding.events_seen,
            "shift_sigma": finding.shift_sigma,
        },
    }
