"""The worker's faust app, built as `driftline worker` builds it, on the real Kafka and Redis."""

import signal

import pytest
from prometheus_client import CollectorRegistry

from producers import kafka
from producers.events import encode_envelope
from producers.topics import ensure_topics
from stream_processors.faust_app.app import AGENT_FAILED_EXIT, build_app
from stream_processors.metrics import WorkerMetrics
from stream_processors.state import RedisStateStore

from .conftest import kafka_committed, restore_the_app, snapshot_of_the_app, wait_for_log, wait_until_applied

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("redis_backend", ["single"], indirect=True)]


def test_the_worker_s_consumer_seeks_on_its_own_thread(settings):
    """faust's own seek calls aiokafka from the event loop, racing the consumer thread's fetch (a KeyError for a
    partition, and the worker ends); the worker's app replaces it (``seek_on_the_consumer_thread``)."""
    consumer = build_app(settings, WorkerMetrics(CollectorRegistry())).consumer
    assert consumer._seek.__qualname__ == "seek_on_the_consumer_thread.<locals>._seek"
    assert consumer.seek_to_committed.__qualname__.endswith("seek_to_saved")


_OUT_OF_MEMORY_ONCE = '''
import os
import stream_processors.batch as batch

_process = batch.BatchProcessor.process
_flag = os.environ["DRIFTLINE_TEST_MEMORY_FLAG"]


def process(self, messages):
    if not os.path.exists(_flag):  # the first batch of the first worker only
        open(_flag, "w").close()
        raise MemoryError("out of memory (raised by the test)")
    return _process(self, messages)


batch.BatchProcessor.process = process
'''


def _send_envelopes(settings, first: int = 0, n: int = 20) -> None:
    """Envelopes ``first`` to ``first + n - 1``, each of 50 events of model m, version 1."""
    producer = kafka.producer(settings.kafka)
    for i in range(first, first + n):
        events = [{"event_id": f"e{i}-{j}", "timestamp": 1_700_000_000 + i, "features": {"x": float(j)},
                   "prediction": 1} for j in range(50)]
        producer.produce(settings.inference_topic, key=b"m", value=encode_envelope("m", events, "1"))
    assert producer.flush(30) == 0


def _hook(tmp_path, hook_source: str, **extra: str) -> dict[str, str]:
    """The environment, beside the settings', of a worker that runs ``hook_source`` at its start (as its
    ``sitecustomize``)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(hook_source)
    return {"PYTHONPATH": str(hook), **extra}


def test_a_worker_out_of_memory_exits_to_be_restarted_and_its_restart_applies_everything(settings, worker_factory,
                                                                                         tmp_path):
    """faust logs an agent's MemoryError and leaves the worker on its partitions, idle: the worker exits with
    status 70 instead, and a restart resumes from the offsets in Redis."""
    _send_envelopes(settings)
    env = _hook(tmp_path, _OUT_OF_MEMORY_ONCE, DRIFTLINE_TEST_MEMORY_FLAG=str(tmp_path / "raised"))
    first = worker_factory(settings, "first", env).start()
    assert first.proc.wait(timeout=90) == AGENT_FAILED_EXIT, first.log()[-3000:]
    assert (tmp_path / "raised").exists() and "MemoryError" in first.log()
    second = worker_factory(settings, "second", env).start()
    wait_until_applied(settings, second, timeout=90)
    state = RedisStateStore(settings.redis, settings.app_id).load([("m", "1")])[("m", "1")]
    assert state["events"] == 1000


_STOP_THE_FLOW_AT_THE_FIRST_FETCH = '''
import asyncio
import os
from faust.transport.consumer import Consumer

_wait_next_records = Consumer._wait_next_records
_flag = os.environ["DRIFTLINE_TEST_DROP_FLAG"]
_topic = os.environ["DRIFTLINE_INFERENCE_TOPIC"]


async def _stopping(self, timeout):
    records, active = await _wait_next_records(self, timeout)
    if records and any(tp.topic == _topic for tp in records) and not os.path.exists(_flag):
        open(_flag, "w").close()
        # the flow stops as a rebalance stops it, just as the fetch returns: faust's getmany drops the records
        # and seeks back to the committed offsets itself
        self.stop_flow()
        asyncio.get_running_loop().call_later(0.5, self.resume_flow)
    return records, active


Consumer._wait_next_records = _stopping
'''


def test_records_faust_drops_and_seeks_back_for_are_applied_on_a_partition_nothing_was_saved_for(
        settings, worker_factory, tmp_path):
    """faust drops records a fetch returned while a rebalance had stopped the flow, and seeks every partition back
    to its committed offset. A partition nothing was applied or committed for must go back to its earliest
    offset: left where the fetch got to, its first records would never be applied (a takeover mid-stream lost
    a model's first 2000 events this way)."""
    _send_envelopes(settings)
    worker = worker_factory(settings, "worker", _hook(tmp_path, _STOP_THE_FLOW_AT_THE_FIRST_FETCH,
                                                      DRIFTLINE_TEST_DROP_FLAG=str(tmp_path / "dropped"))).start()
    wait_until_applied(settings, worker, timeout=90)
    assert (tmp_path / "dropped").exists(), worker.log()[-3000:]
    state = RedisStateStore(settings.redis, settings.app_id).load([("m", "1")])[("m", "1")]
    assert state["events"] == 1000


_SLOW_OFFSETS_AT_A_SEEK = '''
import os
import threading
import time

from stream_processors.state.redis_store import RedisStateStore

_offsets = RedisStateStore.offsets


def _slow(self, partitions):
    if not threading.current_thread().name.startswith("driftline-batch"):
        open(os.environ["DRIFTLINE_TEST_SLOW_FLAG"], "w").close()
        time.sleep(3.0)  # the offsets read for the seek after an assignment, not a batch's
    return _offsets(self, partitions)


RedisStateStore.offsets = _slow
'''


def test_a_worker_that_owned_nothing_applies_nothing_before_its_seek(settings, worker_factory, tmp_path):
    """A worker that owns no partition (more workers than partitions) is left with faust's flow running through
    a rebalance. Given partitions, it would take in records from Kafka's committed offsets before its seek to
    the offsets in Redis; where Kafka is ahead (Redis lost its last writes), it would apply those first and then
    skip the messages the seek goes back for. Its seek is made slow here, so that the records come meanwhile."""
    one = settings.replace(inference_topic=settings.app_id + "-one.inference",
                           label_topic=settings.app_id + "-one.labels", topic_partitions=1)
    ensure_topics(one.kafka, [one.inference_topic, one.label_topic], 1)
    a = worker_factory(one, "a").start()
    wait_for_log("Worker ready", a)
    slowed = tmp_path / "slowed"
    b = worker_factory(one, "b", _hook(tmp_path, _SLOW_OFFSETS_AT_A_SEEK, DRIFTLINE_TEST_SLOW_FLAG=str(slowed))).start()
    wait_for_log("Resuming streams with empty assignment", b)  # a keeps the one partition; b owns nothing
    _send_envelopes(one, 0, 20)
    wait_until_applied(one, a)
    snapshot = snapshot_of_the_app(one)
    _send_envelopes(one, 20, 20)
    wait_until_applied(one, a)
    kafka_committed(one, 40)  # Kafka has what a applied: the 40 messages
    a.proc.send_signal(signal.SIGSTOP)
    restore_the_app(one, snapshot)  # Redis lost the last 20 messages' writes
    _send_envelopes(one, 40, 20)
    assert a.kill(signal.SIGKILL) == -signal.SIGKILL  # b takes the partition over: Kafka says 40, Redis 20
    wait_until_applied(one, b, timeout=90)
    assert slowed.exists(), b.log()[-3000:]  # the hook ran: b's seek was slow
    state = RedisStateStore(one.redis, one.app_id).load([("m", "1")])[("m", "1")]
    assert state["events"] == 60 * 50  # the 20 messages Redis lost were applied again, and the 20 after them
    assert "Kafka's committed offset 40 is ahead of the 20 saved in Redis" in b.log()
