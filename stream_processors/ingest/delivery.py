"""One idempotent Kafka producer behind an asyncio front: submit events, await Kafka's delivery report.

What a 2xx from ``driftline ingest`` promises comes from here: ``submit`` returns a future that resolves
only when every envelope holding those events has been acknowledged by the broker (``enable.idempotence``
implies ``acks=all``). Steps for one submission:

1. Refuse at once (``Rejected("kafka_unavailable")``, nothing queued) when the events accepted but not yet
   confirmed would exceed ``max_pending``: the buffer is bounded, never an unbounded queue.
2. Join the open batch of its (topic, model, version); a batch is sent as one or more batch envelopes
   (``producers.events.encode_envelope``, keyed by the model, SDK producer settings) when it holds
   ``batch_events`` events or after ``linger_s``.
3. The delivery reports of its envelopes resolve every submission in the batch: all delivered, or the
   first error. librdkafka keeps retrying an undelivered envelope until ``message.timeout.ms``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field

import confluent_kafka

from producers.events import encode_envelope
from producers.sdk import envelope_producer_config
from producers.topics import KAFKA_CLIENT_LOG
from stream_processors.ingest.errors import Rejected

__all__ = ["KafkaDelivery", "DeliveryFailed"]

_log = logging.getLogger("driftline.ingest")


class DeliveryFailed(Exception):
    """Kafka reported an envelope undeliverable (after librdkafka's own retries)."""


@dataclass
class _OpenBatch:
    events: list[dict] = field(default_factory=list)
    futures: list[asyncio.Future] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class KafkaDelivery:
    def __init__(self, bootstrap: str, *, batch_events: int, linger_s: float, max_pending: int,
                 max_message_bytes: int, producer_config: dict | None = None) -> None:
        self.batch_events = batch_events
        self.linger_s = linger_s
        self.max_pending = max_pending
        self.max_message_bytes = max_message_bytes
        self._producer = confluent_kafka.Producer(
            envelope_producer_config(bootstrap, max_message_bytes, producer_config), logger=KAFKA_CLIENT_LOG)
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

    def submit(self, topic: str, kind: str, model: str, version: str | None, events: list[dict]) -> asyncio.Future:
        if self.pending + len(events) > self.max_pending:
            raise Rejected("kafka_unavailable", f"{self.pending} events are waiting for Kafka, the limit is "
                                                f"{self.max_pending}; retry later")
        future = self._loop.create_future()
        self.pending += len(events)
        key = (topic, model, version, kind)
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _OpenBatch()
        batch.events.extend(events)
        batch.futures.append(future)
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
        topic, model, version, kind = key
        values = list(self._envelopes(model, version, kind, batch.events))
        outcome = _Outcome(len(values), batch.futures, len(batch.events), self, model)
        for value in values:
            try:
                self._producer.produce(topic, value=value, key=model.encode(), on_delivery=outcome.report_threadsafe)
            except (BufferError, confluent_kafka.KafkaException) as exc:
                outcome.report(str(exc))

    def _envelopes(self, model: str, version: str | None, kind: str, events: list[dict]):
        for start in range(0, len(events), self.batch_events):
            yield from self._fitting(model, version, kind, events[start:start + self.batch_events])

    def _fitting(self, model, version, kind, events):
        value = encode_envelope(model, events, version, kind=kind)
        if len(value) > self.max_message_bytes and len(events) > 1:
            half = len(events) // 2
            yield from self._fitting(model, version, kind, events[:half])
            yield from self._fitting(model, version, kind, events[half:])
        else:
            yield value

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


class _Outcome:
    """The delivery reports of one batch's envelopes, settling its submissions once."""

    def __init__(self, messages: int, futures: list[asyncio.Future], events: int, owner: KafkaDelivery,
                 model: str) -> None:
        self.model = model
        self.waiting = messages
        self.futures = futures
        self.events = events
        self.owner = owner
        self.error: str | None = None

    def report_threadsafe(self, err: confluent_kafka.KafkaError | None, _msg) -> None:
        self.owner._loop.call_soon_threadsafe(self.report, None if err is None else err.str())

    def report(self, error: str | None) -> None:
        if self.waiting == 0:
            return
        if error is not None and self.error is None:
            self.error = error
        self.waiting -= 1
        if self.waiting:
            return
        if self.error is None:
            self.owner.delivered += self.events
        else:
            self.owner.failed += self.events
            _log.warning("Kafka did not take %d event(s) of model %s: %s (their requests were not answered 2xx)",
                         self.events, self.model, self.error)
        for future in self.futures:
            if not future.done():
                if self.error is None:
                    future.set_result(None)
                else:
                    future.set_exception(DeliveryFailed(self.error))
