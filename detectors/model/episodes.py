"""The alert policy of a model version: which findings become alerts, and when an episode ends.

Episodes follow Alertmanager: the first firing of a key opens one and is published (``firing``); while it
is open, firings of the same key extend it silently; ``cooldown_events`` events (or joined labels) without
one close it, with a ``resolved`` message. Window tests are held to a model-level alpha (``window_alpha``
over the tests per window); severity says how far a finding is from normal.
"""

from __future__ import annotations

import dataclasses

from detectors.model.performance_tracker import ERROR
from detectors.model.verdicts import Finding, episode_key

__all__ = ["AlertPolicy", "HOLD_ALPHA", "KEEP_CLOSED"]

KEEP_CLOSED = 20
HOLD_ALPHA = 0.01  # a window this unlikely under the reference holds its open episode open (1 in 100 by chance)


def _clock_of(finding: Finding) -> str:
    """Label-driven performance episodes count joined labels; everything else counts inference events."""
    labelled = finding.alert_type == "performance" and (finding.feature == ERROR
                                                        or finding.detector.startswith("realized_"))
    return "labels" if labelled else "events"


def _order(candidate: tuple[int, Finding | str]) -> tuple[int, str]:
    """By position, then by column: columns are met in the order they appeared, which depends on the cut."""
    position, finding = candidate
    return position, finding if isinstance(finding, str) else (finding.feature or "")


class AlertPolicy:
    """The episodes and findings of ``ModelMonitor`` (its base: it reads the monitor's ``params``, identity,
    ``events``, ``kinds``, ``window_tests``, ``episodes`` and ``closed_episodes``)."""

    def _decide_in_order(self, clock: str, before: int, candidates: list[tuple[int, Finding | str]],
                         ids: list[str]) -> list[Finding]:
        """Run the episodes of one message's findings event by event, so that where an episode fires and
        resolves depends on the event sequence only, never on how it was cut into messages. ``candidates``
        are (position in the message, finding), or (position, episode key) for a hold: the condition is still
        there without a firing, so the episode's quiet stretch starts again; ``ids`` are the message's event
        (or label) ids."""
        out = []
        for position, finding in sorted(candidates, key=_order):
            at = before + position + 1
            out += self._resolve(clock, before, at, ids)  # a quiet stretch that ended before this firing
            if isinstance(finding, str):
                if finding in self.episodes:
                    self.episodes[finding]["last_at"] = max(self.episodes[finding]["last_at"], at)
            else:
                out += self._episode(finding, at)
        return out + self._resolve(clock, before, before + len(ids), ids)

    def _episode(self, finding: Finding, at: int) -> list[Finding]:
        key = episode_key(finding)
        out = []
        episode = self.episodes.get(key)
        if episode is not None and at - episode["last_at"] >= self.params.cooldown_events:
            out += self._close(key, finding.last_event_id, episode["last_at"] + self.params.cooldown_events)
            episode = None
        if episode is not None:
            episode["last_at"] = max(episode["last_at"], at)  # a window verdict may name an earlier event
            episode["firings"] += 1
            return out
        opened = dataclasses.replace(finding, started_at_event=finding.last_event_id)
        opened = dataclasses.replace(opened, episode_id=opened.id)
        self.episodes[key] = {"episode_id": opened.episode_id, "type": finding.alert_type,
                              "feature": finding.feature, "detector": finding.detector,
                              "severity": finding.severity, "started_at_event": finding.last_event_id,
                              "started_at": at, "last_at": at, "firings": 1, "clock": _clock_of(finding)}
        return out + [opened]

    def _resolve(self, clock: str, before: int, now: int, ids: list[str]) -> list[Finding]:
        """Close the open episodes on ``clock`` whose quiet stretch ended by ``now``; ``ids`` are the event
        ids of the positions ``before + 1 .. now`` on that clock."""
        quiet = self.params.cooldown_events
        out = []
        for _, key in sorted((e["last_at"], k) for k, e in self.episodes.items()  # in the order they ended
                             if e["clock"] == clock and now - e["last_at"] >= quiet):
            ended = self.episodes[key]["last_at"] + quiet
            out += self._close(key, ids[min(max(ended - before - 1, 0), len(ids) - 1)], ended)
        return out

    def _close(self, key: str, last_event_id: str, ended: int) -> list[Finding]:
        episode = self.episodes.pop(key)
        episode.update(ended_at_event=last_event_id, ended_at=ended)
        self.closed_episodes = (self.closed_episodes + [episode])[-KEEP_CLOSED:]
        if not episode["episode_id"]:
            return []  # migrated from a format that kept no episode ids: nothing to resolve downstream
        unit = "labels" if episode["clock"] == "labels" else "events"
        quiet = float(ended - episode["last_at"])
        return [Finding(episode["type"], self.model, self.model_version, episode["feature"], episode["detector"],
                        quiet, float(self.params.cooldown_events), last_event_id,
                        ended if unit == "events" else self.events, self.scenario,
                        episode["severity"],
                        {"decision": f"{unit} without a firing or its condition >= threshold",
                         "firings": episode["firings"], "quiet_unit": unit, "position": -1},
                        status="resolved", episode_id=episode["episode_id"],
                        started_at_event=episode["started_at_event"])]

    # -- findings --------------------------------------------------------------------------------------------
    def _online_finding(self, name: str, firing, ids: list[str]) -> Finding:
        severity = "critical" if abs(firing.shift_sigma) >= 1.0 else "warning"
        return Finding("drift", self.model, self.model_version, name, firing.detector, firing.statistic,
                       firing.threshold, ids[firing.position], firing.events_seen, self.scenario, severity,
                       {"shift_sigma": firing.shift_sigma, "decision": "statistic > threshold",
                        "position": firing.position})

    def _mismatch_finding(self, name: str, count: int, first_id: str, events_seen: int) -> Finding:
        """Named after the first mismatched value of the message: where it is does not depend on batching."""
        return Finding("data_quality", self.model, self.model_version, name, "type_mismatch", float(count), 0.0,
                       first_id, events_seen, self.scenario, "critical",
                       {"expected_kind": self.kinds[name], "mismatched_values": count,
                        "decision": "statistic > threshold", "position": -1})

    def _performance_finding(self, f, last_event_id: str, feature: str | None, events_seen: int) -> Finding | str:
        """The finding, or for a hold the key of the episode it holds open."""
        if f.hold:
            return f"performance:{feature}:{f.detector}"
        return Finding("performance", self.model, self.model_version, feature, f.detector, f.statistic,
                       f.threshold, last_event_id, events_seen, self.scenario, "critical", dict(f.evidence))

    def tests_per_window(self) -> int:
        """Distribution, missing rate, and range or unseen categories: three per ready column."""
        return 3 * sum(1 for t in self.window_tests.values() if t.ready)

    def window_threshold(self) -> float:
        """The p-value below which a window test alerts: ``window_alpha`` over the tests per window."""
        return self.params.window_alpha / max(self.tests_per_window(), 1)

    def _significant(self, windowed: list, ids: list[str]) -> list[tuple[int, Finding | str]]:
        """Model-level control: a window test alerts only below ``window_threshold()``; below ``HOLD_ALPHA``,
        it holds an open episode of its key open."""
        if not windowed:
            return []
        threshold = self.window_threshold()
        out = []
        for name, f in windowed:
            if f.p_value >= threshold:
                if f.p_value < HOLD_ALPHA:  # not significant across the model, and still not normal
                    out.append((f.position, name if f.alert_type == "drift" else f"{f.alert_type}:{name}:{f.test}"))
                continue
            severity = "critical" if f.alert_type == "drift" and f.evidence.get("psi", 0) >= 0.25 else "warning"
            finding = Finding(f.alert_type, self.model, self.model_version, name, f.test, f.p_value, threshold,
                              ids[f.position], self.events + f.position + 1, self.scenario, severity,
                              {**f.evidence, "test_statistic": f.statistic, "decision": "p_value < threshold",
                               "position": f.position})
            out.append((f.position, finding))
        return out
