"""``driftline``: the command line, one module per command. Errors are one line on stderr and exit code 1.

Each command module has ``add_parser(subparsers)`` and ``run(args, settings) -> int``. The settings are read
once here and passed down: every flag whose ``dest`` is a setting key (``--kafka-bootstrap`` is
``kafka_bootstrap``; see ``stream_processors.config``) overrides that setting, the command reads every other
flag itself (tests/stream_processors/cli/test_cli.py holds both).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from stream_processors.display import printable
from stream_processors.cli.flags import ENV_HELP
from stream_processors.errors import DriftlineError
from stream_processors.config import Settings, load_settings, setting_keys

__all__ = ["COMMANDS", "build_parser", "main", "settings_from"]

COMMANDS = ("worker", "profile", "replay", "alerts", "triggers", "status", "report", "ingest", "demo")
"""In the order ``driftline --help`` lists them; each is the module ``stream_processors.cli.<command>``."""


def _command(name: str):
    return importlib.import_module(f"stream_processors.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Driftline watches ML models in production: inference events in from Kafka, statistics "
                    "and drift alerts out. Start the local services with 'make stack-up', then run "
                    "'driftline worker' and 'driftline replay', and read results with 'driftline status' "
                    "and 'driftline alerts'. 'driftline demo' does all of it.",
        epilog=ENV_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        _command(name).add_parser(subparsers)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings: the flags given that name a setting, over the environment, over the defaults."""
    keys = set(setting_keys())
    return load_settings({name: value for name, value in vars(args).items() if name in keys})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # librdkafka reports every failed reconnect; what matters reaches the user as one error line.
    logging.getLogger("driftline.kafka").setLevel(logging.CRITICAL)
    try:
        return _command(args.command).run(args, settings_from(args))
    except DriftlineError as exc:
        print(f"driftline: error: {printable(exc)}", file=sys.stderr)  # names in it may hold control characters
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `driftline status ... | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
