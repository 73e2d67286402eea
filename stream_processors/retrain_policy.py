"""When to retrain: turning a model version's alerts into at most one retrain trigger per episode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_processors.settings import Settings

if TYPE_CHECKING:
    from stream_processors.model_state import Finding, ModelState

__all__ = ["RetrainPolicy"]

OUTPUTS = ("__prediction__", "__score__")


class RetrainPolicy:
    """Retrain when performance falls (realized or estimated), when ``trigger_drift_features`` input
    features drift within ``trigger_window_events`` events, or (if enabled) on a critical data-quality
    alert; never twice within ``trigger_cooldown_events`` events of the same model version."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.recent_drift: dict[str, int] = {}   # input feature -> event count of its latest drift alert
        self.last_trigger_at: int | None = None

    def decide(self, state: ModelState, findings: list[Finding]) -> list[Finding]:
        from stream_processors.model_state import Finding, alert_id

        s = self._settings
        at = state.events
        reasons = [f for f in findings if f.alert_type == "performance"
                   or (s.trigger_on_data_quality and f.alert_type == "data_quality" and f.severity == "critical")]
        for f in findings:  # input features only: outputs move with their inputs, that is one cause
            if f.alert_type == "drift" and f.feature and f.feature not in OUTPUTS:
                self.recent_drift[f.feature] = at
        self.recent_drift = {k: v for k, v in self.recent_drift.items() if at - v <= s.trigger_window_events}
        drifted = sorted(self.recent_drift)
        if not reasons and len(drifted) < s.trigger_drift_features:
            return []
        if self.last_trigger_at is not None and at - self.last_trigger_at < s.trigger_cooldown_events:
            return []
        cause = reasons[0] if reasons else max(findings, key=lambda f: f.events_seen, default=None)
        if cause is None:
            return []
        self.last_trigger_at = at
        evidence = {"reasons": [{"id": alert_id(f.alert_type, f.model, f.model_version, f.feature, f.detector,
                                                f.last_event_id), "type": f.alert_type, "feature": f.feature,
                                 "detector": f.detector, "statistic": f.statistic, "threshold": f.threshold}
                                for f in reasons],
                    "drifted_features": drifted,
                    "rule": "performance" if reasons else
                    f"{len(drifted)} features drifted within {s.trigger_window_events} events",
                    "decision": "statistic >= threshold"}
        statistic = float(len(reasons)) if reasons else float(len(drifted))
        threshold = 1.0 if reasons else float(s.trigger_drift_features)
        return [Finding("retrain", state.model, state.model_version, None, "retrain_policy", statistic, threshold,
                        cause.last_event_id, state.events, state.scenario, "critical", evidence)]

    def to_dict(self) -> dict:
        return {"recent_drift": self.recent_drift, "last_trigger_at": self.last_trigger_at}

    @classmethod
    def from_dict(cls, state: dict, settings: Settings) -> RetrainPolicy:
        policy = cls(settings)
        policy.recent_drift = {k: int(v) for k, v in state["recent_drift"].items()}
        policy.last_trigger_at = state["last_trigger_at"]
        return policy
