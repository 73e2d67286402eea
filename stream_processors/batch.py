"""One batch of Kafka messages in, state updates and outgoing records out.

``BatchProcessor.process`` does not talk to Kafka: the worker hands it the
messages it consumed, publishes what comes back, then commits. The order of a
batch, which is what makes a restart lose nothing and count nothing twice:

1. Read the stored offset of each partition; skip every message at or below
   it (already applied before a crash).
2. Decode and validate; rejected events become dead-letter records with a
   reason code.
3. Load the state of each model version the batch touches (a state or profile
   that cannot be read is quarantined, alerted, and the version starts
   afresh), apply each message's events in offset order, collect findings as
   alerts; then join the batch's labels to predictions and fold them into
   performance. Applying is guarded per message and, when a message fails,
   per event: a failing event is dead-lettered (``apply_failed``) and its
   neighbours are applied. Each new state is serialised here, so what the
   commit writes is known to load.
4. (worker) Publish alerts and dead letters and wait for Kafka's ack.
5. (worker) Commit all new states, the label join's writes, quarantined
   records and the offsets in one atomic step, guarded by the offsets read in
   step 1. On a conflict (another worker advanced a partition) the worker
   redoes the batch from step 1.
6. (worker) Return to faust's stream, which acknowledges the messages; faust
   commits their offsets to Kafka within ``broker_commit_interval``. Kafka's
   committed offset may lag: on assignment the worker seeks to the offset
   after the one Redis holds.

In short: flush outputs (4), write state with the offsets (5), commit offsets
to Kafka (6).

A crash before 5 replays the batch: the state is as before, and alerts come
out again with the same deterministic ids. A crash after 5 replays nothing.
Nothing here raises on bad input: a message ends applied or dead-lettered.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from detectors.profile import ReferenceProfile
from producers.events import MAX_ABS_NUMBER, Rejection, decode_message, features_within_range
from stream_processors.alerts import finding_alert, quarantine_alert
from detectors.model.params import JoinParams, MonitorParams, PerformanceParams, PolicyParams
from detectors.model.writes import JoinWrite
from stream_processors.errors import ServiceUnavailable
from detectors.model.label_join import LabelJoin
from detectors.model.monitor import ModelMonitor, ValueOutOfRange
from stream_processors.settings import Settings
from stream_processors.state import Quarantine, StateStore, TopicPartition

__all__ = ["BatchOutcome", "BatchProcessor", "IncomingMessage", "LogicParams", "is_fatal", "logic_params"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingMessage:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


def is_fatal(exc: BaseException) -> bool:
    """Exceptions that must stop the process rather than be counted against one message.

    Everything else is caught, including river's ``PanicException`` (a BaseException raised when its compiled
    core reads damaged bytes)."""
    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)) or \
        type(exc).__name__ == "CancelledError"


@dataclass(frozen=True)
class LogicParams:
    """The parameters of the per-model logic, as the worker's settings give them."""

    monitor: MonitorParams
    join: JoinParams


def logic_params(settings: Settings) -> LogicParams:
    """The one place where ``Settings`` become the logic's explicit parameters."""
    s = settings
    performance = PerformanceParams(window=s.performance_window, baseline_windows=s.performance_baseline_windows,
                                    min_drop=s.performance_min_drop, error_monitor=s.category_monitor_params())
    policy = PolicyParams(window_events=s.trigger_window_events, cooldown_events=s.trigger_cooldown_events,
                          drift_features=s.trigger_drift_features, on_drift_alone=s.trigger_on_drift_alone,
                          on_data_quality=s.trigger_on_data_quality)
    monitor = MonitorParams(max_features=s.max_features, window_size=s.window_size, edge_events=s.edge_events,
                            baseline_windows=s.baseline_windows, category_monitors=s.category_monitors,
                            cooldown_events=s.cooldown_events, window_alpha=s.window_alpha,
                            max_abs_number=MAX_ABS_NUMBER, monitor=s.monitor_params(),
                            category_monitor=s.category_monitor_params(), performance=performance, policy=policy)
    join = JoinParams(keep_predictions=s.keep_predictions, prediction_ttl_s=s.prediction_ttl_s,
                      label_wait_s=s.label_wait_s)
    return LogicParams(monitor, join)


def _what(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


@dataclass
class BatchOutcome:
    alerts: list[dict] = field(default_factory=list)
    dead_letters: list[dict] = field(default_factory=list)
    states: dict[tuple[str, str], bytes] = field(default_factory=dict)
    """New saved form (JSON bytes) of each model version the batch touched."""
    events_total: dict[tuple[str, str], int] = field(default_factory=dict)
    quarantined: list[Quarantine] = field(default_factory=list)
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
    writes: list[JoinWrite] = field(default_factory=list)
    labels: int = 0
    unmatched_labels: int = 0


class BatchProcessor:
    def __init__(self, settings: Settings, store: StateStore) -> None:
        self._settings = settings
        self.params = logic_params(settings)
        self._store = store
        self._join = LabelJoin(self.params.join, store)

    def process(self, messages: list[IncomingMessage]) -> BatchOutcome:
        outcome = BatchOutcome()
        if not messages:
            return outcome
        partitions = sorted({(m.topic, m.partition) for m in messages})
        stored = self._store.offsets(partitions)
        usable = _since_last_rewind(messages)
        fresh = sorted((m for m in usable if m.offset > stored[(m.topic, m.partition)]),
                       key=lambda m: (m.topic, m.partition, m.offset))
        outcome.skipped_messages = len(messages) - len(fresh)
        for m in fresh:
            tp = (m.topic, m.partition)
            expected = outcome.offsets.get(tp, (stored[tp], stored[tp]))[0]
            outcome.offsets[tp] = (expected, m.offset)
        # Each message's events are applied as one unit, never merged with the
        # next message's: how a consumer happens to group messages (which
        # differs after a restart) then cannot change a single bit of the state.
        units: list[tuple[tuple[str, str], IncomingMessage, list[dict]]] = []
        labels: dict[str, list[dict]] = defaultdict(list)
        label_sources: dict[tuple[str, str], IncomingMessage] = {}
        for m in fresh:
            # feature ranges are checked on whole columns as they are applied (ModelMonitor)
            decoded = decode_message(m.value, self._settings.max_message_bytes, check_feature_range=False)
            for rejection in decoded.rejections:
                outcome.dead_letters.append(self._dead_letter(m, rejection))
            if decoded.kind == "label":
                for event in decoded.events:
                    labels[event["model"]].append(event)
                    label_sources[(event["model"], event["event_id"])] = m
                continue
            groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for event in decoded.events:
                groups[(event["model"], event["model_version"])].append(event)
            units.extend((key, m, events) for key, events in groups.items())
        models = _ModelMonitors(self, outcome)
        models.load(list(dict.fromkeys(key for key, _, _ in units)))
        now = time.time()
        predictions: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for key, m, events in units:
            applied = models.apply(key, m, events, now)
            outcome.events += len(applied)
            outcome.events_by_model[key] = outcome.events_by_model.get(key, 0) + len(applied)
            predictions[key[0]].extend((key[1], e) for e in applied)
        # Labels after the batch's predictions, so a label and its prediction in one batch meet.
        try:
            join = self._join.run(predictions, labels, now)
        except BaseException as exc:  # noqa: BLE001 - the last guard: nothing in a batch may stop the worker
            if is_fatal(exc) or isinstance(exc, ServiceUnavailable):
                raise
            _log.error("the label join failed (%s); this batch's labels are dead-lettered", _what(exc))
            for model, events in labels.items():
                for event in events:
                    outcome.dead_letters.append(self._dead_letter(label_sources[(model, event["event_id"])], Rejection(
                        "apply_failed", f"the label could not be joined: {_what(exc)}", model, event["event_id"],
                        _excerpt_of(event))))
            join = self._join.run(predictions, {}, now)
            labels = {}
        outcome.writes = join.writes
        outcome.labels = sum(len(v) for v in labels.values())
        outcome.unmatched_labels = sum(join.unmatched.values())
        models.load([k for k in join.joined if k not in models.states])
        for key, joined in join.joined.items():
            for item in models.apply_labels(key, joined, now):
                source = label_sources.get((key[0], item.event_id))
                outcome.dead_letters.append(self._dead_letter(source, Rejection(
                    "apply_failed", "the label could not be applied to the model's performance", key[0],
                    item.event_id, _excerpt_of({"event_id": item.event_id, "label": item.label}))))
        for key, state in models.states.items():
            try:
                outcome.states[key] = orjson.dumps(state.to_dict())
            except BaseException as exc:  # noqa: BLE001 - a state that cannot be saved must not stop the worker
                if is_fatal(exc):
                    raise
                models.unsavable(key, exc)
                continue
            outcome.events_total[key] = state.events
            if state.last_event_time is not None:
                outcome.newest_event_time[key] = state.last_event_time
            outcome.readings[key] = state.readings()
            outcome.drifting[key] = state.drifting()
            outcome.performance[key] = state.performance.readings()
        for letter in outcome.dead_letters:
            code = letter["reason_code"]
            outcome.rejected_by_reason[code] = outcome.rejected_by_reason.get(code, 0) + 1
        return outcome

    def _dead_letter(self, m: IncomingMessage | None, rejection: Rejection) -> dict:
        source = None if m is None else {"topic": m.topic, "partition": m.partition, "offset": m.offset}
        return {
            "id": _dead_letter_id(source, rejection),
            "reason_code": rejection.code,
            "reason": rejection.reason,
            "model": rejection.model,
            "event_id": rejection.event_id,
            "source": source,
            "worker": self._settings.app_id,
            "created_at": time.time(),
            "payload": rejection.excerpt,
        }


class _ModelMonitors:
    """The model versions of one batch: loaded (or quarantined), applied with guards, serialised.

    A message whose events raise while being applied is not allowed to take the worker, or its neighbours,
    down. The version is rebuilt from its state at the start of the batch plus the units that did apply, then
    the message's events are tried one by one. An event that also fails on a brand-new state is a bad event
    (dead-lettered, ``apply_failed``); one that only fails on the loaded state means that state is damaged: it
    is quarantined and the version continues from a fresh state.
    """

    def __init__(self, processor: BatchProcessor, outcome: BatchOutcome) -> None:
        self._p = processor
        self._outcome = outcome
        self.states: dict[tuple[str, str], ModelMonitor] = {}
        self._saved: dict[tuple[str, str], dict | None] = {}
        self._profiles: dict[tuple[str, str], ReferenceProfile | None] = {}
        self._profiles_raw: dict[tuple[str, str], dict | bytes | None] = {}
        self._applied: dict[tuple[str, str], list[list[dict]]] = defaultdict(list)
        self._labels_applied: dict[tuple[str, str], list[list]] = defaultdict(list)

    def load(self, keys: list[tuple[str, str]]) -> None:
        if not keys:
            return
        store = self._p._store
        saved = store.load(keys)
        # A profile matters for a new version, or one that ran without a reference so far.
        wanted = [k for k in keys if not isinstance(saved.get(k), dict) or saved[k].get("scenario") == "no_reference"]
        profiles = store.profiles(wanted)
        for key in keys:
            self._profiles_raw[key] = profiles.get(key)
            self._profiles[key] = self._read_profile(key, profiles.get(key))
            self.states[key] = self._restore(key, saved.get(key))

    def _read_profile(self, key: tuple[str, str], raw: dict | bytes | None) -> ReferenceProfile | None:
        if raw is None:
            return None
        try:
            profile = ReferenceProfile.from_dict(_as_record(raw))
            for name in profile.columns:  # everything a state takes from it, so damage shows now, not mid-batch
                profile.window_test(name)
                profile.monitor(name)
                profile.category_monitors(name)
            return profile
        except BaseException as exc:  # noqa: BLE001
            if is_fatal(exc):
                raise
            self._quarantine("profile", key, raw, exc)
            return None

    def _restore(self, key: tuple[str, str], saved: dict | bytes | None) -> ModelMonitor:
        profile = self._profiles[key]
        params = self._p.params.monitor
        if saved is None:
            self._saved[key] = None
            try:
                return ModelMonitor(key[0], key[1], params, profile)
            except BaseException as exc:  # noqa: BLE001
                if is_fatal(exc) or profile is None:
                    raise
                self._quarantine("profile", key, self._profiles_raw[key], exc)
                self._profiles[key] = None
                return ModelMonitor(key[0], key[1], params, None)
        try:
            state = ModelMonitor.from_dict(_as_record(saved), params)
            if profile is not None:
                state.adopt_profile(profile)
        except BaseException as exc:  # noqa: BLE001
            if is_fatal(exc):
                raise
            self._quarantine("state", key, saved, exc)
            self._saved[key] = None
            return ModelMonitor(key[0], key[1], params, profile)
        self._saved[key] = saved
        return state

    def _quarantine(self, kind: str, key: tuple[str, str], raw: dict | bytes, exc: BaseException) -> None:
        _log.error("%s of model %s version %s cannot be read (%s); it is quarantined and the version continues "
                   "from a fresh state", kind, key[0], key[1], _what(exc))
        blob = raw if isinstance(raw, bytes) else orjson.dumps(raw)
        self._outcome.quarantined.append(Quarantine(kind, key[0], key[1], blob, _what(exc)))
        self._outcome.alerts.append(quarantine_alert(kind, key[0], key[1], _what(exc),
                                                     blob, time.time()))

    def _rebuild(self, key: tuple[str, str]) -> ModelMonitor:
        """The version as it was at the start of the batch plus the units that applied since."""
        saved = self._saved[key]
        params = self._p.params.monitor
        state = ModelMonitor(key[0], key[1], params, self._profiles[key]) if saved is None else \
            ModelMonitor.from_dict(saved, params)
        if saved is not None and self._profiles[key] is not None:
            state.adopt_profile(self._profiles[key])
        for events in self._applied[key]:
            state.apply(events)
        self.states[key] = state
        return state

    def apply(self, key: tuple[str, str], m: IncomingMessage, events: list[dict], now: float,
              split_out_of_range: bool = True) -> list[dict]:
        """Apply one message's events of one version; returns the events that were applied."""
        try:
            findings = self.states[key].apply(events)
        except BaseException as exc:  # noqa: BLE001
            if is_fatal(exc):
                raise
            if isinstance(exc, ValueOutOfRange) and split_out_of_range:
                return self._apply_within_range(key, m, events, now)
            _log.error("message %s:%d@%d failed to apply (%s); its events are applied one by one",
                       m.topic, m.partition, m.offset, _what(exc))
            return self._apply_one_by_one(key, m, events, now)
        self._applied[key].append(events)
        self._outcome.alerts.extend(finding_alert(f, now) for f in findings)
        return events

    def _apply_within_range(self, key, m: IncomingMessage, events: list[dict], now: float) -> list[dict]:
        """Rare: the column check found a feature beyond the bound. Those events are dead-lettered; the rest of
        the message is applied as one unit, as it would be on a replay."""
        self._rebuild(key)
        fine = []
        for event in events:
            if features_within_range(event["features"]):
                fine.append(event)
            else:
                self._outcome.dead_letters.append(self._p._dead_letter(m, Rejection(
                    "out_of_range", f"a feature is out of range; numbers must lie within ±{MAX_ABS_NUMBER:g}",
                    key[0], event["event_id"], _excerpt_of(event))))
        return self.apply(key, m, fine, now, split_out_of_range=False) if fine else []

    def _apply_one_by_one(self, key, m: IncomingMessage, events: list[dict], now: float) -> list[dict]:
        applied = []
        state = self._rebuild(key)
        for event in events:
            findings, exc = _try_apply(state, event)
            if exc is not None and self._saved[key] is not None and \
                    self._works_on_fresh_state(key, event, self._profiles[key]):
                self._quarantine("state", key, self._saved[key], exc)
                self._saved[key] = None
                state = self._rebuild(key)
                findings, exc = _try_apply(state, event)
            if exc is not None and self._profiles[key] is not None and self._works_on_fresh_state(key, event, None):
                self._quarantine("profile", key, self._profiles_raw[key], exc)
                self._profiles[key] = None
                state = self._rebuild(key)
                findings, exc = _try_apply(state, event)
            if exc is not None:
                self._outcome.dead_letters.append(self._p._dead_letter(m, Rejection(
                    "apply_failed", f"the event could not be applied: {_what(exc)}", key[0], event["event_id"],
                    _excerpt_of(event))))
                state = self._rebuild(key)
                continue
            self._applied[key].append([event])
            self._outcome.alerts.extend(finding_alert(f, now) for f in findings)
            applied.append(event)
        return applied

    def _works_on_fresh_state(self, key: tuple[str, str], event: dict, profile: ReferenceProfile | None) -> bool:
        return _try_apply(ModelMonitor(key[0], key[1], self._p.params.monitor, profile), event)[1] is None

    def apply_labels(self, key: tuple[str, str], joined: list, now: float) -> list:
        """Fold joined labels into the version's performance; returns those that could not be (applied one by
        one after a failure, so a bad label costs only itself)."""
        try:
            findings = self.states[key].apply_labels(joined)
        except BaseException as exc:  # noqa: BLE001
            if is_fatal(exc):
                raise
            _log.error("labels of model %s version %s failed to apply (%s); applying them one by one", key[0],
                       key[1], _what(exc))
            failed = []
            state = self._snapshot_for_labels(key)
            for item in joined:
                try:
                    findings = state.apply_labels([item])
                except BaseException as item_exc:  # noqa: BLE001
                    if is_fatal(item_exc):
                        raise
                    failed.append(item)
                    state = self._snapshot_for_labels(key)  # without the half-applied label
                    continue
                self._labels_applied[key].append([item])
                self._outcome.alerts.extend(finding_alert(f, now) for f in findings)
            return failed
        self._labels_applied[key].append(joined)
        self._outcome.alerts.extend(finding_alert(f, now) for f in findings)
        return []

    def _snapshot_for_labels(self, key: tuple[str, str]) -> ModelMonitor:
        """The version rebuilt with its events and the labels applied so far (after a failed label)."""
        state = self._rebuild(key)
        for items in self._labels_applied[key]:
            state.apply_labels(items)
        return state

    def unsavable(self, key: tuple[str, str], exc: BaseException) -> None:
        """A state that cannot be serialised is not written: the version keeps its saved state, and this
        batch's events of it are dead-lettered."""
        _log.error("state of model %s version %s cannot be saved (%s); this batch's events of it are "
                   "dead-lettered", key[0], key[1], _what(exc))
        del self.states[key]
        for events in self._applied[key]:
            for event in events:
                self._outcome.dead_letters.append(self._p._dead_letter(None, Rejection(
                    "apply_failed", f"the state could not be saved: {_what(exc)}", key[0], event["event_id"],
                    _excerpt_of(event))))
        n = sum(len(events) for events in self._applied[key])
        self._outcome.events -= n
        self._outcome.events_by_model.pop(key, None)


def _since_last_rewind(messages: list[IncomingMessage]) -> list[IncomingMessage]:
    """Each message once, and per partition only what was delivered after the consumer last went back.

    Around a rebalance or a seek to the offsets in Redis, one batch can hold a message twice, or messages from
    before a seek followed by earlier offsets from after it. Applying the first kind twice would count events
    twice; applying the later offsets of the second kind would move the saved offset past messages not applied
    yet (they come again after the rewound ones, and would be skipped). Both are dropped here: the consumer
    delivers them again in order.
    """
    start: dict[TopicPartition, int] = {}
    last: dict[TopicPartition, int] = {}
    for i, m in enumerate(messages):
        tp = (m.topic, m.partition)
        if tp in last and m.offset <= last[tp]:
            start[tp] = i
        last[tp] = m.offset
    if not start:
        return messages
    return [m for i, m in enumerate(messages) if i >= start.get((m.topic, m.partition), 0)]


def _as_record(raw: dict | bytes) -> dict:
    """A saved record as the store read it: bytes when it was not even JSON."""
    if isinstance(raw, bytes):
        raise ValueError(f"the saved record is not a JSON object ({len(raw)} bytes)")
    if not isinstance(raw, dict):
        raise ValueError(f"the saved record is a JSON {type(raw).__name__}, not an object")
    return raw


def _try_apply(state: ModelMonitor, event: dict) -> tuple[list, BaseException | None]:
    try:
        return state.apply([event]), None
    except BaseException as exc:  # noqa: BLE001
        if is_fatal(exc):
            raise
        return [], exc


def _dead_letter_id(source: dict | None, rejection: Rejection) -> str:
    """Deterministic, like alert ids: a dead letter published again (a retried or redone batch) has the same id."""
    text = "\x1f".join([orjson.dumps(source).decode(), rejection.code, rejection.model or "", rejection.event_id or "",
                        rejection.excerpt[:256]])
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def _excerpt_of(event: dict) -> str:
    try:
        return orjson.dumps(event)[:2048].decode("utf-8", "replace")
    except TypeError:
        return repr(event)[:2048]
