"""The floor for single-event messages: a faust agent that only counts the messages it reads.

    python benchmarks/counting_agent.py --bootstrap B --topics T1,T2 --group G --expect N --result FILE

It reads like a Driftline worker does (same broker settings, the same cap on the consumer's long-poll,
one agent, concurrency 1) but takes batches of 1,000 messages and does nothing with them. Once it has
counted ``--expect`` messages it writes ``{"messages": N, "rate": R}`` to ``--result`` (faust takes over
stdout), R being messages per second from the end of its first batch to the end of its last, and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import faust

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream_processors.kafka_tuning import limit_fetch_wait  # noqa: E402

FETCH_MAX_WAIT_MS = 100  # DRIFTLINE_FETCH_MAX_WAIT_MS's default, as the worker applies it
MAX_MESSAGE_BYTES = 1_048_576


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated, as the worker subscribes")
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--result", required=True, help="file to write the JSON result to")
    args = parser.parse_args()

    limit_fetch_wait(FETCH_MAX_WAIT_MS)
    app = faust.App(
        args.group,
        broker=[f"kafka://{host.strip()}" for host in args.bootstrap.split(",")],
        store="memory://",
        datadir=os.path.join(tempfile.gettempdir(), "driftline-faust", "{conf.name}"),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        broker_commit_interval=1.0,
        topic_partitions=args.partitions,
        consumer_max_fetch_size=max(4 * 1024 * 1024, MAX_MESSAGE_BYTES * 2),
        stream_buffer_maxsize=4096,
        stream_wait_empty=False,
    )
    source = app.topic(*args.topics.split(","), key_type=bytes, value_type=bytes)
    seen = {"count": 0, "first": 0, "t_first": 0.0}

    @app.agent(source, concurrency=1)
    async def count(stream):
        async for events in stream.take_events(1000, within=0.05):
            seen["count"] += len(events)
            now = time.monotonic()
            if not seen["first"]:
                seen["first"], seen["t_first"] = seen["count"], now
            if seen["count"] >= args.expect:
                elapsed = now - seen["t_first"]
                rate = (seen["count"] - seen["first"]) / elapsed if elapsed > 0 else float("nan")
                with open(args.result, "w") as f:
                    json.dump({"messages": seen["count"], "rate": rate}, f)
                os._exit(0)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
