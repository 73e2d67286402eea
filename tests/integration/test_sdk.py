"""The model-server SDK on real Kafka, and with Kafka down."""

import time

import pytest

from producers.sdk import InferenceLogger, LabelLogger

from .conftest import read_topic

pytestmark = pytest.mark.integration


def test_inference_logger_batches_events_into_envelopes(settings):
    with InferenceLogger(settings.kafka_bootstrap, model="fraud", model_version="2",
                         topic=settings.inference_topic, batch_size=100, linger_s=0.2) as log:
        for i in range(250):
            log.log(f"e{i}", {"amount": float(i), "country": "FR"}, prediction=i % 2, score=0.5)
    stats = log.stats()
    assert (stats.logged, stats.delivered, stats.failed, stats.dropped, stats.buffered) == (250, 250, 0, 0, 0)
    messages = read_topic(settings, settings.inference_topic)
    assert sorted(len(m["events"]) for m in messages) == [50, 100, 100]
    assert {(m["model"], m["model_version"], m["kind"]) for m in messages} == {("fraud", "2", "inference")}
    ids = [e["event_id"] for m in messages for e in m["events"]]
    assert sorted(ids, key=lambda s: int(s[1:])) == [f"e{i}" for i in range(250)]


def test_label_logger(settings):
    with LabelLogger(settings.kafka_bootstrap, model="fraud", topic=settings.label_topic) as labels:
        labels.log("e1", 1)
        labels.log("e2", 0)
    [message] = read_topic(settings, settings.label_topic)
    assert message["kind"] == "label" and [e["label"] for e in message["events"]] == [1, 0]


def test_kafka_down_never_blocks_and_bounds_the_buffer():
    log = InferenceLogger("127.0.0.1:1", model="fraud", model_version="2", batch_size=100, max_buffered=1000,
                          linger_s=0.05, producer_config={"message.timeout.ms": 1500})
    started = time.monotonic()
    for i in range(50_000):
        log.log(f"e{i}", {"amount": 1.0}, prediction=0)
    elapsed = time.monotonic() - started
    assert elapsed < 10, "log() must not wait for Kafka"
    time.sleep(2.5)
    stats = log.close(timeout=3)
    assert stats.logged == 50_000
    assert stats.delivered == 0
    assert stats.dropped + stats.failed + stats.buffered == 50_000 - stats.delivered
    assert stats.failed > 0 and stats.last_error
