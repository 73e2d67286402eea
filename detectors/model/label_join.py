"""Joining late labels to their inference events by event id.

A worker consumes the inference and label topics together; both are keyed by
model and have the same partition count, so faust hands a model's labels and
predictions to the same worker. Every prediction is kept for
``prediction_ttl_s``. A label whose prediction is there joins at once; one
that came first waits up to ``label_wait_s`` for it and joins when it comes;
one still alone after that is counted as unmatched. All of it is written in
the batch's atomic commit, with the offsets, so a restart neither loses a
join nor makes one twice.

An event has one label: the event ids whose labels joined are kept (per
model, as long as predictions are), so that a second label of the
event (a producer's retry) is a duplicate, as is a label of an event whose
label waits already; the worker dead-letters duplicates (``duplicate_label``)
rather than count the event twice in the model's performance and its label
counts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Protocol

from detectors.model.params import JoinParams
from detectors.model.writes import AwaitLabel, CountLabels, ForgetLabel, JoinWrite, KeepPredictions, MarkJoined

__all__ = ["JoinBatch", "Joined", "LabelJoin", "LabelMarks", "LabelStore"]

_log = logging.getLogger(__name__)
_EVENT_ID, _PREDICTION, _SCORE, _TIMESTAMP = map(itemgetter, ("event_id", "prediction", "score", "timestamp"))


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

    writes: list[JoinWrite] = field(default_factory=list)
    joined: dict[tuple[str, str], list[Joined]] = field(default_factory=dict)
    unmatched: dict[str, int] = field(default_factory=dict)
    settled: list[str] = field(default_factory=list)
    """Models that have no label waiting any more after this batch."""
    duplicates: list[tuple[str, dict]] = field(default_factory=list)
    """(model, label event) of labels of events that have one already (joined or waiting): not applied."""

    def add(self, model: str, item: Joined) -> None:
        self.joined.setdefault((model, item.model_version), []).append(item)


@dataclass(frozen=True)
class LabelMarks:
    """Per label of a batch, in order: did a label of its event join before, does one wait (is in the waiting
    set), and that label's record (None where there is none, or it expired or is damaged)."""

    joined: list[bool]
    waiting: list[bool]
    labels: list[dict | None]

    @property
    def stale(self) -> list[bool]:
        """An entry of the waiting set whose label record expired or is damaged: nothing can join it."""
        return [waits and label is None for waits, label in zip(self.waiting, self.labels)]


class LabelStore(Protocol):
    """What the join reads (a ``stream_processors.state`` store)."""

    def kept_predictions(self, model: str, hours: list[int], event_ids: list[str]) -> list[list | None]:
        """Per event id, its kept prediction [version, prediction, score, timestamp] in the first of ``hours``
        that has it."""

    def waiting_labels(self, model: str, event_ids: list[str]) -> list[dict | None]:
        """Per event id, its waiting label {"l": label, "t": timestamp}."""

    def due_labels(self, model: str, now: float, limit: int) -> list[str]:
        """Event ids of the first ``limit`` waiting labels (by deadline) whose deadline is at or before ``now``."""

    def pending_labels_of(self, models: list[str]) -> dict[str, int]:
        """How many of each model's labels wait for their prediction (one read for a batch's models)."""

    def label_marks_of(self, event_ids: dict[str, list[str]], since: float) -> dict[str, LabelMarks]:
        """Per model, per event id of it, whether a label of it joined (``MarkJoined``) at ``since`` or later,
        whether one waits (is in the model's set of waiting labels), and that label (``waiting_labels``): one
        read for a batch's models."""


class LabelJoin:
    def __init__(self, params: JoinParams, store) -> None:
        self.params = params
        self._store = store

    def run(self, predictions: dict[str, list[tuple[str, dict]]], labels: dict[str, list[dict]],
            now: float | None = None, idle: list[str] = ()) -> JoinBatch:
        """``predictions``: model -> [(version, inference event)] of this batch, in order;
        ``labels``: model -> [label event]; ``idle``: models without events in this batch whose labels whose
        wait is over are settled too. Returns the writes to commit and the joins made."""
        now = time.time() if now is None else now
        batch = JoinBatch()
        models = list(set(predictions) | set(labels) | set(idle))
        pending = self._store.pending_labels_of(models)
        marks = self._store.label_marks_of({m: [e["event_id"] for e in labels[m]] for m in labels if labels[m]},
                                           self._joined_since(now)) if labels else {}
        for model in models:
            self._model(model, predictions.get(model, []), labels.get(model, []), pending[model],
                        marks.get(model), now, batch)
        return batch

    def _hours(self, now: float) -> list[int]:
        """The hours a kept prediction can be in, newest first."""
        hour = int(now // 3600)
        return list(range(hour, hour - self.params.prediction_ttl_s // 3600 - 2, -1))

    def _joined_since(self, now: float) -> float:
        """Joins remembered as long as predictions are kept (an hour more: their buckets are hours)."""
        return now - self.params.prediction_ttl_s - 3600

    def _lookup(self, model: str, event_ids: list[str], now: float) -> list[list | None]:
        return self._store.kept_predictions(model, self._hours(now), event_ids)

    def _model(self, model: str, predicted: list[tuple[str, dict]], labelled: list[dict], stored_waiting: int,
               marks: LabelMarks | None, now: float, batch: JoinBatch) -> None:
        """``marks``: per label, whether its event's label joined before, whether one waits, and whether that one
        is stale (it is then forgotten, and this label is the first); None only when ``labelled`` is empty."""
        s = self.params
        waiting = stored_waiting
        if s.keep_predictions and predicted:
            versions, events = zip(*predicted)
            batch.writes.append(KeepPredictions(
                model, int(now // 3600), s.prediction_ttl_s + 3600, tuple(map(_EVENT_ID, events)),
                tuple(zip(versions, map(_PREDICTION, events), map(_SCORE, events), map(_TIMESTAMP, events)))))
        fresh: dict[str, Joined] = {}  # predictions of this batch, by event id: only needed to meet labels
        if labelled or waiting:
            fresh = {e["event_id"]: Joined(e["event_id"], v, e["prediction"], e["score"], None, e["timestamp"])
                     for v, e in predicted}
        handled: set[str] = set()  # waiting labels settled in this batch (Redis still lists them until commit)
        joined: list[str] = []  # event ids whose labels joined in this batch
        # predictions that labels were waiting for
        if waiting and fresh:
            ids = list(fresh)
            for event_id, label in zip(ids, self._store.waiting_labels(model, ids)):
                if label is not None:
                    joined.append(event_id)
                    batch.add(model, _with_label(fresh[event_id], label["l"]))
                    waiting -= 1
                    handled.add(event_id)
                    self._forget_waiting(batch, model, event_id)
        # labels: join now, or wait (the worker passes a batch's labels of distinct events)
        renewed: set[str] = set()  # entries of the waiting set whose label was gone: forgotten, not due
        if labelled:
            unknown = [e for e in labelled if e["event_id"] not in fresh]
            stored = dict(zip([e["event_id"] for e in unknown],
                              self._lookup(model, [e["event_id"] for e in unknown], now)))
            for label, was_joined, waits, stale in zip(labelled, marks.joined, marks.waiting, marks.stale,
                                                       strict=True):
                event_id = label["event_id"]
                if stale and not was_joined and event_id not in handled:  # its label is gone: this one is the first
                    _log.info("a waiting label of event %s of model %s whose record expired or is damaged is "
                              "replaced by a new label of the event", event_id[:256], model[:256])
                    self._forget_waiting(batch, model, event_id)
                    waiting -= 1
                    waits = False
                    renewed.add(event_id)
                # a copy: of a label that joined, or of one that waits (in the waiting set, whatever the count
                # says), which joins when its prediction comes or at the end of its wait, not this one
                if was_joined or event_id in handled or waits:
                    batch.duplicates.append((model, label))
                    continue
                prediction = fresh.get(event_id) or _from_record(event_id, stored.get(event_id))
                if prediction is not None:
                    joined.append(event_id)
                    batch.add(model, _with_label(prediction, label["label"]))
                    continue
                deadline = now + s.label_wait_s
                batch.writes.append(AwaitLabel(model, event_id, label["label"], label["timestamp"], deadline,
                                               int(s.label_wait_s) + 3600))
                waiting += 1
        # labels whose wait is over: a last look for their prediction, else unmatched
        if waiting:
            settled_here = handled | renewed
            due = [i for i in self._store.due_labels(model, now, s.sweep_limit) if i not in settled_here]
            if due:
                predictions_now = self._lookup(model, due, now)
                marks_now = self._store.label_marks_of({model: due}, self._joined_since(now))[model]
                joined_here = set(joined)
                for event_id, record, label, was_joined in zip(due, predictions_now, marks_now.labels,
                                                               marks_now.joined):
                    self._forget_waiting(batch, model, event_id)
                    waiting -= 1
                    if was_joined or event_id in joined_here:  # another label of the event joined: not this one too
                        _log.warning("a waiting label of event %s of model %s was dropped at the end of its wait: "
                                     "another label of the event joined", event_id[:256], model[:256])
                        continue
                    prediction = _from_record(event_id, record)
                    if prediction is not None and label is not None:
                        joined.append(event_id)
                        batch.add(model, _with_label(prediction, label["l"]))
                    else:
                        batch.unmatched[model] = batch.unmatched.get(model, 0) + 1
        if joined:  # whether predictions are kept or not: a prediction sent again meets only the first label
            batch.writes.append(MarkJoined(model, now, self._joined_since(now), s.prediction_ttl_s + 3600,
                                           tuple(joined)))
        counts = CountLabels(model, waiting - stored_waiting, batch.unmatched.get(model, 0),
                             sum(len(v) for (m, _v), v in batch.joined.items() if m == model))
        if counts.pending or counts.unmatched or counts.joined:
            batch.writes.append(counts)
        if waiting <= 0:
            batch.settled.append(model)

    @staticmethod
    def _forget_waiting(batch: JoinBatch, model: str, event_id: str) -> None:
        batch.writes.append(ForgetLabel(model, event_id))


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
