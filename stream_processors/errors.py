"""Every error Driftline raises to its users, in one tree; each message says what to do.

    DriftlineError                   (producers.errors: the root, importable by producers too)
    ├── ConfigError                  a flag, DRIFTLINE_* variable, a file it names or a mapping file has a bad
    │                                value (producers.errors)
    ├── ServiceUnavailable           Kafka or Redis cannot be reached, or failed while used (producers.errors)
    │   ├── KafkaUnreachable         no Kafka broker answered, or a topic could not be created (producers.errors)
    │   │   └── KafkaAuthFailed      Kafka refused the credentials, certificate or protocol (producers.errors)
    │   ├── RedisAuthFailed          Redis refused the user name or password
    │   └── DeliveryFailed           Kafka refused an envelope of ``driftline ingest`` (ingest.delivery)
    ├── ReplayError                  a data file or column choice cannot be replayed (producers.errors)
    ├── UnknownModel                 no state exists for the model (or version) asked about
    ├── StateRolledBack              Redis lost writes this worker had made (a failover, a restart without
    │                                persistence, a flush): the worker exits and restarts from what Redis holds
    └── Rejected                     an HTTP request ``driftline ingest`` refuses, with its reason (ingest.errors)

Errors of the libraries underneath (redis-py, confluent-kafka, aiokafka, OS
errors) are translated once, where Driftline calls the library, with
``raise ...(...) from exc``; callers above that boundary let Driftline's
errors through rather than wrapping them again. The command line prints any
``DriftlineError`` as one line on stderr and exits with status 1.

Outside the tree on purpose: ``detectors.StateVersionError`` (a ``ValueError``:
``detectors`` imports nothing of Driftline's; a saved state it refuses is
quarantined by the worker) and exceptions that never leave their module.

A commit that loses its compare-and-set to another worker is not an error: the
store's ``commit`` returns False and the worker redoes the batch.
"""

from producers.errors import (ConfigError, DriftlineError, KafkaAuthFailed, KafkaUnreachable, ReplayError,
                              ServiceUnavailable)

__all__ = ["ConfigError", "DriftlineError", "KafkaAuthFailed", "KafkaUnreachable", "RedisAuthFailed", "ReplayError",
           "ServiceUnavailable", "StateRolledBack", "UnknownModel"]


class RedisAuthFailed(ServiceUnavailable):
    """Redis refused the user name or password (retrying does not help)."""


class UnknownModel(DriftlineError):
    """No state exists for the model (or version) asked about."""


class StateRolledBack(DriftlineError):
    """A partition's offset saved in Redis is lower than one this worker committed there: Redis lost acknowledged
    writes (a replica promoted before it had them, a restart without persistence, a flush). The state in Redis is
    still consistent with its own offsets (each partition's state and offsets are written in one atomic step),
    but this worker's consumer is past them: going on would skip the messages whose writes were lost. The worker
    exits (status 70) and its restart reads again from the offsets Redis holds."""
