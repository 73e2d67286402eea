"""When to retrain: turning a model version's alerts into at most one retrain trigger per episode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from detectors.model.params import PolicyParams, restored
from detectors.model.verdicts import Finding, episode_key
from detectors.online import StateVersionError

if TYPE_CHECKING:
    from detectors.model.monitor import ModelMonitor

__all__ = ["RetrainPolicy"]

_FORMAT = "driftline.retrain_policy/2"
_READABLE = (_FORMAT, "driftline.retrain_policy/1")  # 1 kept no verdict: it starts as continue, since unknown

OUTPUTS = ("__prediction__", "__score__")


class RetrainPolicy:
    """Retrain when the evidence says the model got worse; never twice within ``cooldown_events``
    events of the same model version.

    Rules, first that applies:

    1. ``performance``: a performance alert opened an episode (realized metrics from labels, the error
       stream, or the estimate from scores; all of them fire on degradation only).
    2. ``data_quality``: a critical data-quality alert, if ``on_data_quality``.
    3. ``drift``: ``drift_features`` input features drifted within ``window_events``
       events, only for a version with no performance evidence (no window of production labels measured,
       no estimate from calibrated scores arriving; a labelled reference alone is none) and only if
       ``on_drift_alone``. A version with evidence is retrained on what the evidence shows:
       drift there is reported as drift, and named in a trigger's reasons.

    A performance episode that opens while the cooldown holds triggers back is kept in ``waiting``: if it
    is still open when the cooldown ends, it triggers then, once (rule ``performance``).

    Every trigger says which rule fired, the alerts behind it (ids), the drift seen, and the performance
    figures with their reference values.

    ``verdict`` is the policy's current decision for the version, kept up to date by ``decide``: ``retrain``
    from a published trigger for as long as its cause holds (an episode behind it is still open; for the
    ``drift`` rule, enough input features drifted within ``window_events`` and still no performance evidence),
    else ``continue``, each with
    its reasons and the event (count, id and time) since which it holds. It never decides anything the
    triggers do not: a ``retrain`` verdict is always the latest trigger.
    """

    def __init__(self, params: PolicyParams) -> None:
        self.params = params
        self.recent_drift: dict[str, list] = {}  # input feature -> [event count, alert id] of its latest drift
        self.last_trigger_at: int | None = None
        self.waiting: list[dict] = []  # performance episodes opened during the cooldown (reason fields + key)
        self.verdict: dict = _continue(0, None, None, "no retrain trigger yet")
        self._holding: list[list[str]] = []  # [episode key, episode id] of the reasons of the latest trigger
        self._trigger_reasons: list[dict] = []

    def decide(self, state: ModelMonitor, findings: list[Finding], at: dict[str, int] | None = None) -> list[Finding]:
        """The retrain triggers these findings call for (at most one), and the verdict brought up to date;
        ``at`` gives the event count at which each finding (by id) was decided, so that a drift counts from
        its own event, however the events were cut into calls."""
        triggers = self._triggers(state, findings, at or {})
        if triggers:
            t = triggers[-1]
            self._holding = [[r["key"], r["id"]] for r in self._trigger_reasons]
            self.verdict = {"verdict": "retrain", "rule": t.evidence["rule"],
                            "explanation": t.evidence["explanation"], "trigger_id": t.id,
                            "reasons": t.evidence["reasons"], "drifted_features": t.evidence["drifted_features"],
                            "performance": t.evidence["performance"], "since_at": state.events,
                            "since_event": t.last_event_id, "since_time": state.last_event_time}
        elif self.verdict["verdict"] == "retrain" and not self._holds(state):
            ended = state.last_event_id
            self.verdict = _continue(state.events, ended, state.last_event_time,
                                     f"the cause of retrain trigger {self.verdict['trigger_id']} (rule "
                                     f"{self.verdict['rule']}, event {self.verdict['since_event']}) no longer holds")
            self._holding = []
        if self.verdict["verdict"] == "continue":
            self.verdict.update(self._why_continue(state))
        return triggers

    def _holds(self, state: ModelMonitor) -> bool:
        if self.verdict["rule"] == "drift":  # the rule's own condition: drift without performance evidence
            return len(self.recent_drift) >= self.params.drift_features and not state.performance.has_evidence
        return any(state.episodes.get(key, {}).get("episode_id") == episode for key, episode in self._holding)

    def _why_continue(self, state: ModelMonitor) -> dict:
        """What the evidence says now, for a ``continue``: drift seen, performance against its reference."""
        drifted = sorted(self.recent_drift)
        figures = state.performance.figures()
        held = [f"{kind} {metric} {v['value']:.4g}" + ("" if v.get("reference") is None else
                                                        f" (reference {v['reference']:.4g})")
                for kind in ("realized", "estimated") for metric, v in (figures.get(kind) or {}).items()
                if isinstance(v, dict) and v.get("value") is not None]
        if drifted and state.performance.has_evidence:
            now = (f"{len(drifted)} input feature(s) drifted ({', '.join(drifted)}) but performance holds: "
                   + "; ".join(held))
        elif drifted:
            now = (f"{len(drifted)} input feature(s) drifted ({', '.join(drifted)}); the drift rule needs "
                   f"{self.params.drift_features}" + ("" if self.params.on_drift_alone else " and is off"))
        elif held:
            now = "no drift; performance holds: " + "; ".join(held)
        else:
            now = "no drift, no performance alert"
        if self.waiting:
            now += f"; {len(self.waiting)} performance episode(s) wait for the cooldown to end"
        return {"evidence": now, "drifted_features": drifted, "performance": figures}

    def _triggers(self, state: ModelMonitor, findings: list[Finding], decided_at: dict[str, int]) -> list[Finding]:
        s = self.params
        at = state.events
        firing = [f for f in findings if f.status == "firing"]
        for f in firing:  # input features only: outputs move with their inputs, that is one cause
            if f.alert_type == "drift" and f.feature and f.feature not in OUTPUTS:
                self.recent_drift[f.feature] = [decided_at.get(f.id, at), f.id]
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
        self._trigger_reasons = reasons
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
        return {"format": _FORMAT, "params": self.params.to_dict(), "recent_drift": self.recent_drift,
                "last_trigger_at": self.last_trigger_at, "waiting": self.waiting, "verdict": self.verdict,
                "holding": self._holding}

    @classmethod
    def from_dict(cls, state: dict, params: PolicyParams) -> RetrainPolicy:
        """The saved policy; its rules are the configured ``params`` (none of them shapes learned state)."""
        if state.get("format", _FORMAT) not in _READABLE:  # saved inside model state /3 and /4: no format
            raise StateVersionError(f"unknown retrain policy format {state.get('format')!r}")
        policy = cls(restored(PolicyParams, state.get("params"), params))
        # model state format 3 kept only the event count per feature: the alert id is then unknown ("")
        policy.recent_drift = {k: [int(v), ""] if isinstance(v, (int, float)) else [int(v[0]), str(v[1])]
                               for k, v in state["recent_drift"].items()}
        policy.last_trigger_at = state["last_trigger_at"]
        policy.waiting = [dict(w) for w in state.get("waiting", [])]  # saved before it was kept: none waiting
        if "verdict" in state:
            policy.verdict = dict(state["verdict"])
            policy._holding = [[str(k), str(e)] for k, e in state["holding"]]
        elif policy.last_trigger_at is not None:
            policy.verdict = _continue(int(policy.last_trigger_at), None, None,
                                       "saved before verdicts were kept: the last retrain trigger's cause is unknown")
        return policy


def _continue(at: int, event_id: str | None, time: float | None, why: str) -> dict:
    return {"verdict": "continue", "rule": None, "explanation": why, "trigger_id": None, "reasons": [],
            "since_at": at, "since_event": event_id, "since_time": time}


def _reason(f: Finding) -> dict:
    """What a trigger names of an alert behind it, with where it was decided and its episode's key."""
    return {"id": f.id, "type": f.alert_type, "feature": f.feature, "detector": f.detector,
            "statistic": f.statistic, "threshold": f.threshold, "last_event_id": f.last_event_id,
            "key": episode_key(f)}
