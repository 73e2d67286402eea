"""The worker's faust app, built as `driftline worker` builds it, on the real Kafka and Redis."""

import pytest
from prometheus_client import CollectorRegistry

from stream_processors.faust_app.app import build_app
from stream_processors.metrics import WorkerMetrics

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("redis_backend", ["single"], indirect=True)]


def test_the_worker_s_consumer_seeks_on_its_own_thread(settings):
    """faust's own seek calls aiokafka from the event loop, racing the consumer thread's fetch (a KeyError for a
    partition, and the worker ends); the worker's app replaces it (``seek_on_the_consumer_thread``)."""
    consumer = build_app(settings, WorkerMetrics(CollectorRegistry())).consumer
    assert consumer._seek.__qualname__ == "seek_on_the_consumer_thread.<locals>._seek"
    assert consumer.seek_to_committed.__qualname__.endswith("seek_to_saved")
