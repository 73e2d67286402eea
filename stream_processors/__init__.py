"""Driftline's workers and commands: the faust app, state, alerts, metrics, ingest and the ``driftline`` CLI.

The package's public surface is the ``driftline`` command (``stream_processors.cli``); its modules are
imported by name.
"""

__all__: list[str] = []
