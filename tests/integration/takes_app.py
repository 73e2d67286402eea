"""A faust app whose one agent reads a topic through the worker's ``takes`` and records each take.

    python tests/integration/takes_app.py --topic T --group G --expect N --out FILE
        [--max-messages M] [--max-bytes B] [--within S] [--work S] [--fail-at K]

It reads ``--topic`` with the worker's faust options (the DRIFTLINE_* settings in its environment), and for
each take appends a JSON line ``{"offsets": [[partition, offset], ...], "sizes": [...]}`` to ``--out``, then
sleeps ``--work`` seconds (an agent busy with the take). Once it has seen ``--expect`` messages it exits 0.
With ``--fail-at K`` the agent raises on its K-th take (1-based) instead, waits for three of faust's commit
intervals so that whatever faust would commit is committed, and exits 3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import faust

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from stream_processors.config import load_settings  # noqa: E402
from stream_processors.faust_app.options import faust_options  # noqa: E402
from stream_processors.faust_app.takes import takes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-messages", type=int, default=1000)
    parser.add_argument("--max-bytes", type=int, default=4 << 20)
    parser.add_argument("--within", type=float, default=0.05)
    parser.add_argument("--work", type=float, default=0.0)
    parser.add_argument("--fail-at", type=int, default=0)
    args = parser.parse_args()
    settings = load_settings()
    app = faust.App(args.group, **faust_options(settings))
    source = app.topic(args.topic, key_type=bytes, value_type=bytes)
    seen = {"messages": 0, "takes": 0}

    @app.agent(source, concurrency=1)
    async def record(stream):
        try:
            async for events in takes(stream, args.max_messages, args.max_bytes, args.within):
                seen["takes"] += 1
                if seen["takes"] == args.fail_at:
                    raise RuntimeError("the agent fails on this take")
                with open(args.out, "a") as f:
                    f.write(json.dumps({"offsets": [[e.message.partition, e.message.offset] for e in events],
                                        "sizes": [len(e.message.value or b"") for e in events]}) + "\n")
                seen["messages"] += len(events)
                if seen["messages"] >= args.expect:
                    os._exit(0)
                await asyncio.sleep(args.work)
        except RuntimeError:
            await asyncio.sleep(3 * app.conf.broker_commit_interval)
            os._exit(3)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
