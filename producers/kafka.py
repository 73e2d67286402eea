"""The one place where confluent-kafka clients are configured and constructed, and where faust gets its broker.

Every Kafka client of Driftline (the SDK's producers, replay, topic creation,
the profile registry, ``driftline alerts``, the retrain hook, ``driftline
ingest``) is built here from a :class:`KafkaConnection` plus the settings of
its use; the worker's faust app takes its broker settings from
:func:`faust_broker_settings`. A setting every client of a deployment needs
(security, timeouts, a client id) is a field of ``KafkaConnection``, turned
into client settings in :meth:`KafkaConnection.client_config` and
:func:`faust_broker_settings`, and nowhere else.

>>> KafkaConnection("k1:9092,k2:9092").client_config()
{'bootstrap.servers': 'k1:9092,k2:9092'}
>>> faust_broker_settings(KafkaConnection("k1:9092, k2:9092"))
{'broker': ['kafka://k1:9092', 'kafka://k2:9092']}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import confluent_kafka
from confluent_kafka.admin import AdminClient

__all__ = ["KAFKA_CLIENT_LOG", "KafkaConnection", "admin_client", "as_connection", "consumer", "faust_broker_settings",
           "producer"]

KAFKA_CLIENT_LOG = logging.getLogger("driftline.kafka")
"""Where librdkafka's own log lines go (instead of raw stderr); errors reach users as exceptions."""


@dataclass(frozen=True)
class KafkaConnection:
    """How to reach Kafka: what every client of a deployment shares, whatever it is used for."""

    bootstrap: str = "localhost:9092"
    """Comma-separated ``host:port`` of one or more brokers."""

    def client_config(self) -> dict[str, object]:
        """The librdkafka settings every confluent-kafka client gets."""
        return {"bootstrap.servers": self.bootstrap}

    def hosts(self) -> list[str]:
        return [host.strip() for host in self.bootstrap.split(",") if host.strip()]


def as_connection(kafka: str | KafkaConnection) -> KafkaConnection:
    """A connection from a bootstrap string (what the SDK's callers pass) or a connection already made."""
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(bootstrap=kafka)


def _config(kafka: str | KafkaConnection, overrides: Mapping[str, object] | None) -> dict[str, object]:
    # the use's settings come last: a caller may override any of them (the SDK documents its producer_config so)
    return {**as_connection(kafka).client_config(), **(overrides or {})}


def producer(kafka: str | KafkaConnection, overrides: Mapping[str, object] | None = None,
             logger: logging.Logger = KAFKA_CLIENT_LOG) -> confluent_kafka.Producer:
    return confluent_kafka.Producer(_config(kafka, overrides), logger=logger)


def consumer(kafka: str | KafkaConnection, overrides: Mapping[str, object] | None = None,
             logger: logging.Logger = KAFKA_CLIENT_LOG) -> confluent_kafka.Consumer:
    return confluent_kafka.Consumer(_config(kafka, overrides), logger=logger)


def admin_client(kafka: str | KafkaConnection, overrides: Mapping[str, object] | None = None,
                 logger: logging.Logger = KAFKA_CLIENT_LOG) -> AdminClient:
    return AdminClient(_config(kafka, overrides), logger=logger)


def faust_broker_settings(kafka: KafkaConnection) -> dict[str, object]:
    """Keyword arguments of ``faust.App`` that say how its aiokafka clients reach Kafka."""
    return {"broker": [f"kafka://{host}" for host in kafka.hosts()]}
