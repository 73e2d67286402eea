"""The faust app of a Driftline worker: it only wires decode → update → publish → save.

The logic lives in ``BatchProcessor``; this module consumes batches of
messages, publishes the outcome and commits state, retrying while Redis or
Kafka are unavailable so that nothing is acknowledged before it is saved.

What keeps a worker honest under faults:

- Processing and every Redis call of a batch run on one worker thread (one, so
  batches stay in order); the event loop only moves messages, so heartbeats
  and fetches go on while a batch is slow or Redis hangs.
- A take is bounded by bytes (``batch_max_bytes``) as well as by messages, so
  one take of large envelopes cannot hold the thread for long; the next take
  fills while the thread works on this one (``takes``), so under load a take
  holds what came meanwhile, and a model version touched is applied and saved
  once per chunk of it (a take is cut into chunks of at most
  ``batch_max_models`` models).
- Redis is the truth about offsets. Whenever faust seeks a partition to its
  committed offset (after every assignment, and to take back records it
  fetched but dropped because a rebalance had stopped the flow), the worker
  seeks it instead to the offset after the one saved in Redis, or to the
  earliest retained offset when neither Redis nor Kafka holds one (never
  leaving a partition where its fetch got to); a partition Kafka says was consumed
  but Redis does not know is a lost state: alerted, counted, and rebuilt from
  the earliest retained offset when ``rebuild_on_state_loss`` is on.
- A commit that loses its compare-and-set (another worker advanced the
  partition) redoes the batch from the offsets now in Redis.
- Offsets in Redis never move back. One lower than this worker committed
  means Redis lost acknowledged writes (a failover to a replica that had not
  received them, a restart without persistence, a flush): the worker exits
  with status 70 rather than skip the messages whose state was lost, and its
  restart reads again from the offsets Redis holds (or rebuilds, as above,
  when Redis holds none).
- If the agent fails for any reason it cannot recover from, the process exits
  with status 70 so that its supervisor restarts it: a worker never sits on its
  partitions without processing them. Nothing is lost by exiting: a restart
  resumes from the offsets in Redis.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import faust
import orjson
from aiokafka.errors import KafkaError

from producers.kafka import co_partitioned_count
from stream_processors.alerts import control_record, state_lost_alert
from stream_processors.errors import ServiceUnavailable
from stream_processors.faust_app.options import faust_options
from stream_processors.faust_app.takes import takes
from stream_processors.metrics import WorkerMetrics
from stream_processors.batch import BatchOutcome, BatchProcessor, IncomingMessage, is_fatal
from stream_processors.config import Settings
from stream_processors.state import RedisStateStore
from stream_processors.state.store import by_partition

__all__ = ["AGENT_FAILED_EXIT", "build_app", "chunks", "commit_in_parts", "model_partitions", "saved_part",
           "seek_on_the_consumer_thread"]

_log = logging.getLogger("driftline.worker")
_RETRY_S = (0.5, 1.0, 2.0, 5.0)
AGENT_FAILED_EXIT = 70  # EX_SOFTWARE
SHUTDOWN_GRACE_S = 20.0  # within Kubernetes' default 30 s termination grace period


def chunks(messages: list[IncomingMessage], max_messages: int, max_bytes: int,
           max_models: int | None = None) -> list[list[IncomingMessage]]:
    """Consecutive runs of messages, each within the bounds (a single larger message is a run of its own).

    ``max_models`` bounds the distinct message keys (models) of a run, since every model of a run may bring up
    to ``max_versions_per_model`` new versions to build: a run of many small messages each keyed by a new model
    costs what a few do. A message without a key counts as a model of its own.
    """
    out: list[list[IncomingMessage]] = []
    current: list[IncomingMessage] = []
    keys: set = set()
    size = 0
    for m in messages:
        n = len(m.value or b"")
        key = m.key if m.key is not None else object()
        new_key = key not in keys
        if current and (len(current) >= max_messages or size + n > max_bytes
                        or (max_models is not None and new_key and len(keys) >= max_models)):
            out.append(current)
            current, size, keys = [], 0, set()
        current.append(m)
        keys.add(key)
        size += n
    if current:
        out.append(current)
    return out


def build_app(settings: Settings, metrics: WorkerMetrics) -> faust.App:
    app = faust.App(settings.app_id, **faust_options(settings))
    # a model's state lives with its topic partition's (state.keys): the count comes from Kafka, and keys laid out
    # for another count (or an older layout) are moved before anything is applied
    partitions = co_partitioned_count(settings.kafka, [settings.inference_topic, settings.label_topic])
    store = RedisStateStore(settings.redis, settings.app_id, partitions)
    store.prepare()
    signer = settings.signer()
    processor = BatchProcessor(settings, store)
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftline-batch")
    # Both keyed by model, with the same partition count: faust gives a worker the same partitions of
    # each, so a model's labels meet its predictions in one place.
    source = app.topic(settings.inference_topic, settings.label_topic, key_type=bytes, value_type=bytes)

    async def off_loop(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(thread, _without_cyclic_gc, fn, *args)

    async def publish(outcome: BatchOutcome) -> None:
        futures = []
        for alert in outcome.alerts:
            key = (alert["model"] or "").encode()
            futures.append(await app.producer.send(settings.control_topic, key, control_record(alert, signer), None,
                                                   None, None))
        for letter in outcome.dead_letters:
            key = letter["model"].encode() if letter["model"] else None
            futures.append(await app.producer.send(
                settings.dead_letter_topic, key, orjson.dumps(letter), None, None, None))
        if futures:
            await asyncio.gather(*futures)

    def partly_saved(outcome: BatchOutcome, parts: set[int]) -> None:
        """Partitions of ``outcome`` saved before a conflict or a Redis failure: the redo skips their messages,
        so what they applied is recorded now (their offsets for the rollback check, their counts)."""
        if not parts:
            return
        processor.committed({tp: o for tp, o in outcome.offsets.items() if tp[1] in parts})
        part = saved_part(outcome, parts, store.partition_of)
        try:
            metrics.observe_models(part, partitions=model_partitions(part, store.partition_of))
        except Exception as exc:  # noqa: BLE001 - the state is saved; a metric must not take the worker down
            _log.warning("metrics not updated (%s: %s)", type(exc).__name__, exc)

    async def handle(messages: list[IncomingMessage]) -> None:
        """Process, publish, save; returns only once the state is saved (or was saved by another worker)."""
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                outcome = await off_loop(processor.process, messages)
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
            parts: set[int] = set()
            try:
                saved = await off_loop(commit_in_parts, store, outcome, store.keys().partitions, parts)
            except ServiceUnavailable as exc:
                partly_saved(outcome, parts)
                metrics.redis_errors.inc()
                attempt = await _backoff(attempt, exc)
                continue
            if not saved:
                metrics.conflicts.inc()
                partly_saved(outcome, parts)
                _log.warning("partitions %s were advanced by another worker meanwhile; redoing the batch from "
                             "the offsets now in Redis", sorted(outcome.offsets))
                await asyncio.sleep(0.05)  # the redo skips what the other worker applied; no need to spin
                continue
            processor.committed(outcome.offsets)
            try:
                metrics.observe(outcome, time.perf_counter() - started,
                                partitions=model_partitions(outcome, store.partition_of))
            except Exception as exc:  # noqa: BLE001 - the state is saved; a metric must not take the worker down
                _log.warning("metrics not updated (%s: %s)", type(exc).__name__, exc)
            if outcome.events or outcome.dead_letters:
                _log.info("applied %d events, %d rejected, %d alerts, %d messages already applied",
                          outcome.events, len(outcome.dead_letters), len(outcome.alerts), outcome.skipped_messages)
            return

    _seek_to_saved_offsets(app, settings, store, metrics, processor)

    async def consume(events) -> None:
        """One take: its chunks processed and saved, in order (a take is within the chunks' messages and bytes;
        it is cut where it holds more than batch_max_models models)."""
        messages = [IncomingMessage(e.message.topic, e.message.partition, e.message.offset, e.value,
                                    e.message.key) for e in events]
        for chunk in chunks(messages, settings.batch_max_messages, settings.batch_max_bytes,
                            settings.batch_max_models):
            await handle(chunk)
        _record_lag(app, metrics, events)

    @app.agent(source, concurrency=1)
    async def inference(stream):
        try:
            async for events in takes(stream, settings.batch_max_messages, settings.batch_max_bytes,
                                      settings.batch_within_s):
                await consume(events)
                # a saved take is let go before the next one is handed over (that one filled meanwhile, and faust
                # buffers up to 1000 messages more ahead of it: options.faust_options)
                del events
        except BaseException as exc:
            # a MemoryError too exits (faust would log it and leave the worker on its partitions, idle); the rest
            # of is_fatal's are shutdown's
            if is_fatal(exc) and not isinstance(exc, MemoryError):
                raise
            _exit_agent_failed(exc)

    @app.on_before_shutdown.connect
    async def _bounded_shutdown(app, **kwargs) -> None:
        # faust's shutdown waits on Kafka (a last commit, a producer flush); with the broker gone it would wait
        # for good. Nothing is lost by cutting it short: the next worker resumes from the offsets in Redis.
        timer = threading.Timer(SHUTDOWN_GRACE_S, _exit_after_grace)
        timer.daemon = True
        timer.start()

    @app.on_partitions_revoked.connect
    async def _revoked(app, revoked, **kwargs) -> None:
        processor.rebalanced()  # other workers may save some models' versions, or own their labels, from now on
        if app.consumer.flow_active:
            # faust stops the flow for a rebalance only on a worker that owned partitions. One that owned none
            # (more workers than partitions) would take in records from Kafka's committed offsets of what it is
            # assigned before the seek to Redis's: where Kafka is ahead (Redis lost its last writes), those would
            # be applied first and the messages the seek goes back for skipped. Recovery resumes both.
            app.consumer.stop_flow()
            app.flow_control.suspend()
        if revoked:
            _log.info("partitions revoked: %s", sorted(f"{tp.topic}:{tp.partition}" for tp in revoked))

    @app.on_partitions_assigned.connect
    async def _assigned(app, assigned, **kwargs) -> None:
        # the gauges of models whose partitions went to another worker are that worker's to export now; a
        # model's events (and so its gauges) come from its partition of the inference topic. The consumer lag
        # of partitions no longer assigned goes too (their new owner exports it).
        owned = {tp.partition for tp in assigned if tp.topic == settings.inference_topic}
        metrics.owned_partitions(owned, {(tp.topic, tp.partition) for tp in assigned})
        if owned:  # models without traffic are exported from now on, not from their next event
            seeding[0] += 1
            seeding[1].add(asyncio.ensure_future(_seed_gauges(owned, seeding[0])))

    seeding: list = [0, set()]  # the latest assignment's number, the tasks exporting saved versions

    def saved_versions(owned: set[int], assignment: int) -> dict | None:
        if assignment != seeding[0]:
            return None  # a later assignment reads its own partitions' (a rebalance storm reads once)
        return store.summaries_of(owned, metrics.max_model_series)

    async def _seed_gauges(owned: set[int], assignment: int) -> None:
        try:
            summaries = await off_loop(saved_versions, owned, assignment)
            if summaries is None:
                return
            seeded = metrics.seed(summaries, store.partition_of)
            _log.info("exporting %d model versions of partitions %s as saved", seeded, sorted(owned))
        except Exception as exc:  # noqa: BLE001 - gauges are filled by the next events anyway
            _log.warning("saved model versions not exported before their next event (%s: %s)",
                         type(exc).__name__, exc)
        finally:
            seeding[1].discard(asyncio.current_task())

    return app


def commit_in_parts(store, outcome: BatchOutcome, partitions: int, done: set[int]) -> bool:
    """Save ``outcome`` as ``store.commit`` does - one part per partition, in ascending order, up to the first
    conflict - but a part at a time, adding each partition saved to ``done``, so as to know which were saved
    before a conflict or a Redis failure; returns whether all was saved. A batch with a part that has no offsets
    is saved whole, as one commit (its partitions are then all saved or none)."""
    parts = by_partition(outcome, store.partition_of, partitions)
    if any(not part.offsets for _n, part in parts):
        saved = store.commit(outcome)
        if saved:
            done.update(n for n, _part in parts)
        return saved
    for n, part in parts:
        if not store.commit(part):
            return False
        done.add(n)
    return True


def saved_part(outcome: BatchOutcome, partitions: set[int], partition_of) -> BatchOutcome:
    """What ``outcome`` applied to the models of ``partitions``, for the per-model metrics."""
    def ours(values: dict) -> dict:
        return {key: v for key, v in values.items() if partition_of(key[0]) in partitions}

    letters = [d for d in outcome.dead_letters if d["source"] is not None and d["source"]["partition"] in partitions]
    rejected: dict[str, int] = {}
    for letter in letters:
        rejected[letter["reason_code"]] = rejected.get(letter["reason_code"], 0) + letter["count"]
    return BatchOutcome(events_total=ours(outcome.events_total), events_by_model=ours(outcome.events_by_model),
                        newest_event_time=ours(outcome.newest_event_time), readings=ours(outcome.readings),
                        drifting=ours(outcome.drifting), performance=ours(outcome.performance),
                        decisions=ours(outcome.decisions),
                        quarantined=[q for q in outcome.quarantined if partition_of(q.model) in partitions],
                        alerts=[a for a in outcome.alerts if a.get("model") and partition_of(a["model"]) in partitions],
                        dead_letters=letters, rejected_by_reason=rejected)


def model_partitions(outcome: BatchOutcome, partition_of) -> dict[str, int]:
    """Each model of the outcome with its partition, as the store places it (the partition its producers key it
    to): a batch of labels only, or of a revoked partition, is placed as well as one of inference messages."""
    keys = {*outcome.events_by_model, *outcome.events_total, *outcome.readings, *outcome.drifting,
            *outcome.performance, *outcome.decisions, *outcome.newest_event_time}
    return {model: partition_of(model) for model in {m for m, _v in keys}}


def _record_lag(app: faust.App, metrics: WorkerMetrics, events) -> None:
    """Consumer lag per partition; a metric must never take the worker down, so failures are only logged."""
    try:
        last = {}
        for e in events:
            last[e.message.tp] = e.message.offset
        assigned = app.consumer.assignment()
        for tp, offset in last.items():
            # a partition revoked while its batch was saved, or just assigned and not fetched yet, has no
            # high-water mark here
            highwater = app.consumer.highwater(tp) if tp in assigned else None
            if highwater is not None:
                metrics.set_consumer_lag(tp.topic, tp.partition, highwater - offset - 1)
    except Exception as exc:  # noqa: BLE001
        _log.warning("consumer lag not recorded (%s: %s)", type(exc).__name__, exc)


def _seek_to_saved_offsets(app: faust.App, settings: Settings, store: RedisStateStore, metrics: WorkerMetrics,
                           processor: BatchProcessor) -> None:
    """Make every seek to the committed offsets a seek to the offsets saved in Redis (see the module doc)."""
    consumer = app.consumer
    seek_to_committed = consumer.seek_to_committed
    # faust gives a seek broker_request_timeout (90 s) and, past it, stops resuming the stream for good: a worker
    # that cannot read its offsets sooner exits instead, and its supervisor restarts it.
    give_up_after_s = 60.0
    one_at_a_time = asyncio.Lock()

    async def saved_offsets(tps) -> dict:
        attempt = 0
        deadline = time.monotonic() + give_up_after_s
        while True:
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    None, store.offsets, [(tp.topic, tp.partition) for tp in tps])
            except ServiceUnavailable as exc:
                metrics.redis_errors.inc()
                if time.monotonic() > deadline:
                    _exit_agent_failed(ServiceUnavailable(
                        f"the offsets saved in Redis could not be read for {give_up_after_s:.0f}s after an "
                        f"assignment ({exc})"))
                attempt = await _backoff(attempt, exc, "offsets not read")

    async def seek_to_saved():
        async with one_at_a_time:  # faust also seeks from its fetch loop while a rebalance seeks
            return await _seek_to_saved()

    async def _seek_to_saved():
        if not consumer.assignment():  # a worker that owns nothing (aiokafka refuses the seek: a warning each time)
            return {}
        committed = dict(await seek_to_committed())
        if not committed:
            return committed
        saved = await saved_offsets(list(committed))
        # the consumer resumes after what Redis holds (below): the rollback check starts from there
        processor.resumed_from({(tp.topic, tp.partition): saved[(tp.topic, tp.partition)] for tp in committed})
        earliest = await consumer.earliest_offsets(*committed)
        lost_alerts = []
        for tp, kafka_next in committed.items():
            redis_last = saved[(tp.topic, tp.partition)]
            first = max(earliest.get(tp) or 0, 0)  # -1 (unknown) from an old ListOffsets reads as 0
            if redis_last >= 0:
                target = max(redis_last + 1, first)
                if kafka_next is not None and kafka_next > target:
                    metrics.rewound.inc()
                    _log.warning("%s:%d: Kafka's committed offset %d is ahead of the %d saved in Redis; reading "
                                 "again from %d", tp.topic, tp.partition, kafka_next, redis_last + 1, target)
                if redis_last + 1 < first:
                    _log.error("%s:%d: events %d..%d were deleted by retention before they were applied",
                               tp.topic, tp.partition, redis_last + 1, first - 1)
            elif kafka_next is not None and kafka_next > first:
                metrics.state_lost.inc()
                rebuild = settings.rebuild_on_state_loss
                target = first if rebuild else kafka_next
                _log.critical("%s:%d: Kafka says offsets up to %d were consumed, but Redis holds no state for this "
                              "partition; %s", tp.topic, tp.partition, kafka_next - 1,
                              f"rebuilding from offset {first}" if rebuild else
                              "continuing without it (DRIFTLINE_REBUILD_ON_STATE_LOSS=true rebuilds)")
                lost_alerts.append(state_lost_alert(tp.topic, tp.partition, kafka_next, first, rebuild, time.time()))
            else:
                # nothing applied, nothing committed: from the earliest retained offset. A seek, not a no-op:
                # faust calls this to rewind records it fetched and dropped (a fetch that returned while a
                # rebalance stopped the flow), and a partition left where its position is would skip those
                target = first
            await consumer.seek(tp, target)
            committed[tp] = target
        for alert in lost_alerts:
            await app.producer.send(settings.control_topic, b"", control_record(alert, settings.signer()), None, None,
                                    None)
        return committed

    consumer.seek_to_committed = seek_to_saved
    seek_on_the_consumer_thread(consumer)


def seek_on_the_consumer_thread(consumer) -> None:
    """Make the consumer's ``seek`` run on faust's consumer thread, which owns aiokafka's consumer.

    faust's aiokafka consumer lives on a thread of its own, yet its ``seek`` calls aiokafka from the caller's
    thread. A seek from the event loop (``seek_to_saved``, after an assignment) then drops a partition's
    buffered records while the consumer thread is handing them out, and the fetch fails with a ``KeyError``
    for that partition, which ends the worker. Run on the consumer thread, the two never overlap."""
    thread = consumer._thread

    async def _seek(partition, offset: int) -> None:
        await thread.call_thread(thread.seek, partition, offset)

    consumer._seek = _seek


def _exit_after_grace() -> None:
    _log.warning("shutdown did not finish within %.0fs (Kafka unreachable?); exiting now: the next start resumes "
                 "from the offsets saved in Redis", SHUTDOWN_GRACE_S)
    logging.shutdown()
    os._exit(0)


def _exit_agent_failed(exc: BaseException) -> None:
    trace = "".join(traceback.format_exception(exc)) if exc.__traceback__ is not None else ""
    _log.critical("the worker cannot go on processing (%s: %s); exiting with status %d so that it is restarted "
                  "(it resumes from the offsets saved in Redis)\n%s", type(exc).__name__, exc, AGENT_FAILED_EXIT,
                  trace)
    logging.shutdown()
    os._exit(AGENT_FAILED_EXIT)


async def _backoff(attempt: int, exc: Exception, what: str = "batch not saved") -> int:
    """Nothing is acknowledged until the state is saved: wait, then the caller redoes the batch."""
    delay = _RETRY_S[min(attempt, len(_RETRY_S) - 1)]
    _log.error("%s (%s); retrying in %.1fs", what, exc, delay)
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
