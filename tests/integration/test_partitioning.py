"""A model's partition, computed by producers.partitioning, is the one the SDK's producer puts its events on."""

import uuid

import pytest

from producers import kafka
from producers.partitioning import partition_for
from producers.sdk import envelope_producer_config
from producers.topics import ensure_topics

pytestmark = pytest.mark.integration

PARTITIONS = 12


def test_keyed_messages_land_on_the_computed_partition(base_settings):
    topic = f"it-{uuid.uuid4().hex[:10]}.partitioning"
    ensure_topics(base_settings.kafka, [topic], PARTITIONS)
    landed: dict[str, int] = {}

    def delivered(err, msg):
        assert err is None, err
        landed[msg.key().decode()] = msg.partition()

    producer = kafka.producer(base_settings.kafka, envelope_producer_config(1_000_000))
    models = [f"model-{i}" for i in range(200)] + ["a:b", "credit", "fraud-v2", "é"]
    for model in models:
        producer.produce(topic, key=model.encode(), value=b"{}", on_delivery=delivered)
    assert producer.flush(30) == 0
    assert len(landed) == len(models)
    assert len(set(landed.values())) == PARTITIONS  # the keys spread over every partition
    assert {m: partition_for(m, PARTITIONS) for m in models} == landed
