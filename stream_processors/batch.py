"""One batch of Kafka messages in, state updates and outgoing records out.

``BatchProcessor.process`` does not talk to Kafka: the worker hands it the
messages it consumed, publishes what comes back, then commits. The order of a
batch, which is what makes a restart lose nothing and count nothing twice:

1. Read the stored offset of each partition; skip every message at or below
   it (already applied before a crash). An offset lower than one this worker
   committed means Redis lost acknowledged writes: ``StateRolledBack``, and
   the worker restarts from what Redis holds.
2. Decode and validate; rejected events become dead-letter records with a
   reason code. Bounds (``bounds``): events of another model than the message
   key's, past the per-event limits, or of new versions past the caps on
   versions and models (checked once per batch) are dead-lettered here.
3. Load the state of each model version the batch touches (a state or profile
   that cannot be read is quarantined, alerted, and the version starts
   afresh; one this worker saved and Redis still holds as it left it comes
   from ``state_cache`` instead, back there once its commit succeeds), apply all the batch's events of each version, in offset order
   across its messages, as one call (a version's state depends on its event
   sequence only, never on how it is cut: a replay that groups messages
   otherwise reaches the same bytes), collect findings as alerts; then join
   the batch's labels to predictions and fold them into performance. When
   that call fails, or is not quiet (a finding, or the retrain policy's
   verdict changed: the policy still decides at the end of a call), the
   version is rebuilt and its messages are applied one by one, and a failing
   message's events one by one: a failing event is
   dead-lettered (``apply_failed``, or ``out_of_range`` for a number past the
   bound) and its neighbours are applied. Each new state is serialised here,
   so what the commit writes is known to load.
4. (worker) Publish alerts and dead letters and wait for Kafka's ack.
5. (worker) Commit the new states, the label join's writes, quarantined
   records and the offsets in one atomic step per partition (a model's state
   lives with its partition's, ``state.keys``), each guarded by the offsets
   read in step 1. On a conflict (another worker advanced a partition) the
   worker redoes the batch from step 1; partitions saved before it are then
   skipped by their offsets.
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
import itertools
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from detectors.model.label_join import LabelJoin
from detectors.model.monitor import ModelMonitor
from detectors.model.params import JoinParams, MonitorParams, PerformanceParams, PolicyParams
from detectors.model.writes import AwaitLabel, JoinWrite
from producers.events import MAX_ABS_NUMBER, Rejection, decode_message
from stream_processors.bounds import EventBounds, ModelCatalog, message_owner
from stream_processors.errors import ServiceUnavailable, StateRolledBack
from stream_processors.guarded_monitors import GuardedMonitors, _excerpt_of, _what, is_fatal
from stream_processors.config import Settings
from stream_processors.state import Quarantine, StateStore, TopicPartition
from stream_processors.state_cache import StateCache

__all__ = ["BatchOutcome", "BatchProcessor", "IncomingMessage", "LogicParams", "is_fatal", "logic_params"]

_log = logging.getLogger(__name__)

IDLE_SWEEP_MODELS = 2
"""Models without events in a batch whose waiting labels the batch also settles (round-robin)."""


@dataclass(frozen=True)
class IncomingMessage:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


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
                      label_wait_s=s.label_wait_s, sweep_limit=s.label_sweep_limit)
    return LogicParams(monitor, join)


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
    decisions: dict[tuple[str, str], str] = field(default_factory=dict)
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
        self._bounds = EventBounds(settings.max_features, settings.max_name_length, settings.max_category_length,
                                   store.partition_of if getattr(store, "partitions", None) else None)
        self.catalog = ModelCatalog(store, settings.max_models, settings.max_versions_per_model)
        # models with labels waiting, seen since the last rebalance (so on partitions this worker owns): a few
        # of them are swept each batch, round-robin, so labels of models without traffic are settled too
        self._waiting_models: dict[str, None] = {}
        # the offsets this worker last committed, per topic partition (kept across rebalances: offsets in Redis
        # never move back, whoever owns the partition)
        self._committed: dict[TopicPartition, int] = {}
        # the live states this worker committed (``state_cache``); the last batch's wait in ``_pending`` until
        # ``committed`` says which of its partitions were saved. A rebalance (on the event loop, maybe while a
        # batch runs) only counts; the batch thread clears the cache when it sees the count change.
        self.state_cache: StateCache[ModelMonitor] = StateCache(settings.state_cache_versions)
        self._pending: _Pending | None = None
        self._rebalances = 0
        self._cache_rebalances = 0

    def committed(self, offsets: dict[TopicPartition, tuple[int, int]]) -> None:
        """The worker saved these offsets (``BatchOutcome.offsets`` of a commit, or of its saved parts).

        Saving a partition's offsets saved its states with them (one atomic step per partition): the last
        batch's states of those partitions go back to ``state_cache``."""
        for tp, (_expected, new) in offsets.items():
            self._committed[tp] = max(new, self._committed.get(tp, -1))
        pending, self._pending = self._pending, None
        if pending is None or pending.rebalances != self._rebalances or \
                any(pending.offsets.get(tp) != moved for tp, moved in offsets.items()):
            return  # not the last batch's commit, or partitions moved since it started: nothing goes back
        partition_of = self._store.partition_of
        for n in sorted({self._state_partition(tp) for tp in offsets}):
            after = {tp: o for tp, o in pending.stored.items() if self._state_partition(tp) == n}
            after.update((tp, new) for tp, (_e, new) in offsets.items() if self._state_partition(tp) == n)
            self.state_cache.put(n, after, {k: v for k, v in pending.states.items() if partition_of(k[0]) == n})

    def _state_partition(self, tp: TopicPartition) -> int:
        """The partition whose commit step moves ``tp``'s offset (``state.store.by_partition``)."""
        return tp[1] % (getattr(self._store, "partitions", None) or 1)

    def resumed_from(self, saved: dict[TopicPartition, int]) -> None:
        """The consumer was sought to the offset after ``saved`` (what Redis held at an assignment): nothing
        before it can be skipped, so offsets this worker committed earlier no longer say anything (a partition
        whose state was lost and rebuilt starts again from its earliest offset)."""
        for tp, offset in saved.items():
            self._committed[tp] = offset

    def _check_not_rolled_back(self, stored: dict[TopicPartition, int]) -> None:
        """Offsets in Redis only move forward (every commit is guarded by the offsets it read). One lower than this
        worker committed means Redis lost acknowledged writes: raise ``StateRolledBack`` (the worker exits and
        restarts from what Redis holds) rather than skip the messages whose writes were lost."""
        lost = {tp: (self._committed[tp], saved) for tp, saved in stored.items()
                if tp in self._committed and saved < self._committed[tp]}
        if lost:
            raise StateRolledBack("Redis lost state this worker had saved: " + ", ".join(
                f"{t}:{p} saved up to offset {ours}, Redis now holds {saved}" for (t, p), (ours, saved)
                in sorted(lost.items())) + " (a failover before the replica had the writes, a restart without "
                "persistence, or a flush); restarting to read again from the offsets Redis holds")

    def rebalanced(self) -> None:
        """Partitions moved: what this worker knew of models' versions and waiting labels may be stale, and the
        states it cached are dropped before the next batch."""
        self.catalog.forget()
        self._waiting_models = {}
        self._rebalances += 1

    def _idle_models(self, busy: set[str], partitions: set[int]) -> list[str]:
        """Up to IDLE_SWEEP_MODELS models with waiting labels and no events in this batch, round-robin; only of
        the ``partitions`` the batch has fresh messages of, whose offsets guard what the batch commits
        (``state.store``)."""
        waiting = self._waiting_models
        chosen = []
        of = self._bounds.partition_of
        for model in list(itertools.islice(waiting, IDLE_SWEEP_MODELS + len(busy))):
            if of is not None and of(model) not in partitions:
                del waiting[model]
                waiting[model] = None  # its partition's next batch settles it
                continue
            if model not in busy and len(chosen) < IDLE_SWEEP_MODELS:
                chosen.append(model)
                del waiting[model]
                waiting[model] = None  # to the back of the queue
        return chosen

    def process(self, messages: list[IncomingMessage]) -> BatchOutcome:
        outcome = BatchOutcome()
        self._pending = None
        if not messages:
            return outcome
        rebalances = self._rebalances
        if rebalances != self._cache_rebalances:
            self.state_cache.clear()
            self._cache_rebalances = rebalances
        partitions = sorted({(m.topic, m.partition) for m in messages})
        numbers = {p for _t, p in partitions}
        # A state is written by the batches of both topics of its partition, so both topics' offsets are read:
        # the rollback check compares them with what this worker committed, the cache with what its entries were
        # saved with, and the commit checks the other topic's too (below).
        state_partitions = {self._state_partition(tp) for tp in partitions}
        cache = self.state_cache
        watched = {(topic, p) for p in numbers for topic in (self._settings.inference_topic,
                                                             self._settings.label_topic)}
        if cache.capacity:
            watched |= cache.watched(state_partitions)
        stored = self._store.offsets(sorted({*partitions, *(tp for tp in list(self._committed) if tp[1] in numbers),
                                             *watched}))
        self._check_not_rolled_back(stored)
        cache.check(stored, state_partitions)
        usable = _since_last_rewind(messages)
        fresh = sorted((m for m in usable if m.offset > stored[(m.topic, m.partition)]),
                       key=lambda m: (m.topic, m.partition, m.offset))
        outcome.skipped_messages = len(messages) - len(fresh)
        for m in fresh:
            tp = (m.topic, m.partition)
            expected = outcome.offsets.get(tp, (stored[tp], stored[tp]))[0]
            outcome.offsets[tp] = (expected, m.offset)
        # a partition's state is written by the batches of both its topics: the commit also checks (and leaves as
        # it is) the offset of the other topic, so that a batch of one topic read before another worker's commit
        # of the other cannot overwrite what that commit wrote
        topics = (self._settings.inference_topic, self._settings.label_topic)
        for topic, p in list(outcome.offsets):
            if topic in topics:
                other = (topics[1] if topic == topics[0] else topics[0], p)
                if other not in outcome.offsets and other in stored:
                    outcome.offsets[other] = (stored[other], stored[other])
        # A unit is one message's events of one version; a version's units are then applied as one run (its
        # state depends on the event sequence only: how a consumer groups messages cannot change a bit).
        units: list[tuple[tuple[str, str], IncomingMessage, list[dict]]] = []
        labels: dict[str, list[dict]] = defaultdict(list)
        label_sources: dict[tuple[str, str], IncomingMessage] = {}
        duplicates: dict[int, tuple[IncomingMessage, list[dict]]] = {}  # labels of events that have one: per message
        for m in fresh:
            # feature ranges are checked on whole columns as they are applied (ModelMonitor)
            decoded = decode_message(m.value, self._settings.max_message_bytes, check_feature_range=False,
                                     max_events=self._settings.max_events_per_message,
                                     max_name_length=self._settings.max_name_length)
            for rejection in decoded.rejections:
                outcome.dead_letters.append(self._dead_letter(m, rejection))
            decoded.events = self._within_bounds(m, decoded.events, outcome)
            if decoded.kind == "label":
                for event in decoded.events:
                    source = (event["model"], event["event_id"])
                    if source in label_sources:  # an event has one label: the first of the batch
                        duplicates.setdefault(id(m), (m, []))[1].append(event)
                        continue
                    labels[event["model"]].append(event)
                    label_sources[source] = m
                continue
            groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for event in decoded.events:
                groups[(event["model"], event["model_version"])].append(event)
            units.extend((key, m, events) for key, events in groups.items())
        units = self._admitted(units, outcome)
        self._refuse_labels_past_the_models_cap(labels, label_sources, outcome)
        models = GuardedMonitors(self, outcome)
        models.load(list(dict.fromkeys(key for key, _, _ in units)))
        now = time.time()
        predictions: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        runs: dict[tuple[str, str], list[tuple[IncomingMessage, list[dict]]]] = defaultdict(list)
        for key, m, events in units:
            runs[key].append((m, events))
        for key, run in runs.items():
            applied = models.apply_run(key, run, now)
            outcome.events += len(applied)
            outcome.events_by_model[key] = outcome.events_by_model.get(key, 0) + len(applied)
            predictions[key[0]].extend(zip(itertools.repeat(key[1]), applied))
        # Labels after the batch's predictions, so a label and its prediction in one batch meet.
        try:
            # only partitions with fresh messages: their offsets guard the commit (a partition whose messages
            # were all skipped may be another worker's now)
            join = self._join.run(predictions, labels, now, self._idle_models(set(predictions) | set(labels),
                                                                              {p for _t, p in outcome.offsets}))
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
        for model, event in join.duplicates:
            m = label_sources[(model, event["event_id"])]
            duplicates.setdefault(id(m), (m, []))[1].append(event)
        for m, events in sorted(duplicates.values(), key=lambda d: (d[0].topic, d[0].partition, d[0].offset)):
            outcome.dead_letters.append(self._dead_letter(m, _duplicate_labels(events)))
        waiting_models = self._waiting_models
        for model in join.settled:
            waiting_models.pop(model, None)
        for write in join.writes:
            if isinstance(write, AwaitLabel):
                waiting_models[write.model] = None
        outcome.labels = sum(len(v) for v in labels.values()) - len(join.duplicates)
        outcome.unmatched_labels = sum(join.unmatched.values())
        models.load([k for k in join.joined if k not in models.states])
        for key, joined in join.joined.items():
            for item in models.apply_labels(key, joined, now):
                source = label_sources.get((key[0], item.event_id))
                outcome.dead_letters.append(self._dead_letter(source, Rejection(
                    "apply_failed", "the label could not be applied to the model's performance", key[0],
                    item.event_id, _excerpt_of({"event_id": item.event_id, "label": item.label}))))
        for key, state in list(models.states.items()):  # unsavable() takes a version out
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
            outcome.decisions[key] = state.policy.verdict["verdict"]
        self.catalog.saved(outcome.states)
        if self.state_cache.capacity:
            self._pending = _Pending(rebalances, stored, dict(outcome.offsets),
                                     {key: (models.states[key], saved) for key, saved in outcome.states.items()})
        for letter in outcome.dead_letters:
            code = letter["reason_code"]
            outcome.rejected_by_reason[code] = outcome.rejected_by_reason.get(code, 0) + letter["count"]
        return outcome

    def _within_bounds(self, m: IncomingMessage, events: list[dict], outcome: BatchOutcome) -> list[dict]:
        """The events of one message within the per-event bounds; the others are dead-lettered."""
        owner = message_owner(m.key, events)
        if self._bounds.all_within(events, owner, m.partition):
            return events
        problem = self._bounds.problem
        kept = []
        for event in events:
            found = problem(event, owner, m.partition)
            if found is None:
                kept.append(event)
            else:
                outcome.dead_letters.append(self._dead_letter(m, Rejection(
                    found[0], found[1], event["model"][:self._settings.max_name_length], event["event_id"],
                    _excerpt_of(event))))
        return kept

    def _admitted(self, units: list, outcome: BatchOutcome) -> list:
        """The units whose version may have state; the others (new versions past the caps on versions per
        model and on models) become one dead letter per message and reason, with their count."""
        refused = self.catalog.admit(list(dict.fromkeys(key for key, _, _ in units)))
        if not refused:
            return units
        kept, letters = [], {}
        for key, m, events in units:
            code = refused.get(key)
            if code is None:
                kept.append((key, m, events))
                continue
            versions, refused_events = letters.setdefault((m.topic, m.partition, m.offset, key[0], code),
                                                          (m, [], []))[1:]
            versions.append(key[1])
            refused_events.extend(events)
        for (_t, _p, _o, model, code), (m, versions, refused_events) in letters.items():
            outcome.dead_letters.append(self._dead_letter(m, self.catalog.refusal(
                code, model, versions, refused_events, _excerpt_of(refused_events[0]))))
        return kept

    def _refuse_labels_past_the_models_cap(self, labels: dict[str, list[dict]],
                                           sources: dict[tuple[str, str], IncomingMessage],
                                           outcome: BatchOutcome) -> None:
        """Labels of models the caps keep from having state: one dead letter per message (``too_many_models``)."""
        for model in self.catalog.label_models_refused(list(labels)):
            by_message: dict[int, tuple[IncomingMessage, list[dict]]] = {}
            for event in labels.pop(model):
                m = sources[(model, event["event_id"])]
                by_message.setdefault(id(m), (m, []))[1].append(event)
            for m, events in by_message.values():
                outcome.dead_letters.append(self._dead_letter(m, self.catalog.refusal(
                    "too_many_models", model, [], events, _excerpt_of(events[0]))))

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
            "count": rejection.count,
        }


@dataclass
class _Pending:
    """A processed batch's live states, until its commit says which of them were saved."""

    rebalances: int
    stored: dict[TopicPartition, int]
    offsets: dict[TopicPartition, tuple[int, int]]
    states: dict[tuple[str, str], tuple[ModelMonitor, bytes]]


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


def _duplicate_labels(events: list[dict]) -> Rejection:
    """One dead letter for a message's labels of events that have one already, its ``count`` saying how many (a
    producer that sends a message again sends all of its labels again)."""
    first = events[0]
    return Rejection("duplicate_label", f"{len(events)} label(s) of the message are of events that have a label "
                     "already (joined before, waiting for its prediction, or earlier in this batch, where it is "
                     "applied or dead-lettered on its own): only an event's first label is used", first["model"],
                     first["event_id"], _excerpt_of(first), count=len(events))


def _dead_letter_id(source: dict | None, rejection: Rejection) -> str:
    """Deterministic, like alert ids: a dead letter published again (a retried or redone batch) has the same id."""
    text = "\x1f".join([orjson.dumps(source).decode(), rejection.code, rejection.model or "", rejection.event_id or "",
                        rejection.excerpt[:256]])
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
