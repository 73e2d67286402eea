"""Consumer settings faust does not expose.

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

import aiokafka

__all__ = ["limit_fetch_wait"]

_ORIGINAL_INIT = aiokafka.AIOKafkaConsumer.__init__


def limit_fetch_wait(max_wait_ms: int) -> None:
    """Make every aiokafka consumer created from now on in this process long-poll at most ``max_wait_ms``."""
    if max_wait_ms < 1:
        raise ValueError(f"max_wait_ms must be at least 1, got {max_wait_ms}")

    @functools.wraps(_ORIGINAL_INIT)
    def init(self, *topics, **kwargs):
        kwargs["fetch_max_wait_ms"] = min(int(kwargs.get("fetch_max_wait_ms", 500)), max_wait_ms)
        _ORIGINAL_INIT(self, *topics, **kwargs)

    aiokafka.AIOKafkaConsumer.__init__ = init
