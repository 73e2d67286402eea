"""Create Driftline's topics when they do not exist yet."""

from __future__ import annotations

import confluent_kafka
from confluent_kafka.admin import NewTopic

from producers import kafka
from producers.errors import KafkaUnreachable
from producers.kafka import KafkaConnection

__all__ = ["ensure_topics"]


def ensure_topics(bootstrap: str | KafkaConnection, topics: list[str], partitions: int, timeout_s: float = 15.0,
                  config: dict[str, str] | None = None) -> list[str]:
    """Create the missing ones (with topic ``config``); returns the names created. Raises KafkaUnreachable (or
    KafkaAuthFailed)."""
    connection = kafka.as_connection(bootstrap)
    existing = set(kafka.check_connection(connection, timeout_s))  # a refused login fails here, in seconds
    admin = kafka.admin_client(connection, {"socket.connection.setup.timeout.ms": 5000})
    missing = [t for t in dict.fromkeys(topics) if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=-1, config=config or {})
                                   for t in missing],
                                  operation_timeout=timeout_s)
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout_s)
            created.append(name)
        except confluent_kafka.KafkaException as exc:
            if exc.args and exc.args[0].code() == confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaUnreachable(f"could not create topic {name!r}: {exc}") from exc
    return created
