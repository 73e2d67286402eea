"""producers/kafka.py: every client gets the connection's settings, then those of its use."""

from types import SimpleNamespace

import confluent_kafka
import pytest

from producers import kafka
from producers.kafka import KafkaConnection


@pytest.fixture
def built(monkeypatch):
    """The settings each confluent-kafka constructor was called with (no broker is contacted)."""
    calls = []

    def recorder(kind):
        def make(config, logger=None):
            calls.append((kind, dict(config), logger))
            return SimpleNamespace(kind=kind, poll=lambda *_: 0, flush=lambda *_: 0, produce=lambda *_, **__: None)
        return make

    monkeypatch.setattr(kafka.confluent_kafka, "Producer", recorder("producer"))
    monkeypatch.setattr(kafka.confluent_kafka, "Consumer", recorder("consumer"))
    monkeypatch.setattr(kafka, "AdminClient", recorder("admin"))
    return calls


def test_every_client_kind_gets_the_connection_then_its_overrides(built):
    connection = KafkaConnection("k1:9092,k2:9092")
    assert kafka.producer(connection, {"linger.ms": 5}).kind == "producer"
    assert kafka.consumer(connection, {"group.id": "g"}).kind == "consumer"
    assert kafka.admin_client("k3:9092").kind == "admin"
    assert [(kind, config) for kind, config, _ in built] == [
        ("producer", {"bootstrap.servers": "k1:9092,k2:9092", "linger.ms": 5}),
        ("consumer", {"bootstrap.servers": "k1:9092,k2:9092", "group.id": "g"}),
        ("admin", {"bootstrap.servers": "k3:9092"})]
    assert all(logger is kafka.KAFKA_CLIENT_LOG for *_, logger in built)


def test_the_sdk_keeps_its_extra_librdkafka_settings(built):
    from producers import InferenceLogger

    logger = InferenceLogger("h:1", model="m", model_version="1", producer_config={"linger.ms": 50, "acks": "all"})
    logger.close(timeout=1)
    (kind, config, _), = built
    assert kind == "producer" and config["bootstrap.servers"] == "h:1"
    assert config["linger.ms"] == 50 and config["acks"] == "all" and config["enable.idempotence"] is True


def test_faust_gets_its_broker_from_the_same_connection():
    assert kafka.faust_broker_settings(KafkaConnection(" a:1 , b:2 ")) == {"broker": ["kafka://a:1", "kafka://b:2"]}


def test_a_real_client_is_built_without_a_broker():
    producer = kafka.producer(KafkaConnection("127.0.0.1:1"), {"message.timeout.ms": 100})
    assert isinstance(producer, confluent_kafka.Producer)
    assert producer.flush(0) == 0
