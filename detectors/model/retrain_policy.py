"""When to retrain: turning a model version's alerts into at most one retrain trigger per episode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from detectors.model.params import PolicyParams, restored
from detectors.model.verdicts import Finding, episode_key
from detectors.online import StateVersionError

if TYPE_CHECKING:
    from detectors.model.monitor import ModelMonitor

__all__ = ["RetrainPolicy"]

_FORMAT = "driftline.retrain_policy/1"

OUTPUTS = ("__prediction__", "__score__")


class RetrainPolicy:
    """Retrain when the evidence says the model got worse; never twice within ``cooldown_events``
    events of the same model version.

    Rules, first that applies:

    1. ``performance``: a performance alert opened an episode (realized metrics from labels, the error
       stream, or the estimate from scores; all of them fire on degradation only).
    2. ``data_quality``: a critical data-quality alert, if ``on_data_quality``.
    3. ``drift``: ``drift_features`` input features drifted within ``window_events``
       events, only for a version with no performance evidence (no production labels joined, no
       estimate from calibrated scores arriving; a labelled reference alone is none) and only if
       ``on_drift_alone``. A version with evidence is retrained on what the evidence shows:
       drift there is reported as drift, and named in a trigger's reasons.

    A performance episode that opens while the cooldown holds triggers back is kept in ``waiting``: if it
    is still open when the cooldown ends, it triggers then, once (rule ``performance``).

    Every trigger says which rule fired, the alerts behind it (ids), the drift seen, and the performance
    figures with their reference values.
    """

    def __init__(self, params: PolicyParams) -> None:
        self.params = params
        self.recent_drift: dict[str, list] = {}  # input feature -> [event count, alert id] of its latest drift
        self.last_trigger_at: int | None = None
        self.waiting: list[dict] = []  # performance episodes opened during the cooldown (reason fields + key)

    def decide(self, state: ModelMonitor, findings: list[Finding]) -> list[Finding]:
        s = self.params
        at = state.events
        firing = [f for f in findings if f.status == "firing"]
        for f in firing:  # input features only: outputs move with their inputs, that is one cause
            if f.alert_type == "drift" and f.feature and f.feature not in OUTPUTS:
                self.recent_drift[f.feature] = [at, f.id]
        self.recent_drift = {k: v for k, v in self.recent_drift.items() if at - v[0] <= s.window_events}
        drifted = sorted(self.recent_drift)
        performance = [f for f in firing if f.alert_type == "performance"]
        quality = [f for f in firing if s.on_data_quality and f.alert_type == "data_quality"
                   and f.severity == "critical"]
        has_evidence = state.performance.has_evidence
        cooling = self.last_trigger_at is not None and at - self.last_trigger_at < s.cooldown_events
        self.waiting = [w for w in self.waiting + [_reason(f) for f in performance if cooling]
                        if state.episodes.get(w["key"], {}).get("episode_id") == w["id"]]
        if not performance and not cooling and self.waiting:
            performance, self.waiting = self.waiting, []
        else:
            performance = [_reason(f) for f in performance]
        if performance:
            rule, reasons = "performance", performance
            explanation = "performance fell past its bound: " + ", ".join(
                f"{f['detector']}{' on ' + f['feature'] if f['feature'] else ''} {f['statistic']:.4g} "
                f"(threshold {f['threshold']:.4g})" for f in performance)
        elif quality:
            rule, reasons = "data_quality", quality
            explanation = "critical data-quality alert: " + ", ".join(f"{f.feature} {f.detector}" for f in quality)
        elif not has_evidence and s.on_drift_alone and len(drifted) >= s.drift_features:
            rule, reasons = "drift", []
            explanation = (f"{len(drifted)} input features drifted within {s.window_events} events and "
                           "this version has no performance evidence (no production labels, no estimate from "
                           "calibrated scores)")
        else:
            return []
        if cooling:
            return []
        if rule == "performance":
            self.waiting = []
        else:
            reasons = [_reason(f) for f in reasons]
        cause = reasons[0]["last_event_id"] if reasons else \
            max(firing, key=lambda f: f.events_seen).last_event_id if firing else None
        if cause is None:
            return []
        self.last_trigger_at = at
        evidence = {"rule": rule, "explanation": explanation,
                    "reasons": [{k: v for k, v in f.items() if k not in ("last_event_id", "key")} for f in reasons],
                    "drift": [{"feature": k, "id": v[1]} for k, v in sorted(self.recent_drift.items())],
                    "drifted_features": drifted,
                    "performance_evidence": has_evidence,
                    "performance": state.performance.figures(),
                    "decision": "statistic >= threshold"}
        statistic = float(len(reasons)) if reasons else float(len(drifted))
        threshold = 1.0 if reasons else float(s.drift_features)
        return [Finding("retrain", state.model, state.model_version, None, "retrain_policy", statistic, threshold,
                        cause, state.events, state.scenario, "critical", evidence)]

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "params": self.params.to_dict(), "recent_drift": self.recent_drift, "last_trigger_at": self.last_trigger_at, "waiting": self.waiting}

    @classmethod
    def from_dict(cls, state: dict, params: PolicyParams) -> RetrainPolicy:
        """The saved policy; its rules are the configured ``params`` (none of them shapes learned state)."""
        if state.get("format", _FORMAT) != _FORMAT:  # saved inside model state /3 and /4: no format, no params
            raise StateVersionError(f"unknown retrain policy format {state.get('format')!r}")
        policy = cls(restored(PolicyParams, state.get("params"), params))
        # model state format 3 kept only the event count per feature: the alert id is then unknown ("")
        policy.recent_drift = {k: [int(v), ""] if isinstance(v, (int, float)) else [int(v[0]), str(v[1])]
                               for k, v in state["recent_drift"].items()}
        policy.last_trigger_at = state["last_trigger_at"]
        policy.waiting = [dict(w) for w in state.get("waiting", [])]  # saved before it was kept: none waiting
        return policy


def _reason(f: Finding) -> dict:
    """What a trigger names of an alert behind it, with where it was decided and its episode's key."""
    return {"id": f.id, "type": f.alert_type, "feature": f.feature, "detector": f.detector,
            "statistic": f.statistic, "threshold": f.threshold, "last_event_id": f.last_event_id,
            "key": episode_key(f)}
