"""A small envelope whose event is nested hundreds of levels deep (orjson reads 1024 levels, writes 255) is
dead-lettered, and the worker goes on: its excerpt once raised out of the batch, the worker exited, and,
restarted, it read the same message again."""

import confluent_kafka
import pytest

from producers.events import encode_event

from .conftest import read_topic, wait_until_applied

pytestmark = pytest.mark.integration

DEEP = b"[" * 300 + b"]" * 300


def test_a_deeply_nested_event_is_dead_lettered_and_the_worker_stays_up(settings, worker_factory):
    worker = worker_factory(settings).start()
    producer = confluent_kafka.Producer({**settings.kafka.client_config(), "partitioner": "murmur2_random"})
    good = {"model": "m", "model_version": "1", "timestamp": 1764000000.0, "features": {"x": 1.0}, "prediction": 1}
    producer.produce(settings.inference_topic, key=b"m", value=encode_event({**good, "event_id": "a"}))
    producer.produce(settings.inference_topic, key=b"m",
                     value=b'{"schema_version":1,"model":"m","model_version":"1","events":[' + DEEP + b"]}")
    producer.produce(settings.inference_topic, key=b"m", value=encode_event({**good, "event_id": "b"}))
    producer.flush(10)
    wait_until_applied(settings, worker, timeout=60)
    assert [letter["reason_code"] for letter in read_topic(settings, settings.dead_letter_topic)] == \
        ["not_an_object"]
    assert worker.alive()
