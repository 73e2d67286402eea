"""The store contract in dictionaries, for tests of the logic without Redis. Expiry follows Redis's: a kept
prediction's hour bucket expires ``ttl_s`` after its last write, a waiting label ``ttl_s`` after it was
written; ``clock`` (default ``time.time``) says what time it is. With ``partitions``, a commit is applied
partition by partition as on Redis (``store.by_partition``)."""

from __future__ import annotations

import hashlib
import math
import time
from typing import Callable

import orjson

from detectors.model.label_join import LabelMarks
from detectors.model.writes import AwaitLabel, CountLabels, ForgetLabel, KeepPredictions, MarkJoined
from producers.partitioning import partition_for
from stream_processors.state.store import (PartitionCommit, StateCommit, TopicPartition, by_partition, decoded,
                                           join_record, label_record, prediction_records, quarantine_record,
                                           unguarded)

__all__ = ["MemoryStateStore"]


class MemoryStateStore:
    def __init__(self, clock: Callable[[], float] = time.time, partitions: int | None = None) -> None:
        self._clock = clock
        self.partitions = partitions
        self._profiles: dict[tuple[str, str], bytes] = {}
        self._offsets: dict[TopicPartition, int] = {}
        self._states: dict[tuple[str, str], bytes] = {}
        self._updated: dict[tuple[str, str], float] = {}
        self._events: dict[tuple[str, str], int] = {}
        self._decisions: dict[tuple[str, str], str] = {}
        self._predictions: dict[tuple[str, int], tuple[dict[str, bytes], float]] = {}  # (fields, expires at)
        self._labels: dict[tuple[str, str], tuple[bytes, float]] = {}                  # (record, expires at)
        self._waiting: dict[str, dict[str, float]] = {}
        self._waiting_expires: dict[str, float] = {}  # as Redis expires a model's waiting set after its last label
        self._joined: dict[str, tuple[dict[str, float], float]] = {}                # ({event id: at}, expires at)
        self._counts: dict[str, int] = {}
        self._quarantine: dict[tuple[str, str], bytes] = {}
        self._quarantined: dict[tuple[str, str], bytes] = {}

    def offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._offsets.get(tp, -1) for tp in partitions}

    def load(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | bytes | None]:
        return {k: decoded(self._states.get(k)) for k in models}

    def partition_of(self, model: str) -> int:
        return 0 if self.partitions is None else partition_for(model, self.partitions)

    def commit(self, batch: StateCommit) -> bool:
        for _partition, one in by_partition(batch, self.partition_of, self.partitions or 1):
            if not self._commit_partition(one):
                return False
        return True

    def _commit_partition(self, batch: PartitionCommit) -> bool:
        if unguarded(batch):
            return False
        if any(self._offsets.get(tp, -1) != expected for tp, (expected, _new) in batch.offsets.items()):
            return False
        now = self._clock()
        for w in batch.writes:
            if isinstance(w, KeepPredictions):
                fields, _ = self._live_predictions(w.model, w.hour, now) or ({}, 0.0)
                fields.update(zip(w.event_ids, prediction_records(w)))
                self._predictions[(w.model, w.hour)] = (fields, now + w.ttl_s)
            elif isinstance(w, MarkJoined):
                ids, expires = self._joined.get(w.model, ({}, 0.0))
                ids = {i: at for i, at in (ids.items() if expires > now else ()) if at >= w.forget_before}
                ids.update(dict.fromkeys(w.event_ids, w.at))
                self._joined[w.model] = (ids, now + w.ttl_s)
            elif isinstance(w, AwaitLabel):
                self._labels[(w.model, w.event_id)] = (label_record(w), now + w.ttl_s)
                self._live_waiting(w.model)
                self._waiting.setdefault(w.model, {})[w.event_id] = w.deadline
                self._waiting_expires[w.model] = max(self._waiting_expires.get(w.model, 0.0), now + w.ttl_s)
            elif isinstance(w, ForgetLabel):
                self._labels.pop((w.model, w.event_id), None)
                self._waiting.get(w.model, {}).pop(w.event_id, None)
                if not self._waiting.get(w.model):  # as Redis deletes an emptied set, and its expiry with it
                    self._waiting.pop(w.model, None)
                    self._waiting_expires.pop(w.model, None)
            elif isinstance(w, CountLabels):
                for kind, change in (("pending", w.pending), ("unmatched", w.unmatched), ("joined", w.joined)):
                    if change:
                        key = f"{w.model}:{kind}"
                        self._counts[key] = self._counts.get(key, 0) + change
        for q in batch.quarantined:
            digest = hashlib.sha256(q.raw).hexdigest()
            self._quarantine[(q.kind, digest)] = q.raw
            self._quarantined[(q.model, q.model_version)] = quarantine_record(q, digest, now)
            if q.kind == "profile":
                self._profiles.pop((q.model, q.model_version), None)
        for tp, (_expected, new) in batch.offsets.items():
            self._offsets[tp] = new
        for key, state in batch.states.items():
            self._states[key] = state
            self._updated[key] = now
            self._events[key] = batch.events_total[key]
            if key in batch.decisions:
                self._decisions[key] = batch.decisions[key]
            else:
                self._decisions.pop(key, None)
        return True

    def _live_predictions(self, model: str, hour: int, now: float) -> tuple[dict[str, bytes], float] | None:
        bucket = self._predictions.get((model, hour))
        if bucket is not None and bucket[1] <= now:
            del self._predictions[(model, hour)]
            return None
        return bucket

    def quarantined(self) -> dict[tuple[str, str], dict]:
        return {k: orjson.loads(v) for k, v in self._quarantined.items()}

    def quarantined_record(self, kind: str, digest: str) -> bytes | None:
        return self._quarantine.get((kind, digest))

    def put_raw(self, kind: str, model: str, version: str, raw: bytes) -> None:
        """Write a record as bytes, damaged or not (for tests of what happens when one is)."""
        (self._states if kind == "state" else self._profiles)[(model, version)] = raw

    def model_summaries(self) -> dict[tuple[str, str], dict]:
        return {key: {"events": self._events[key], "updated": t,
                      **({"decision": self._decisions[key]} if key in self._decisions else {})}
                for key, t in self._updated.items()}

    def models(self) -> dict[tuple[str, str], float]:
        return dict(self._updated)

    def summaries_of(self, partitions: set[int], limit: int | None = None) -> dict[tuple[str, str], dict]:
        found = [(k, v) for k, v in self.model_summaries().items() if self.partition_of(k[0]) in partitions]
        return dict(found if limit is None else found[:limit])

    def versions_of(self, model: str) -> dict[str, float]:
        return {v: t for (m, v), t in self._updated.items() if m == model}

    def existing(self, models: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return {k for k in models if k in self._updated}

    def profiles(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | bytes | None]:
        return {k: decoded(self._profiles.get(k)) for k in models}

    def put_profile(self, profile: dict, only_if_absent: bool = False) -> bool:
        key = (profile["model"], profile["model_version"])
        if only_if_absent and key in self._profiles:
            return False
        self._profiles[key] = orjson.dumps(profile)
        return True

    # -- the label join -------------------------------------------------------------------------------------
    def kept_predictions(self, model: str, hours: list[int], event_ids: list[str]) -> list[list | None]:
        now = self._clock()
        buckets = [b[0] for b in (self._live_predictions(model, h, now) for h in hours) if b is not None]
        return [join_record(f"pred:{model} {i}", next((b[i] for b in buckets if i in b), None)) for i in event_ids]

    def waiting_labels(self, model: str, event_ids: list[str]) -> list[dict | None]:
        now = self._clock()
        out = []
        for event_id in event_ids:
            record = self._labels.get((model, event_id))
            out.append(join_record(f"label:{model}:{event_id}", record[0] if record and record[1] > now else None))
        return out

    def label_marks_of(self, event_ids: dict[str, list[str]], since: float) -> dict[str, LabelMarks]:
        out = {}
        for model, asked in event_ids.items():
            ids, expires = self._joined.get(model, ({}, 0.0))
            waiting = self._live_waiting(model)
            out[model] = LabelMarks([expires > self._clock() and ids.get(i, -math.inf) >= since for i in asked],
                                    [i in waiting for i in asked], self.waiting_labels(model, asked))
        return out

    def due_labels(self, model: str, now: float, limit: int) -> list[str]:
        waiting = self._live_waiting(model)
        return sorted((i for i, deadline in waiting.items() if deadline <= now), key=lambda i: (waiting[i], i))[:limit]

    def pending_labels(self, model: str) -> int:
        return self._counts.get(f"{model}:pending", 0)

    def pending_labels_of(self, models: list[str]) -> dict[str, int]:
        """As the Redis store: a count that is not the size of the waiting set is set to it."""
        for model in models:
            if self.pending_labels(model) != len(self._live_waiting(model)):
                self._counts[f"{model}:pending"] = len(self._live_waiting(model))
        return {m: self.pending_labels(m) for m in models}

    def _live_waiting(self, model: str) -> dict[str, float]:
        if self._waiting_expires.get(model, math.inf) <= self._clock():
            self._waiting.pop(model, None)
            self._waiting_expires.pop(model, None)
        return self._waiting.get(model, {})

    def label_counts(self) -> dict[str, int]:
        return dict(self._counts)

    def model_label_counts(self, model: str) -> dict[str, int]:
        return {k: self._counts.get(f"{model}:{k}", 0) for k in ("joined", "pending", "unmatched")}

    def quarantine_of(self, model: str, version: str) -> dict | None:
        raw = self._quarantined.get((model, version))
        return None if raw is None else orjson.loads(raw)
