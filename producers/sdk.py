"""Clients for model servers and label sources: log events, never block.

``InferenceLogger.log`` appends to an in-memory buffer and returns; a
background thread turns full (or old enough) buffers into batch envelopes and
hands them to confluent-kafka, which delivers them asynchronously. When Kafka
is down the buffer is bounded: the oldest events are dropped and counted, the
model server keeps serving. Delivery failures are counted and the last error is
kept, both readable from ``stats()``.

Values are checked in ``log()``, on the caller's thread: numpy scalars, 0-d
arrays and ``Decimal`` become JSON numbers and booleans; NaN, infinity and
numbers beyond ``MAX_ABS_NUMBER`` raise ``ValueError`` naming the field,
because the worker would reject them. Whatever still cannot be encoded (an
arbitrary object among the features) costs only its own event: it is counted
as ``unencodable`` and named in ``last_error``, the rest of its batch is sent,
and the sender thread carries on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

import confluent_kafka
import orjson

from producers import kafka
from producers.events import MAX_ABS_NUMBER, encode_envelope
from producers.kafka import KafkaConnection

__all__ = ["DeliveryStats", "InferenceLogger", "LabelLogger", "DEFAULT_INFERENCE_TOPIC", "DEFAULT_LABEL_TOPIC",
           "envelope_producer_config"]

DEFAULT_INFERENCE_TOPIC = "driftline.inference"
DEFAULT_LABEL_TOPIC = "driftline.labels"
_log = logging.getLogger(__name__)


def envelope_producer_config(max_message_bytes: int, extra: dict | None = None) -> dict:
    """confluent-kafka settings of every producer of batch envelopes (this SDK, ``driftline ingest``), beyond those
    of the connection (``producers.kafka``)."""
    config = {"linger.ms": 5, "message.max.bytes": max_message_bytes + 65536,
              "queue.buffering.max.kbytes": 262144, "message.timeout.ms": 120000,
              "enable.idempotence": True,
              # the partitioner of Java clients too: a model's inference and label events then share a
              # partition number, which the worker relies on to join them
              "partitioner": "murmur2_random"}
    config.update(extra or {})
    return config


@dataclass(frozen=True)
class DeliveryStats:
    logged: int
    delivered: int
    failed: int
    dropped: int
    buffered: int
    last_error: str | None
    rejected: int = 0
    """Events ``log()`` refused with ``ValueError`` (NaN, infinity, a number beyond ``MAX_ABS_NUMBER``)."""
    unencodable: int = 0
    """Events the sender could not encode as JSON; the rest of their batch was sent."""


def _json_number(value: object, field: str) -> object:
    """``value`` ready for JSON: numpy scalars, 0-d arrays and Decimal as plain numbers or booleans.

    Raises ValueError for NaN, infinity and magnitudes beyond MAX_ABS_NUMBER. Other
    types are returned as they are (the worker judges text, null and the rest).
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is not int and kind is not float:
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy, and alike, scalars
            value = value.item()
        elif isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"{field} is {value}: send a finite number, or null for a missing value")
            value = int(value) if value == value.to_integral_value() else float(value)
        elif isinstance(value, bool):
            value = bool(value)
        elif isinstance(value, int):  # IntEnum and other int subclasses
            value = int(value)
        elif isinstance(value, float):
            value = float(value)
        else:
            return value
        kind = type(value)
        if kind is not int and kind is not float:
            return value
    if not -MAX_ABS_NUMBER <= value <= MAX_ABS_NUMBER:  # NaN fails this too
        shown = value if kind is float else f"an integer of {len(str(abs(value)))} digits"
        raise ValueError(f"{field} is {shown}: Driftline takes finite numbers of magnitude at most "
                         f"{MAX_ABS_NUMBER:g} (send null for a missing value)")
    return value


class _EnvelopeLogger:
    _kind = "inference"

    def __init__(self, bootstrap: str | KafkaConnection, topic: str, model: str, model_version: str | None,
                 batch_size: int, linger_s: float, max_buffered: int, max_message_bytes: int,
                 producer_config: dict | None) -> None:
        if batch_size < 1 or max_buffered < batch_size:
            raise ValueError("batch_size must be at least 1 and max_buffered at least batch_size")
        if not model:
            raise ValueError("model must be a non-empty string")
        self.topic = topic
        self.model = model
        self.model_version = model_version
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_buffered = max_buffered
        self.max_message_bytes = max_message_bytes
        self._producer = kafka.producer(bootstrap, envelope_producer_config(max_message_bytes, producer_config),
                                        logger=_log)
        self._buffer: deque[dict] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._oldest = 0.0
        self._logged = self._delivered = self._failed = self._dropped = 0
        self._rejected = self._unencodable = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"driftline-{self._kind}-logger", daemon=True)
        self._thread.start()

    def _reject(self, exc: ValueError) -> None:
        with self._lock:
            self._rejected += 1
            self._last_error = str(exc)

    def _append(self, event: dict) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("this logger is closed")
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append(event)
            self._logged += 1
            if len(self._buffer) > self.max_buffered:
                self._buffer.popleft()
                self._dropped += 1
            if len(self._buffer) >= self.batch_size:
                self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=min(self.linger_s, 0.1))
            self._wake.clear()
            try:
                self._send_ready(force=self._closed)
                self._producer.poll(0)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failure
                _log.exception("driftline %s logger: sending failed", self._kind)
                with self._lock:
                    self._last_error = f"sending failed: {exc}"
            if self._closed and not self._buffer:
                return

    def _send_ready(self, force: bool) -> None:
        while True:
            with self._lock:
                due = len(self._buffer) >= self.batch_size or (
                    self._buffer and (force or time.monotonic() - self._oldest >= self.linger_s))
                if not due:
                    return
                batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
                self._oldest = time.monotonic()
            try:
                self._produce(batch)
            except Exception as exc:  # noqa: BLE001 - counted, never lost silently
                with self._lock:
                    self._failed += len(batch)
                    self._last_error = f"sending failed: {exc}"

    def _encodable(self, batch: list[dict]) -> list[dict]:
        """The events of ``batch`` that encode as JSON; the others are counted and named in last_error."""
        kept = []
        for event in batch:
            try:
                orjson.dumps(event)
            except TypeError as exc:  # orjson.JSONEncodeError
                with self._lock:
                    self._unencodable += 1
                    self._last_error = f"event {str(event.get('event_id'))[:256]!r} could not be encoded: {exc}"
                continue
            kept.append(event)
        return kept

    def _produce(self, batch: list[dict]) -> None:
        try:
            value = encode_envelope(self.model, batch, self.model_version, kind=self._kind)
        except TypeError:  # one event's value; find it and send the others
            batch = self._encodable(batch)
            if not batch:
                return
            value = encode_envelope(self.model, batch, self.model_version, kind=self._kind)
        if len(value) > self.max_message_bytes and len(batch) > 1:
            half = len(batch) // 2
            self._produce(batch[:half])
            self._produce(batch[half:])
            return
        n = len(batch)
        try:
            self._producer.produce(self.topic, value=value, key=self.model.encode(),
                                   on_delivery=lambda err, _msg: self._on_delivery(err, n))
        except BufferError:
            # librdkafka's own queue is full (Kafka unreachable for a long time):
            # these events are dropped rather than blocking the model server.
            with self._lock:
                self._dropped += n
                self._last_error = "local producer queue full"
        except confluent_kafka.KafkaException as exc:
            with self._lock:
                self._failed += n
                self._last_error = str(exc)

    def _on_delivery(self, err: confluent_kafka.KafkaError | None, n: int) -> None:
        with self._lock:
            if err is None:
                self._delivered += n
            else:
                self._failed += n
                self._last_error = str(err)

    def stats(self) -> DeliveryStats:
        with self._lock:
            return DeliveryStats(self._logged, self._delivered, self._failed, self._dropped,
                                 len(self._buffer), self._last_error, self._rejected, self._unencodable)

    def flush(self, timeout: float = 30.0) -> DeliveryStats:
        """Send what is buffered and wait up to ``timeout`` seconds for delivery."""
        self._send_ready(force=True)
        self._producer.flush(timeout)
        return self.stats()

    def close(self, timeout: float = 30.0) -> DeliveryStats:
        """Flush, then stop the background thread. Returns the final counts."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        self._producer.flush(timeout)
        return self.stats()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InferenceLogger(_EnvelopeLogger):
    """Logs inference events of one model version from a model server.

    Parameters
    ----------
    bootstrap
        Kafka bootstrap servers, e.g. ``"localhost:9092"``, or a ``producers.kafka.KafkaConnection``.
    model, model_version
        Which model these events come from.
    topic
        Inference topic.
    batch_size
        Events per batch envelope.
    linger_s
        Longest time an event waits in the buffer before it is sent.
    max_buffered
        Events kept while Kafka is slow or down; past it the oldest are dropped.
    max_message_bytes
        Envelopes larger than this are split.
    producer_config
        Extra confluent-kafka settings.

    Example::

        with InferenceLogger("localhost:9092", model="fraud", model_version="3") as log:
            log.log("req-1", {"amount": 12.5, "country": "FR"}, prediction=0, score=0.12)
    """

    _kind = "inference"

    def __init__(self, bootstrap: str | KafkaConnection, model: str, model_version: str,
                 topic: str = DEFAULT_INFERENCE_TOPIC, batch_size: int = 500, linger_s: float = 0.5,
                 max_buffered: int = 100_000, max_message_bytes: int = 900_000,
                 producer_config: dict | None = None) -> None:
        super().__init__(bootstrap, topic, model, str(model_version), batch_size, linger_s, max_buffered,
                         max_message_bytes, producer_config)

    def log(self, event_id: str, features: dict, prediction: object, score: object = None,
            timestamp: float | None = None) -> None:
        """Queue one event. Raises ValueError, naming the field, for NaN, infinity or a number beyond 1e15."""
        if not isinstance(features, dict):
            raise TypeError(f"features must be a dict of feature name to value, got {type(features).__name__}")
        try:
            event = {"event_id": event_id,
                     "timestamp": time.time() if timestamp is None else _json_number(timestamp, "timestamp"),
                     "features": {name: _json_number(value, f"feature {name!r}") for name, value in features.items()},
                     "prediction": _json_number(prediction, "prediction")}
            if isinstance(score, dict):
                event["score"] = {c: _json_number(p, f"score of class {c!r}") for c, p in score.items()}
            elif score is not None:
                event["score"] = _json_number(score, "score")
        except ValueError as exc:
            self._reject(exc)
            raise ValueError(f"event {str(event_id)[:256]!r}: {exc}") from None
        self._append(event)


class LabelLogger(_EnvelopeLogger):
    """Logs ground-truth labels of one model, joined later to inference events by ``event_id``."""

    _kind = "label"

    def __init__(self, bootstrap: str | KafkaConnection, model: str, topic: str = DEFAULT_LABEL_TOPIC,
                 batch_size: int = 500, linger_s: float = 0.5, max_buffered: int = 100_000,
                 max_message_bytes: int = 900_000, producer_config: dict | None = None) -> None:
        super().__init__(bootstrap, topic, model, None, batch_size, linger_s, max_buffered, max_message_bytes,
                         producer_config)

    def log(self, event_id: str, label: object, timestamp: float | None = None) -> None:
        """Queue one label. Raises ValueError, naming the field, for NaN, infinity or a number beyond 1e15."""
        try:
            event = {"event_id": event_id, "label": _json_number(label, "label"),
                     "timestamp": time.time() if timestamp is None else _json_number(timestamp, "timestamp")}
        except ValueError as exc:
            self._reject(exc)
            raise ValueError(f"event {str(event_id)[:256]!r}: {exc}") from None
        self._append(event)
