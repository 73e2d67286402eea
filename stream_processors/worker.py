"""The faust app of a Driftline worker: it only wires decode → update → publish → save.

The logic lives in ``BatchProcessor``; this module consumes batches of
messages, publishes the outcome and commits state, retrying while Redis or
Kafka are unavailable so that nothing is acknowledged before it is saved.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import faust
import orjson
from aiokafka.errors import KafkaError

import time

from stream_processors.errors import ServiceUnavailable
from stream_processors.metrics import WorkerMetrics
from stream_processors.processing import BatchOutcome, BatchProcessor, IncomingMessage
from stream_processors.settings import Settings
from stream_processors.state_store import RedisStateStore

__all__ = ["build_app"]

_log = logging.getLogger("driftline.worker")
_RETRY_S = (0.5, 1.0, 2.0, 5.0)


def build_app(settings: Settings, metrics: WorkerMetrics) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")],
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        broker_commit_interval=1.0,
        topic_partitions=settings.topic_partitions,
        producer_max_request_size=settings.max_message_bytes + 262_144,
        consumer_max_fetch_size=max(4 * 1024 * 1024, settings.max_message_bytes * 2),
        stream_buffer_maxsize=max(4096, settings.batch_max_messages * 4),
    )
    store = RedisStateStore(settings.redis_url, settings.app_id)
    processor = BatchProcessor(settings, store)
    # Both keyed by model, with the same partition count: faust gives a worker the same partitions of
    # each, so a model's labels meet its predictions in one place.
    source = app.topic(settings.inference_topic, settings.label_topic, key_type=bytes, value_type=bytes)

    async def publish(outcome: BatchOutcome) -> None:
        futures = []
        for alert in outcome.alerts:
            futures.append(await app.producer.send(
                settings.control_topic, alert["model"].encode(), orjson.dumps(alert), None, None, None))
        for letter in outcome.dead_letters:
            key = letter["model"].encode() if letter["model"] else None
            futures.append(await app.producer.send(
                settings.dead_letter_topic, key, orjson.dumps(letter), None, None, None))
        if futures:
            await asyncio.gather(*futures)

    async def handle(messages: list[IncomingMessage]) -> None:
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                outcome = _without_cyclic_gc(processor.process, messages)
            except ServiceUnavailable as exc:
                metrics.redis_errors.inc()
                attempt = await _backoff(attempt, exc)
                continue
            try:
                await publish(outcome)
            except (OSError, asyncio.TimeoutError, KafkaError) as exc:
                metrics.kafka_errors.inc()
                attempt = await _backoff(attempt, exc)
                continue
            try:
                saved = not outcome.offsets or store.commit(outcome.offsets, outcome.states, outcome.writes)
            except ServiceUnavailable as exc:
                metrics.redis_errors.inc()
                attempt = await _backoff(attempt, exc)
                continue
            if saved:
                metrics.observe(outcome, time.perf_counter() - started)
            else:
                metrics.conflicts.inc()
                _log.warning("partitions %s were advanced by another worker; this batch's state is dropped",
                             sorted(outcome.offsets))
            if outcome.events or outcome.dead_letters:
                _log.info("applied %d events, %d rejected, %d alerts, %d messages already applied",
                          outcome.events, len(outcome.dead_letters), len(outcome.alerts), outcome.skipped_messages)
            return

    @app.agent(source, concurrency=1)
    async def inference(stream):
        async for events in stream.take_events(settings.batch_max_messages, within=settings.batch_within_s):
            await handle([IncomingMessage(e.message.topic, e.message.partition, e.message.offset, e.value,
                                          e.message.key) for e in events])
            last = {}
            for e in events:
                last[e.message.tp] = e.message.offset
            for tp, offset in last.items():
                metrics.set_consumer_lag(tp.topic, tp.partition, app.consumer.highwater(tp) - offset - 1)

    return app


async def _backoff(attempt: int, exc: Exception) -> int:
    """Nothing is acknowledged until the state is saved: wait, then the caller redoes the batch."""
    delay = _RETRY_S[min(attempt, len(_RETRY_S) - 1)]
    _log.error("batch not saved (%s); retrying in %.1fs", exc, delay)
    await asyncio.sleep(delay)
    return attempt + 1


def _without_cyclic_gc(fn, *args):
    """Run ``fn`` with the cyclic collector paused.

    Decoding a batch allocates ~10 dicts per event that live until the batch
    ends; with the collector on, they trigger full collections over the
    worker's whole heap (measured: a third of the batch time). Batches are
    bounded and their garbage is acyclic, so reference counting frees it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return fn(*args)
    finally:
        if enabled:
            gc.enable()
