"""One idempotent Kafka producer behind an asyncio front: submit events, await Kafka's delivery report.

What a 2xx from ``driftline ingest`` promises comes from here: ``submit`` returns a future that resolves
only when every envelope holding those events has been acknowledged by the broker (``enable.idempotence``
implies ``acks=all``). Steps for one submission:

1. Refuse at once (``Rejected("kafka_unavailable")``, nothing queued) when the events accepted but not yet
   confirmed would exceed ``max_pending``: the buffer is bounded, never an unbounded queue. ``submit_all``
   checks the room for all the submissions of one request before queuing any of them.
2. Join the open batch of its (topic, model, version); a batch is sent when it holds ``batch_events``
   events or after ``linger_s``, cut into batch envelopes (``producers.events.encode_envelope``, keyed by
   the model, SDK producer settings) of at most ``batch_events`` events and ``max_message_bytes`` bytes,
   the size a worker reads (an event too large for any envelope goes alone; ``documents`` refuses those
   with 413 before they get here). The producer's ``message.max.bytes`` is that size plus the record's
   key and framing, so it never holds a message the worker would dead-letter as ``oversized``.
3. Each submission is settled by the delivery reports of the envelopes holding its events, and only
   those: delivered when they all are, else failed with the first error. An envelope Kafka refuses fails
   the submissions it holds events of, never the other submissions of the same batch. librdkafka keeps
   retrying an undelivered envelope until ``message.timeout.ms``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field

import confluent_kafka
import orjson

from producers import kafka
from producers.events import encode_envelope
from producers.sdk import envelope_producer_config
from stream_processors.errors import ServiceUnavailable
from stream_processors.ingest.errors import Rejected

__all__ = ["KafkaDelivery", "DeliveryFailed", "cut_envelopes"]

_log = logging.getLogger("driftline.ingest")


class DeliveryFailed(ServiceUnavailable):
    """Kafka reported an envelope undeliverable (after librdkafka's own retries)."""


@dataclass(eq=False)
class _Submission:
    future: asyncio.Future
    envelopes: int = 0
    """Envelopes holding its events whose delivery report has not come yet."""
    error: str | None = None


@dataclass
class _OpenBatch:
    events: list[dict] = field(default_factory=list)
    owners: list[_Submission] = field(default_factory=list)
    """The submission of each event."""
    timer: asyncio.TimerHandle | None = None


# a record holds the envelope, its key (a model id, at most 256 characters) and Kafka's framing
_RECORD_FRAMING_BYTES = 4096


class KafkaDelivery:
    def __init__(self, connection: str | kafka.KafkaConnection, *, batch_events: int, linger_s: float, max_pending: int,
                 max_message_bytes: int, producer_config: dict | None = None, producer=None) -> None:
        """``producer``: a stand-in for ``confluent_kafka.Producer`` in tests (``produce``, ``poll``, ``flush``,
        ``list_topics``); by default one is made from ``connection`` and ``producer_config``."""
        self.batch_events = batch_events
        self.linger_s = linger_s
        self.max_pending = max_pending
        self.max_message_bytes = max_message_bytes
        config = {"message.max.bytes": max_message_bytes + _RECORD_FRAMING_BYTES, **(producer_config or {})}
        self._producer = producer or kafka.producer(connection, envelope_producer_config(max_message_bytes, config))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: dict[tuple[str, str, str | None, str], _OpenBatch] = {}
        self.pending = 0
        self.delivered = 0
        self.failed = 0
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="driftline-ingest-delivery", daemon=True)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def submit_all(self, submissions: list[tuple[str, str, str, str | None, list[dict]]]) -> list[asyncio.Future]:
        """``submit`` each ``(topic, kind, model, version, events)``, or none of them when they do not all fit."""
        self._check_room(sum(len(events) for *_, events in submissions))
        return [self.submit(*submission) for submission in submissions]

    def _check_room(self, n: int) -> None:
        if self.pending + n > self.max_pending:
            raise Rejected("kafka_unavailable", f"{self.pending} events are waiting for Kafka, the limit is "
                                                f"{self.max_pending}; nothing of this request was queued, retry "
                                                "later")

    def submit(self, topic: str, kind: str, model: str, version: str | None, events: list[dict]) -> asyncio.Future:
        self._check_room(len(events))
        future = self._loop.create_future()
        self.pending += len(events)
        key = (topic, model, version, kind)
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _OpenBatch()
        submission = _Submission(future)
        batch.events.extend(events)
        batch.owners.extend([submission] * len(events))
        future.add_done_callback(lambda f, n=len(events): self._settled(n, f))
        if len(batch.events) >= self.batch_events or self.linger_s == 0:
            self._send(key)
        elif batch.timer is None:
            batch.timer = self._loop.call_later(self.linger_s, self._send, key)
        return future

    def _settled(self, n: int, future: asyncio.Future) -> None:
        self.pending -= n
        if not future.cancelled():
            future.exception()  # retrieved: a request that stopped waiting has already answered 503

    def _send(self, key: tuple[str, str, str | None, str]) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        self._produce(key, batch.events, batch.owners)

    def _produce(self, key: tuple[str, str, str | None, str], events: list[dict], owners: list[_Submission]) -> None:
        topic, model, version, kind = key
        envelopes = []
        # every envelope is counted against its submissions before any report can settle one
        for value, start, stop in cut_envelopes(model, version, kind, events, self.batch_events,
                                                self.max_message_bytes):
            envelope = _Envelope(self, key, events[start:stop], owners[start:stop])
            for submission in envelope.holders:
                submission.envelopes += 1
            envelopes.append((value, envelope))
        for value, envelope in envelopes:
            try:
                self._producer.produce(topic, value=value, key=model.encode(),
                                       on_delivery=envelope.report_threadsafe)
            except (BufferError, confluent_kafka.KafkaException) as exc:
                envelope.report(str(exc), _refuses_the_message(exc.args[0] if exc.args else None))

    def writable(self, timeout_s: float = 2.0) -> bool:
        """Whether a broker answers a metadata request now (blocking: call it off the event loop)."""
        try:
            self._producer.list_topics(timeout=timeout_s)
            return True
        except confluent_kafka.KafkaException:
            return False

    def close(self, timeout_s: float = 10.0) -> int:
        """Send what is open, wait up to ``timeout_s`` for delivery; returns the messages still undelivered."""
        for key in list(self._open):
            self._send(key)
        left = self._producer.flush(timeout_s)
        self._stop.set()
        if self._poller.ident is not None:
            self._poller.join(2)
        return left


def cut_envelopes(model: str, version: str | None, kind: str, events: list[dict], max_events: int,
                  max_bytes: int):
    """``(value, start, stop)``: envelopes of ``events[start:stop]`` in order, each of at most ``max_events``
    events and ``max_bytes`` bytes, except an event too large for any envelope, which goes alone.

    Each event is encoded once: the envelope is its head, the events joined by commas, and ``]}``, the very
    bytes ``encode_envelope`` makes.
    """
    head = encode_envelope(model, [], version, kind=kind)[:-2]  # ... "events":[
    parts = [orjson.dumps(event) for event in events]
    start, size = 0, len(head) + 2
    for i, part in enumerate(parts):
        if i > start and (i - start >= max_events or size + 1 + len(part) > max_bytes):
            yield head + b",".join(parts[start:i]) + b"]}", start, i
            start, size = i, len(head) + 2
        size += len(part) + (1 if i > start else 0)
    if start < len(parts):
        yield head + b",".join(parts[start:]) + b"]}", start, len(parts)


# errors about one message, not about Kafka: another envelope of the same events can be delivered
_MESSAGE_ERRORS = {confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE, confluent_kafka.KafkaError.INVALID_MSG_SIZE,
                   confluent_kafka.KafkaError.INVALID_RECORD, confluent_kafka.KafkaError.RECORD_LIST_TOO_LARGE}


def _refuses_the_message(err: object) -> bool:
    return isinstance(err, confluent_kafka.KafkaError) and err.code() in _MESSAGE_ERRORS


class _Envelope:
    """One envelope's delivery report, settling each submission it holds events of once all of theirs report.

    When Kafka refuses this message itself (e.g. larger than a topic's own limit) and it holds events of
    several submissions, each submission's events are sent again in envelopes of their own, so the refusal
    fails only the submission it is about.
    """

    def __init__(self, owner: KafkaDelivery, key: tuple[str, str, str | None, str], events: list[dict],
                 owners: list[_Submission]) -> None:
        self.owner = owner
        self.key = key
        self.events = events
        self.owners = owners
        self.holders = list(dict.fromkeys(owners))
        self.reported = False

    def report_threadsafe(self, err: confluent_kafka.KafkaError | None, _msg) -> None:
        self.owner._loop.call_soon_threadsafe(self.report, None if err is None else err.str(),
                                              _refuses_the_message(err))

    def report(self, error: str | None, message_refused: bool = False) -> None:
        if self.reported:
            return
        self.reported = True
        if error is not None and message_refused and len(self.holders) > 1:
            for submission in self.holders:
                mine = [e for e, o in zip(self.events, self.owners) if o is submission]
                self.owner._produce(self.key, mine, [submission] * len(mine))
            self._settle(None)
            return
        if error is None:
            self.owner.delivered += len(self.events)
        else:
            self.owner.failed += len(self.events)
            _log.warning("Kafka did not take %d event(s) of model %s: %s (their requests were not answered 2xx)",
                         len(self.events), self.key[1], error)
        self._settle(error)

    def _settle(self, error: str | None) -> None:
        for submission in self.holders:
            submission.envelopes -= 1
            if error is not None and submission.error is None:
                submission.error = error
            if submission.envelopes == 0 and not submission.future.done():
                if submission.error is None:
                    submission.future.set_result(None)
                else:
                    submission.future.set_exception(DeliveryFailed(submission.error))
