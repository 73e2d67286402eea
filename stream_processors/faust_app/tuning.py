"""Consumer settings faust does not expose, and a refused login that faust would retry for ever.

faust-streaming creates its aiokafka consumer with ``fetch_max_wait_ms=1500``
fixed in code. aiokafka keeps one fetch in flight per broker, and a fetch
that only covers partitions without new data is held by the broker for that
long; meanwhile the busy partition cannot be fetched. One model's events all
share one partition, so a worker with one busy model stalled for about 1.2 s
every few batches (measured with benchmarks/throughput.py: 54k–106k events/s
from run to run before this change). A shorter long-poll only costs a few more
fetch requests per second on idle partitions.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import sys

import aiokafka
import aiokafka.client
from aiokafka.errors import AuthenticationFailedError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

__all__ = ["REFUSED_EXIT", "exit_on_refused_login", "limit_fetch_wait"]

_ORIGINAL_INIT = aiokafka.AIOKafkaConsumer.__init__
_ORIGINAL_CREATE_CONN = aiokafka.client.create_conn
REFUSED_EXIT = 1
"""A worker that Kafka refuses exits like any command with a bad setting: restarting it does not help."""
_REFUSED = (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError,
            ssl.SSLCertVerificationError)


def limit_fetch_wait(max_wait_ms: int) -> None:
    """Make every aiokafka consumer created from now on in this process long-poll at most ``max_wait_ms``."""
    if max_wait_ms < 1:
        raise ValueError(f"max_wait_ms must be at least 1, got {max_wait_ms}")

    @functools.wraps(_ORIGINAL_INIT)
    def init(self, *topics, **kwargs):
        kwargs["fetch_max_wait_ms"] = min(int(kwargs.get("fetch_max_wait_ms", 500)), max_wait_ms)
        _ORIGINAL_INIT(self, *topics, **kwargs)

    aiokafka.AIOKafkaConsumer.__init__ = init


def exit_on_refused_login(where: str, secrets: list[str]) -> None:
    """Make a refused login of any aiokafka client of this process end it: one line on stderr, exit status 1.

    aiokafka logs a refused SASL login or an untrusted broker certificate and
    tries again for ever (faust's worker then hangs at start, or sits on its
    partitions without reading them); ``driftline worker`` checks its settings
    with librdkafka before faust starts, so this only fires when the broker
    changes its mind later (a rotated password, a replaced certificate).
    ``where`` describes the connection (never the password).
    """

    @functools.wraps(_ORIGINAL_CREATE_CONN)
    async def create_conn(*args, **kwargs):
        try:
            return await _ORIGINAL_CREATE_CONN(*args, **kwargs)
        except _REFUSED as exc:
            detail = " ".join(str(exc).split())
            for secret in secrets:
                detail = detail.replace(secret, "***")
            stream = sys.__stderr__ or sys.stderr  # faust replaces sys.stderr with a logger
            stream.write(f"driftline: error: Kafka refused the worker at {where} ({type(exc).__name__}: "
                             f"{detail}); check the DRIFTLINE_KAFKA_SASL_* and DRIFTLINE_KAFKA_SSL_* settings\n")
            stream.flush()
            logging.shutdown()
            os._exit(REFUSED_EXIT)

    aiokafka.client.create_conn = create_conn
