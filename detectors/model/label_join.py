"""Joining late labels to their inference events by event id.

A worker consumes the inference and label topics together; both are keyed by
model and have the same partition count, so faust hands a model's labels and
predictions to the same worker. Every prediction is kept for
``prediction_ttl_s``. A label whose prediction is there joins at once; one
that came first waits up to ``label_wait_s`` for it and joins when it comes;
one still alone after that is counted as unmatched. All of it is written in
the batch's atomic commit, with the offsets, so a restart neither loses a
join nor makes one twice.
"""

from __future__ import annotations

import logging

import time
from dataclasses import dataclass, field

import orjson

from detectors.model.params import JoinParams

__all__ = ["Joined", "LabelJoin"]

_log = logging.getLogger(__name__)

COUNTS = "labels"


@dataclass(frozen=True)
class Joined:
    event_id: str
    model_version: str
    prediction: object
    score: object
    label: object
    timestamp: float


@dataclass
class JoinBatch:
    """What one batch of the join writes and produced."""

    writes: list[tuple] = field(default_factory=list)
    joined: dict[tuple[str, str], list[Joined]] = field(default_factory=dict)
    unmatched: dict[str, int] = field(default_factory=dict)

    def add(self, model: str, item: Joined) -> None:
        self.joined.setdefault((model, item.model_version), []).append(item)


class LabelJoin:
    def __init__(self, params: JoinParams, store) -> None:
        self.params = params
        self._store = store

    def run(self, predictions: dict[str, list[tuple[str, dict]]], labels: dict[str, list[dict]],
            now: float | None = None) -> JoinBatch:
        """``predictions``: model -> [(version, inference event)] of this batch, in order;
        ``labels``: model -> [label event]. Returns the writes to commit and the joins made."""
        now = time.time() if now is None else now
        batch = JoinBatch()
        for model in set(predictions) | set(labels):
            self._model(model, predictions.get(model, []), labels.get(model, []), now, batch)
        return batch

    def _prediction_keys(self, model: str, now: float) -> list[str]:
        """The hourly hashes a kept prediction can be in, newest first."""
        hour = int(now // 3600)
        return [f"pred:{model}:{h}" for h in range(hour, hour - self.params.prediction_ttl_s // 3600 - 2, -1)]

    def _lookup(self, model: str, event_ids: list[str], now: float) -> list[dict | None]:
        return self._store.hash_lookup(self._prediction_keys(model, now), event_ids)

    def _model(self, model: str, predicted: list[tuple[str, dict]], labelled: list[dict], now: float,
               batch: JoinBatch) -> None:
        s = self.params
        stored_waiting = waiting = self._store.hash_get(COUNTS, f"{model}:pending")
        if s.keep_predictions and predicted:
            # one hash per hour: a single HSET per batch instead of a key per event
            key, ttl = f"pred:{model}:{int(now // 3600)}", s.prediction_ttl_s + 3600
            for start in range(0, len(predicted), 2000):  # Lua's unpack() takes a few thousand values
                pairs: list = []
                for version, event in predicted[start:start + 2000]:
                    pairs += [event["event_id"],
                              orjson.dumps((version, event["prediction"], event["score"], event["timestamp"]))]
                batch.writes.append(("hsetex", key, ttl, *pairs))
        fresh: dict[str, Joined] = {}  # predictions of this batch, by event id: only needed to meet labels
        if labelled or waiting:
            fresh = {e["event_id"]: Joined(e["event_id"], v, e["prediction"], e["score"], None, e["timestamp"])
                     for v, e in predicted}
        handled: set[str] = set()  # waiting labels settled in this batch (Redis still lists them until commit)
        # predictions that labels were waiting for
        if waiting and fresh:
            ids = list(fresh)
            for event_id, label in zip(ids, self._store.get_many([f"label:{model}:{i}" for i in ids])):
                if label is not None:
                    batch.add(model, _with_label(fresh[event_id], label["l"]))
                    waiting -= 1
                    handled.add(event_id)
                    self._forget_waiting(batch, model, event_id)
        # labels: join now, or wait
        if labelled:
            unknown = [e for e in labelled if e["event_id"] not in fresh]
            stored = dict(zip([e["event_id"] for e in unknown],
                              self._lookup(model, [e["event_id"] for e in unknown], now)))
            for label in labelled:
                event_id = label["event_id"]
                prediction = fresh.get(event_id) or _from_record(event_id, stored.get(event_id))
                if prediction is not None:
                    batch.add(model, _with_label(prediction, label["label"]))
                    continue
                deadline = now + s.label_wait_s
                batch.writes.append(("setex", f"label:{model}:{event_id}", int(s.label_wait_s) + 3600,
                                     orjson.dumps({"l": label["label"], "t": label["timestamp"]})))
                batch.writes.append(("zadd", f"waiting:{model}", repr(deadline), event_id))
                waiting += 1
        # labels whose wait is over: a last look for their prediction, else unmatched
        if waiting:
            due = [i for i in self._store.due(f"waiting:{model}", now) if i not in handled]
            if due:
                predictions_now = self._lookup(model, due, now)
                labels_now = self._store.get_many([f"label:{model}:{i}" for i in due])
                for event_id, record, label in zip(due, predictions_now, labels_now):
                    self._forget_waiting(batch, model, event_id)
                    waiting -= 1
                    prediction = _from_record(event_id, record)
                    if prediction is not None and label is not None:
                        batch.add(model, _with_label(prediction, label["l"]))
                    else:
                        batch.unmatched[model] = batch.unmatched.get(model, 0) + 1
        pending_change = waiting - stored_waiting
        if pending_change:
            batch.writes.append(("hincrby", COUNTS, f"{model}:pending", str(pending_change)))
        if batch.unmatched.get(model):
            batch.writes.append(("hincrby", COUNTS, f"{model}:unmatched", str(batch.unmatched[model])))
        joined = sum(len(v) for (m, _v), v in batch.joined.items() if m == model)
        if joined:
            batch.writes.append(("hincrby", COUNTS, f"{model}:joined", str(joined)))

    @staticmethod
    def _forget_waiting(batch: JoinBatch, model: str, event_id: str) -> None:
        batch.writes.append(("del", f"label:{model}:{event_id}"))
        batch.writes.append(("zrem", f"waiting:{model}", "", event_id))


def _from_record(event_id: str, record: list | None) -> Joined | None:
    """A kept prediction: [version, prediction, score, timestamp]."""
    if record is None:
        return None
    try:
        version, prediction, score, timestamp = record
    except (TypeError, ValueError):
        _log.error("kept prediction of event %s has an unexpected form; it is ignored", event_id[:256])
        return None
    return Joined(event_id, version, prediction, score, None, timestamp)


def _with_label(prediction: Joined, label: object) -> Joined:
    return Joined(prediction.event_id, prediction.model_version, prediction.prediction, prediction.score, label,
                  prediction.timestamp)
