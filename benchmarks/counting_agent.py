"""The floor for single-event messages: a faust agent that only counts the messages it reads.

    python benchmarks/counting_agent.py --group G --expect N --result FILE

It reads what a Driftline worker with the same DRIFTLINE_* settings reads (its inference and label topics)
the way the worker does (the worker's own faust options, ``faust_options``, the same cap on the consumer's long-poll, one agent,
concurrency 1), but takes batches of 1,000 messages and does nothing with them. Once it has counted
``--expect`` messages it writes ``{"messages": N, "rate": R}`` to ``--result`` (faust takes over stdout),
R being messages per second from the end of its first batch to the end of its last, and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import faust

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream_processors.config import load_settings  # noqa: E402
from stream_processors.faust_app.options import faust_options  # noqa: E402
from stream_processors.faust_app.tuning import limit_fetch_wait  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", required=True, help="consumer group (faust app id) of its own")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--result", required=True, help="file to write the JSON result to")
    args = parser.parse_args()
    settings = load_settings()

    limit_fetch_wait(settings.fetch_max_wait_ms)
    app = faust.App(args.group, **faust_options(settings))
    source = app.topic(settings.inference_topic, settings.label_topic, key_type=bytes, value_type=bytes)
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
