"""Driftline's workers: the faust app, the Redis state store, alerts and the CLI."""
