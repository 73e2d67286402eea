"""Verdicts: what the per-model logic decides, and the deterministic id an alert carries on the control topic."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["Finding", "alert_id"]


def alert_id(alert_type: str, model: str, model_version: str, feature: str | None, detector: str,
             last_event_id: str, status: str = "firing", episode_id: str = "") -> str:
    """Deterministic: the same decision always has the same id. A resolution's id also covers its status
    and episode, so it never equals its firing's.

    >>> alert_id("drift", "m", "1", "x", "cusum", "e-9") == alert_id("drift", "m", "1", "x", "cusum", "e-9")
    True
    >>> alert_id("drift", "m", "1", "x", "cusum", "e-9", "resolved", "a") == alert_id("drift", "m", "1", "x", "cusum", "e-9")
    False
    """
    parts = [alert_type, model, model_version, feature or "", detector, last_event_id]
    if status != "firing":
        parts += [status, episode_id]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Finding:
    """A decision that survived the model-level threshold and the cooldown: the makings of an alert."""

    alert_type: str          # drift | data_quality | performance | retrain
    model: str
    model_version: str
    feature: str | None
    detector: str
    statistic: float
    threshold: float
    last_event_id: str
    events_seen: int
    scenario: str
    severity: str
    evidence: dict = field(default_factory=dict)
    status: str = "firing"   # firing | resolved
    episode_id: str = ""     # the id of the firing that opened the episode
    started_at_event: str = ""

    @property
    def id(self) -> str:
        return alert_id(self.alert_type, self.model, self.model_version, self.feature, self.detector,
                        self.last_event_id, self.status, self.episode_id)


def episode_key(finding: Finding) -> str:
    """Drift: one episode per feature, whichever detector fired; other types: per feature and detector."""
    return finding.feature if finding.alert_type == "drift" else \
        f"{finding.alert_type}:{finding.feature}:{finding.detector}"
