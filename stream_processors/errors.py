"""Errors Driftline raises to its users, each with a message that says what to do.

    DriftlineError
    ├── ConfigError          a flag or DRIFTLINE_* variable has a bad value
    ├── ServiceUnavailable   Kafka or Redis cannot be reached
    ├── UnknownModel         no state exists for the model asked about
    └── StateConflict        another worker advanced the same partition's offsets
"""


class DriftlineError(Exception):
    """Base of every error Driftline reports as one line."""


class ConfigError(DriftlineError):
    pass


class ServiceUnavailable(DriftlineError):
    pass


class UnknownModel(DriftlineError):
    pass


class StateConflict(DriftlineError):
    pass
