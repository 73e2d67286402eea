"""The model-server SDK on real Kafka, and with Kafka down."""

import time

import pytest

from producers.sdk import InferenceLogger, LabelLogger

from .conftest import read_topic

pytestmark = pytest.mark.integration


def test_inference_logger_batches_events_into_envelopes(settings):
    with InferenceLogger(settings.kafka.bootstrap, model="fraud", model_version="2",
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
    with LabelLogger(settings.kafka.bootstrap, model="fraud", topic=settings.label_topic) as labels:
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


def test_a_bad_event_between_good_ones_does_not_stop_later_events(settings):
    import numpy as np

    log = InferenceLogger(settings.kafka.bootstrap, model="fraud", model_version="2",
                          topic=settings.inference_topic, batch_size=50, linger_s=0.1)
    refused = 0
    for i in range(300):
        if i == 40:
            log.log("unencodable", {"amount": object()}, prediction=0)  # fails in the sender thread
        elif i == 120:
            try:
                log.log("not-finite", {"amount": np.float64("nan")}, prediction=0)
            except ValueError:
                refused += 1
        else:
            log.log(f"e{i}", {"amount": np.float32(i), "n": np.int64(i)}, prediction=np.bool_(i % 2))
    stats = log.close(timeout=30)
    assert refused == 1
    assert (stats.logged, stats.delivered, stats.unencodable, stats.rejected, stats.failed) == (299, 298, 1, 1, 0)
    events = [e for m in read_topic(settings, settings.inference_topic) for e in m["events"]]
    assert len(events) == 298
    assert sorted(int(e["event_id"][1:]) for e in events) == [i for i in range(300) if i not in (40, 120)]
    assert all(e["features"] == {"amount": float(int(e["event_id"][1:])), "n": int(e["event_id"][1:])}
               and e["prediction"] is bool(int(e["event_id"][1:]) % 2) for e in events)
