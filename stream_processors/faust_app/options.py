"""The faust app options of a Driftline worker, in one place.

``benchmarks/counting_agent.py`` measures the floor for single-event messages with a faust agent that only
counts: it builds its app from these same options, so the floor is the worker's own consumer, not a copy
that could drift from it.
"""

from __future__ import annotations

import os
import tempfile

from producers.kafka import faust_broker_settings
from stream_processors.config import Settings

__all__ = ["faust_options"]


def faust_options(settings: Settings) -> dict:
    """Keyword arguments of ``faust.App`` (after its id) for a consumer of Driftline's topics."""
    os.makedirs(os.path.join(tempfile.gettempdir(), "driftline-faust"), exist_ok=True)
    return dict(
        **faust_broker_settings(settings.kafka),
        store="memory://",
        # faust makes a data directory for local tables even when there are none (Redis holds the state):
        # under the temp dir, not wherever the worker was started
        datadir=os.path.join(tempfile.gettempdir(), "driftline-faust", "{conf.name}"),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        broker_commit_interval=1.0,
        topic_partitions=settings.topic_partitions,
        producer_max_request_size=settings.max_message_bytes + 262_144,
        consumer_max_fetch_size=max(4 * 1024 * 1024, settings.max_message_bytes * 2),
        # Messages faust holds ahead of the take being filled (README, "Limits"): a count, whatever their size.
        # Takes are bounded by bytes as well (takes.py), so a take of 10,000 single-event messages does not mean
        # 10,000 large ones; faust's buffer is not, so it stays at 1000 (or batch_max_messages, when lower).
        # 4096 ahead took a worker to 839 MiB behind a backlog of 5,000 envelopes of 500 events (498 MiB with
        # 1000); single-event messages went no faster with it
        stream_buffer_maxsize=min(settings.batch_max_messages, 1000),
        # A rebalance does not wait for a batch in flight (it may be waiting for Redis): the compare-and-set
        # on the offsets keeps a late commit from overwriting the new owner's state.
        stream_wait_empty=False,
    )
