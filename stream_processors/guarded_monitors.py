"""The model versions of one batch, with guards: loaded (or quarantined), applied, serialised."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING

import orjson

from detectors.model.monitor import ModelMonitor, ValueOutOfRange
from detectors.profile import ReferenceProfile
from producers.events import MAX_ABS_NUMBER, Rejection, dumped, features_within_range
from stream_processors.alerts import finding_alert, quarantine_alert
from stream_processors.state import Quarantine
from stream_processors.state_cache import CachedState

if TYPE_CHECKING:
    from stream_processors.batch import BatchOutcome, BatchProcessor, IncomingMessage

__all__ = ["GuardedMonitors", "is_fatal"]

_log = logging.getLogger(__name__)
_QUIET, _LOUD, _FAILED = "quiet", "loud", "failed"  # how a run applied as one call went (``_try_run``)
_ONE_BY_ONE_UP_TO = 16  # messages: a smaller loud half is applied one call per message, not halved further


def is_fatal(exc: BaseException) -> bool:
    """Exceptions that must stop the process rather than be counted against one message.

    Everything else is caught, including river's ``PanicException`` (a BaseException raised when its compiled
    core reads damaged bytes)."""
    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)) or \
        type(exc).__name__ == "CancelledError"


def _what(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


class GuardedMonitors:
    """The model versions of one batch: loaded (or quarantined), applied with guards, serialised.

    A batch's messages of one version are applied as one call (``apply_run``). Events that raise while being
    applied are not allowed to take the worker, or their neighbours, down: the version is rebuilt from its
    state at the start of the batch plus the units that did apply, then the messages are tried one by one,
    and a failing message's events one by one. An event that also fails on a brand-new state is a bad event
    (dead-lettered, ``apply_failed``); one that only fails on the loaded state means that state is damaged: it
    is quarantined and the version continues from a fresh state.
    """

    def __init__(self, processor: BatchProcessor, outcome: BatchOutcome) -> None:
        self._p = processor
        self._outcome = outcome
        self.states: dict[tuple[str, str], ModelMonitor] = {}
        # each version's saved record at the start of the batch, as bytes (what a rebuild starts from, decoded
        # afresh each time: a restored state shares lists with the record it was made from, and applying events
        # to it would change a record kept decoded); the bytes its commit wrote where it came from the cache
        self._saved: dict[tuple[str, str], bytes | None] = {}
        self._profiles: dict[tuple[str, str], ReferenceProfile | None] = {}
        self._profiles_raw: dict[tuple[str, str], dict | bytes | None] = {}
        self._applied: dict[tuple[str, str], list[list[dict]]] = defaultdict(list)
        self._labels_applied: dict[tuple[str, str], list[list]] = defaultdict(list)

    def load(self, keys: list[tuple[str, str]]) -> None:
        if not keys:
            return
        store = self._p._store
        cached = {}
        for key in keys:  # the states this worker committed last (``state_cache``): taken, not read back
            entry = self._p.state_cache.take(key)
            if entry is not None:
                cached[key] = entry
        missing = [k for k in keys if k not in cached]
        saved = store.load(missing) if missing else {}
        # A profile matters for a new version, or one that ran without a reference so far.
        wanted = [k for k in keys if (cached[k].state.scenario == "no_reference" if k in cached else
                                      not isinstance(saved.get(k), dict) or saved[k].get("scenario") == "no_reference")]
        profiles = store.profiles(wanted)
        for key in keys:
            self._profiles_raw[key] = profiles.get(key)
            self._profiles[key] = self._read_profile(key, profiles.get(key))
            self.states[key] = self._reuse(key, cached[key]) if key in cached else self._restore(key, saved.get(key))

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
        self._saved[key] = saved if isinstance(saved, bytes) else orjson.dumps(saved)  # before any event changes it
        return state

    def _reuse(self, key: tuple[str, str], entry: CachedState[ModelMonitor]) -> ModelMonitor:
        """A cached state, made what ``_restore`` would make of the bytes its commit wrote."""
        state = entry.state
        state._profile = None  # as ModelMonitor.from_dict leaves it: a loaded state holds no profile
        profile = self._profiles[key]
        if profile is not None:
            try:
                state.adopt_profile(profile)
            except BaseException as exc:  # noqa: BLE001 - handled as for the saved record: quarantined
                if is_fatal(exc):
                    raise
                return self._restore(key, orjson.loads(entry.saved))
        self._saved[key] = entry.saved  # decoded only if a rebuild needs it (``_rebuild``)
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
        params = self._p.params.monitor
        saved = self._saved[key]
        state = None
        if saved is not None:
            try:  # a cached state's bytes were written by its commit, never read back: they may not load
                state = ModelMonitor.from_dict(orjson.loads(saved), params)
            except BaseException as exc:  # noqa: BLE001 - as for a record read from Redis: quarantined
                if is_fatal(exc):
                    raise
                self._quarantine("state", key, saved, exc)
                self._saved[key] = None
            else:
                if self._profiles[key] is not None:
                    state.adopt_profile(self._profiles[key])
        if state is None:
            state = ModelMonitor(key[0], key[1], params, self._profiles[key])
        for events in self._applied[key]:
            state.apply(events)
        self.states[key] = state
        return state

    def apply_run(self, key: tuple[str, str], run: list[tuple[IncomingMessage, list[dict]]], now: float) -> list[dict]:
        """Apply the events of one version from consecutive messages (offset order) as one call; returns the
        events that were applied.

        The statistics depend on the event sequence only, so one call leaves what one call per message would.
        The retrain policy does not yet: it decides with the state at the end of a call. So a run is kept as
        one call only when it is quiet — no finding, and the policy's verdict unchanged — where the policy's
        end-of-call view equals the last message's. Otherwise the version is rebuilt and the run is halved,
        each half tried as one call in turn and kept when quiet, down to halves of ``_ONE_BY_ONE_UP_TO``
        messages applied one call per message (``apply``, with its per-event fallback); when the call fails, the
        messages are applied one by one. Either way: the state
        and alerts a replay of these messages reaches, however a restart regroups them into batches. Halving
        keeps the cost of a finding in a run of n messages near log n calls, not n: a take holds up to 10,000
        single-event messages, and one call per message cost 1.4 ms each."""
        if len(run) == 1:
            return self.apply(key, run[0][0], run[0][1], now)
        events, outcome = self._try_run(key, run)
        if outcome == _QUIET:
            return events
        self._rebuild(key)
        if outcome == _FAILED:
            return self._one_by_one(key, run, now)
        return self._apply_halves(key, run, now)

    def _try_run(self, key: tuple[str, str],
                 run: list[tuple[IncomingMessage, list[dict]]]) -> tuple[list[dict], str]:
        """Apply a run as one call; kept only when quiet (then it has no alerts). Otherwise the state holds the call's
        effects: the caller rebuilds or restores it."""
        events = [e for _, message_events in run for e in message_events]
        state = self.states[key]
        verdict = state.policy.verdict.get("verdict")
        try:
            findings = state.apply(events)
        except BaseException as exc:  # noqa: BLE001
            if is_fatal(exc):
                raise
            _log.warning("the %d messages of model %s version %s failed to apply together (%s); they are applied "
                         "one by one", len(run), key[0], key[1], _what(exc))
            return events, _FAILED
        if findings or state.policy.verdict.get("verdict") != verdict:
            return events, _LOUD
        self._applied[key].append(events)
        return events, _QUIET

    def _apply_halves(self, key: tuple[str, str], run: list[tuple[IncomingMessage, list[dict]]],
                      now: float) -> list[dict]:
        """A run that was not quiet as one call, from the state before it: each half as one call when quiet,
        else halved again (a copy of the state before each try, to go back to); a half of at most
        ``_ONE_BY_ONE_UP_TO`` messages one call per message, so that dense findings cost about what one call
        per message does, not more."""
        applied: list[dict] = []
        middle = len(run) // 2
        for part in (run[:middle], run[middle:]):
            before = self._copy(key) if len(part) > _ONE_BY_ONE_UP_TO else None
            if before is None:
                applied += self._one_by_one(key, part, now)
                continue
            events, outcome = self._try_run(key, part)
            if outcome == _QUIET:
                applied += events
                continue
            self._go_back(key, before)
            if outcome == _LOUD:
                applied += self._apply_halves(key, part, now)
            else:
                applied += self._one_by_one(key, part, now)
        return applied

    def _one_by_one(self, key: tuple[str, str], run: list[tuple[IncomingMessage, list[dict]]],
                    now: float) -> list[dict]:
        return [e for m, message_events in run for e in self.apply(key, m, message_events, now)]

    def _copy(self, key: tuple[str, str]) -> bytes | None:
        """The version's state as its saved form, to go back to (None when it cannot be had: then no try)."""
        try:
            return orjson.dumps(self.states[key].to_dict())
        except BaseException as exc:  # noqa: BLE001 - the batch's save names such a state (``unsavable``)
            if is_fatal(exc):
                raise
            return None

    def _go_back(self, key: tuple[str, str], saved: bytes) -> None:
        """The version as ``saved`` (its ``to_dict``, moments ago), with the profile it had: not adopted
        afresh, which would replace detectors that ran since the start of the batch. Rebuilt if that fails."""
        try:
            self.states[key] = ModelMonitor.from_dict(orjson.loads(saved), self._p.params.monitor,
                                                      self.states[key]._profile)
        except BaseException as exc:  # noqa: BLE001
            if is_fatal(exc):
                raise
            self._rebuild(key)

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


def _excerpt_of(event: dict) -> str:
    return dumped(event)[:2048].decode("utf-8", "replace")
