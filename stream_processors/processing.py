"""One batch of Kafka messages in, state updates and outgoing records out.

``BatchProcessor.process`` does not talk to Kafka: the worker hands it the
messages it consumed, publishes what comes back, then commits. The order of a
batch, which is what makes a restart lose nothing and count nothing twice:

1. Read the stored offset of each partition; skip every message at or below
   it (already applied before a crash).
2. Decode and validate; rejected events become dead-letter records.
3. Load the state of each model version the batch touches, apply each
   message's events in offset order, collect findings as alerts; then join
   the batch's labels to predictions and fold them into performance.
4. (worker) Publish alerts and dead letters and wait for Kafka's ack.
5. (worker) Commit all new states, the label join's writes and the offsets in
   one atomic step, guarded by the offsets read in step 1.
6. (worker) Acknowledge the messages so faust commits them to Kafka.

A crash before 5 replays the batch: the state is as before, and alerts come
out again with the same deterministic ids. A crash after 5 replays nothing.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from detectors import StateVersionError
from detectors.profile import ReferenceProfile
from producers.events import decode_message
from stream_processors.alerts import finding_alert
from stream_processors.label_join import LabelJoin
from stream_processors.model_state import ModelState
from stream_processors.settings import Settings
from stream_processors.state_store import StateStore, TopicPartition

__all__ = ["BatchOutcome", "BatchProcessor", "IncomingMessage"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingMessage:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


@dataclass
class BatchOutcome:
    alerts: list[dict] = field(default_factory=list)
    dead_letters: list[dict] = field(default_factory=list)
    states: dict[tuple[str, str], dict] = field(default_factory=dict)
    offsets: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    events: int = 0
    skipped_messages: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    # for metrics: per (model, version)
    events_by_model: dict[tuple[str, str], int] = field(default_factory=dict)
    newest_event_time: dict[tuple[str, str], float] = field(default_factory=dict)
    readings: dict[tuple[str, str], list[tuple[str, str, float, float]]] = field(default_factory=dict)
    drifting: dict[tuple[str, str], dict[str, bool]] = field(default_factory=dict)
    performance: dict[tuple[str, str], list[tuple[str, str, float, float | None]]] = field(default_factory=dict)
    # the label join's writes, committed with the states and offsets
    writes: list[tuple] = field(default_factory=list)
    labels: int = 0
    unmatched_labels: int = 0


def reason_class(reason: str) -> str:
    """A bounded label for a rejection reason (for counts and metrics)."""
    for prefix, label in (("oversized", "oversized"), ("malformed JSON", "malformed_json"),
                          ("unsupported schema_version", "schema_version"), ("missing field", "missing_field"),
                          ("wrong type", "wrong_type"), ("not finite", "non_finite"), ("timestamp", "timestamp")):
        if reason.startswith(prefix) or prefix in reason:
            return label
    return "invalid"


class BatchProcessor:
    def __init__(self, settings: Settings, store: StateStore) -> None:
        self._settings = settings
        self._store = store
        self._join = LabelJoin(settings, store)

    def process(self, messages: list[IncomingMessage]) -> BatchOutcome:
        outcome = BatchOutcome()
        if not messages:
            return outcome
        partitions = sorted({(m.topic, m.partition) for m in messages})
        stored = self._store.offsets(partitions)
        fresh = sorted((m for m in messages if m.offset > stored[(m.topic, m.partition)]),
                       key=lambda m: (m.topic, m.partition, m.offset))
        outcome.skipped_messages = len(messages) - len(fresh)
        for m in fresh:
            tp = (m.topic, m.partition)
            expected = outcome.offsets.get(tp, (stored[tp], stored[tp]))[0]
            outcome.offsets[tp] = (expected, m.offset)
        # Each message's events are applied as one unit, never merged with the
        # next message's: how a consumer happens to group messages (which
        # differs after a restart) then cannot change a single bit of the state.
        units: list[tuple[tuple[str, str], list[dict]]] = []
        labels: dict[str, list[dict]] = defaultdict(list)
        for m in fresh:
            decoded = decode_message(m.value, self._settings.max_message_bytes)
            for rejection in decoded.rejections:
                outcome.dead_letters.append(self._dead_letter(m, rejection))
            if decoded.kind == "label":
                for event in decoded.events:
                    labels[event["model"]].append(event)
                continue
            groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for event in decoded.events:
                groups[(event["model"], event["model_version"])].append(event)
            units.extend(groups.items())
        states = self._load(list(dict.fromkeys(key for key, _ in units)))
        now = time.time()
        predictions: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for key, events in units:
            for finding in states[key].apply(events):
                outcome.alerts.append(finding_alert(finding, now))
            outcome.events += len(events)
            outcome.events_by_model[key] = outcome.events_by_model.get(key, 0) + len(events)
            predictions[key[0]].extend((key[1], e) for e in events)
        # Labels after the batch's predictions, so a label and its prediction in one batch meet.
        join = self._join.run(predictions, labels, now)
        outcome.writes = join.writes
        outcome.labels = sum(len(v) for v in labels.values())
        outcome.unmatched_labels = sum(join.unmatched.values())
        states.update(self._load([k for k in join.joined if k not in states]))
        for key, joined in join.joined.items():
            for finding in states[key].apply_labels(joined):
                outcome.alerts.append(finding_alert(finding, now))
        outcome.states = {key: state.to_dict() for key, state in states.items()}
        for key, state in states.items():
            if state.last_event_time is not None:
                outcome.newest_event_time[key] = state.last_event_time
            outcome.readings[key] = state.readings()
            outcome.drifting[key] = state.drifting()
            outcome.performance[key] = state.performance.readings()
        for letter in outcome.dead_letters:
            label = reason_class(letter["reason"])
            outcome.rejected_by_reason[label] = outcome.rejected_by_reason.get(label, 0) + 1
        return outcome

    def _load(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], ModelState]:
        if not keys:
            return {}
        saved = self._store.load(keys)
        # A profile matters for a new version, or one that ran without a reference so far.
        wanted = [k for k in keys if saved.get(k) is None or saved[k].get("scenario") == "no_reference"]
        profiles = self._store.profiles(wanted)
        return {key: self._restore(key, saved.get(key), profiles.get(key)) for key in keys}

    def _restore(self, key: tuple[str, str], saved: dict | None, profile_state: dict | None) -> ModelState:
        profile = None
        if profile_state is not None:
            try:
                profile = ReferenceProfile.from_dict(profile_state)
            except (StateVersionError, KeyError, TypeError, ValueError) as exc:
                _log.error("profile of model %s version %s cannot be read (%s); ignoring it", key[0], key[1], exc)
        if saved is None:
            return ModelState(key[0], key[1], self._settings, profile)
        try:
            state = ModelState.from_dict(saved, self._settings)
        except (StateVersionError, KeyError, TypeError, ValueError) as exc:
            _log.error("state of model %s version %s cannot be read (%s); starting it afresh", key[0], key[1], exc)
            return ModelState(key[0], key[1], self._settings, profile)
        if profile is not None:
            state.adopt_profile(profile)
        return state

    def _dead_letter(self, m: IncomingMessage, rejection) -> dict:
        return {
            "reason": rejection.reason,
            "model": rejection.model,
            "event_id": rejection.event_id,
            "source": {"topic": m.topic, "partition": m.partition, "offset": m.offset},
            "worker": self._settings.app_id,
            "created_at": time.time(),
            "payload": getattr(rejection, "excerpt", ""),
        }

