"""The secure broker of deploy/stack.sh, with raw clients: SASL_SSL and mutual TLS work, and every
wrong way in (a wrong password, plaintext, an untrusted CA, no client certificate) is refused fast."""

from __future__ import annotations

import asyncio
import time
import uuid

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from ..secure_services import untrusted_ca

pytestmark = pytest.mark.integration

FAST = 30.0  # seconds within which a refused client must know it


def _create_topic(config: dict, name: str) -> None:
    admin = AdminClient(config)  # held until the result is in: a collected client cancels its requests
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)


def _round_trip(config: dict, n: int = 20) -> list[bytes]:
    """Create a topic, produce ``n`` messages and read them back with the same settings."""
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    _create_topic(config, topic)
    producer = confluent_kafka.Producer(config)
    for i in range(n):
        producer.produce(topic, value=f"m{i}".encode())
    assert producer.flush(30) == 0
    consumer = confluent_kafka.Consumer({**config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg.value())
    finally:
        consumer.close()
    return got


def _first_error(config: dict) -> tuple[confluent_kafka.KafkaError | None, float]:
    """The first error a producer reports on connecting, and how long it took (None after FAST seconds)."""
    errors: list[confluent_kafka.KafkaError] = []
    started = time.monotonic()
    producer = confluent_kafka.Producer({**config, "error_cb": errors.append, "log_level": 0})
    while not errors and time.monotonic() - started < FAST:
        producer.poll(0.2)
    return (errors[0] if errors else None), time.monotonic() - started


def test_settings_are_printed_without_the_password(secure_kafka):
    assert set(secure_kafka.env) == {"DRIFTLINE_KAFKA_BOOTSTRAP", "DRIFTLINE_KAFKA_SECURITY_PROTOCOL",
                                     "DRIFTLINE_KAFKA_SASL_MECHANISM", "DRIFTLINE_KAFKA_SASL_USERNAME",
                                     "DRIFTLINE_KAFKA_SASL_PASSWORD_FILE", "DRIFTLINE_KAFKA_SSL_CAFILE"}
    assert set(secure_kafka.mtls_env) == {"DRIFTLINE_KAFKA_BOOTSTRAP", "DRIFTLINE_KAFKA_SECURITY_PROTOCOL",
                                          "DRIFTLINE_KAFKA_SSL_CAFILE", "DRIFTLINE_KAFKA_SSL_CERTFILE",
                                          "DRIFTLINE_KAFKA_SSL_KEYFILE"}
    assert (secure_kafka.protocol, secure_kafka.mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    printed = "\n".join(secure_kafka.stack.outputs)
    assert "DRIFTLINE_KAFKA_SASL_PASSWORD_FILE=" in printed
    logs = [p.read_text() for p in (secure_kafka.stack.directory / "kafka-secure").glob("*.log")]
    for secret in secure_kafka.secrets():
        assert len(secret) >= 32
        assert secret not in printed
        assert all(secret not in log for log in logs)
    assert secure_kafka.password_file.stat().st_mode & 0o077 == 0  # only the owner reads it


def test_sasl_ssl_produce_and_consume(secure_kafka):
    got = _round_trip(secure_kafka.confluent_config())
    assert sorted(got) == sorted(f"m{i}".encode() for i in range(20))


def test_mutual_tls_produce_and_consume(secure_kafka):
    got = _round_trip(secure_kafka.mtls_confluent_config())
    assert sorted(got) == sorted(f"m{i}".encode() for i in range(20))


def test_mutual_tls_listener_refuses_a_client_without_certificate(secure_kafka):
    config = secure_kafka.mtls_confluent_config()
    del config["ssl.certificate.location"], config["ssl.key.location"]
    error, took = _first_error(config)
    assert error is not None and took < FAST
    assert error.code() in (confluent_kafka.KafkaError._SSL, confluent_kafka.KafkaError._TRANSPORT,
                            confluent_kafka.KafkaError._ALL_BROKERS_DOWN), error


def test_wrong_password_fails_fast_with_an_authentication_error(secure_kafka):
    error, took = _first_error(secure_kafka.confluent_config(**{"sasl.password": "not-the-password"}))
    assert error is not None, f"no error within {FAST}s"
    assert error.code() == confluent_kafka.KafkaError._AUTHENTICATION, error
    assert "invalid credentials" in error.str()
    assert took < FAST


def test_plaintext_client_is_refused_by_the_secure_listener(secure_kafka):
    config = {"bootstrap.servers": secure_kafka.bootstrap, "security.protocol": "PLAINTEXT"}
    error, took = _first_error(config)
    assert error is not None and took < FAST
    with pytest.raises(confluent_kafka.KafkaException):
        AdminClient(config).list_topics(timeout=2)


def test_untrusted_ca_is_refused(secure_kafka, tmp_path):
    error, took = _first_error(secure_kafka.confluent_config(**{"ssl.ca.location": str(untrusted_ca(tmp_path))}))
    assert error is not None and took < FAST
    assert error.code() == confluent_kafka.KafkaError._SSL, error
    assert "certificate verify failed" in error.str()


def test_aiokafka_over_sasl_ssl(secure_kafka):
    aiokafka = pytest.importorskip("aiokafka")
    topic = f"secure-aio-{uuid.uuid4().hex[:8]}"
    _create_topic(secure_kafka.confluent_config(), topic)
    options = dict(bootstrap_servers=secure_kafka.bootstrap, security_protocol="SASL_SSL",
                   sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=secure_kafka.username,
                   sasl_plain_password=secure_kafka.password, ssl_context=secure_kafka.ssl_context())

    async def round_trip() -> list[bytes]:
        producer = aiokafka.AIOKafkaProducer(**options)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, f"a{i}".encode())
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(topic, group_id=f"g-{topic}", auto_offset_reset="earliest", **options)
        await consumer.start()
        try:
            got = []
            while len(got) < 10:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                got += [m.value for msgs in batch.values() for m in msgs]
            return got
        finally:
            await consumer.stop()

    assert sorted(asyncio.run(round_trip())) == sorted(f"a{i}".encode() for i in range(10))


def test_aiokafka_wrong_password_and_untrusted_ca_fail_fast(secure_kafka, tmp_path, caplog):
    aiokafka = pytest.importorskip("aiokafka")
    import ssl

    from aiokafka.errors import KafkaConnectionError

    async def start(**options) -> float:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=secure_kafka.bootstrap, security_protocol="SASL_SSL",
                                             sasl_mechanism="SCRAM-SHA-512",
                                             sasl_plain_username=secure_kafka.username, **options)
        started = time.monotonic()
        try:
            with pytest.raises(KafkaConnectionError):  # aiokafka logs the cause, then gives up bootstrapping
                await asyncio.wait_for(producer.start(), FAST)
        finally:
            await producer.stop()
        return time.monotonic() - started

    caplog.set_level("ERROR", logger="aiokafka")
    assert asyncio.run(start(sasl_plain_password="not-the-password", ssl_context=secure_kafka.ssl_context())) < FAST
    assert "SaslAuthenticationFailed" in caplog.text
    caplog.clear()
    other = ssl.create_default_context(cafile=str(untrusted_ca(tmp_path)))
    assert asyncio.run(start(sasl_plain_password=secure_kafka.password, ssl_context=other)) < FAST
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
