"""The root of Driftline's exceptions, and those the producer side raises.

They live here, not in ``stream_processors.errors`` (which documents the whole
tree), because ``producers`` imports nothing of ``stream_processors``.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DriftlineError", "KafkaAuthFailed", "KafkaUnreachable", "ReplayError", "ServiceUnavailable"]


class DriftlineError(Exception):
    """Base of every error Driftline reports as one line."""


class ConfigError(DriftlineError):
    """A flag, a DRIFTLINE_* variable, a file it names or a mapping file has a bad value."""


class ServiceUnavailable(DriftlineError):
    """Kafka or Redis cannot be reached, or failed while being used."""


class KafkaUnreachable(ServiceUnavailable):
    """No Kafka broker answered, or a topic could not be created."""


class KafkaAuthFailed(KafkaUnreachable):
    """Kafka answered but refused the connection: bad credentials, an untrusted or missing certificate, or a
    security protocol the listener does not speak. Retrying does not help."""


class ReplayError(DriftlineError):
    """A data file or column choice that cannot be replayed; the message says why."""
