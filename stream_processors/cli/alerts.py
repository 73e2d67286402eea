"""``driftline alerts``: read alerts from the control topic and print them, one line (or JSON object) each.

Anyone who can write to the control topic can put anything there. A record
that is not a JSON object is skipped, and the count of those said in one line
on stderr; in an object, a field of the wrong type, a number that is not
finite or a time out of range is shown as "?", and names go through
``display.printable`` so that none can move a terminal's cursor or fake
a line.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import confluent_kafka
import orjson

from producers import kafka
from stream_processors.cli.flags import ENV_HELP, connection_flags, dump
from stream_processors.errors import KafkaUnreachable, ServiceUnavailable
from stream_processors.config import Settings
from stream_processors.display import printable
from stream_processors.signing import verify

__all__ = ["add_parser", "format_alert", "iter_alerts", "run"]


def iter_alerts(settings: Settings, from_beginning: bool, follow: bool, timeout_s: float | None,
                model: str | None = None, on_idle: Callable[[], bool] | None = None) -> Iterator[dict]:
    """Alerts from the control topic, in arrival order.

    Without ``follow``: everything already on the topic, then stop. With
    ``follow``: new alerts (all of them with ``from_beginning``) until
    ``timeout_s`` passes, Ctrl-C, or ``on_idle`` returns True. Records that are not JSON objects are
    skipped; when there were any, their count is one line on stderr as the iteration ends.
    """
    kafka.check_connection(settings.kafka, timeout_s=10)  # a refused login is one line, in seconds
    consumer = kafka.consumer(settings.kafka, {
        "group.id": f"driftline-alerts-{uuid.uuid4().hex[:12]}",
        "auto.offset.reset": "earliest" if (from_beginning or not follow) else "latest",
        "enable.auto.commit": False,
        "socket.connection.setup.timeout.ms": 5000,
    })
    try:
        metadata = consumer.list_topics(settings.control_topic, timeout=5)
    except confluent_kafka.KafkaException as exc:
        consumer.close()
        raise KafkaUnreachable(f"Kafka is unreachable at {settings.kafka.describe()}; "
                               "start it with 'make stack-up' or set DRIFTLINE_KAFKA_BOOTSTRAP") from exc
    topic = metadata.topics.get(settings.control_topic)
    if topic is None or topic.error is not None:
        consumer.close()
        if follow:
            raise ServiceUnavailable(f"control topic {settings.control_topic!r} does not exist yet: "
                                     "start a worker first ('driftline worker')")
        return
    partitions = list(topic.partitions)
    ends = {}
    for p in partitions:
        _low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(settings.control_topic, p),
                                                    timeout=10)
        ends[p] = high
    if not follow and _at_end({}, ends):
        consumer.close()
        return
    consumer.subscribe([settings.control_topic])
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    positions: dict[int, int] = {}
    skipped = 0
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            msg = consumer.poll(0.5)
            if msg is None:
                if not follow and _at_end(positions, ends):
                    return
                if on_idle is not None and on_idle():
                    return
                continue
            if msg.error():
                continue
            positions[msg.partition()] = msg.offset() + 1
            try:
                alert = orjson.loads(msg.value())
            except orjson.JSONDecodeError:
                alert = None
            if not isinstance(alert, dict):
                skipped += 1
            elif model is None or alert.get("model") == model:
                yield alert
            if not follow and _at_end(positions, ends):
                return
    finally:
        consumer.close()
        if skipped:
            print(f"driftline: skipped {skipped} malformed record(s) on {settings.control_topic} (not a JSON "
                  "object)", file=sys.stderr, flush=True)


def _at_end(positions: dict[int, int], ends: dict[int, int]) -> bool:
    return all(positions.get(p, 0) >= end for p, end in ends.items() if end > 0)


VERIFICATION_COLUMN = {"verified": "verified", "unsigned": "UNSIGNED", "bad_signature": "BAD-SIG",
                       "other_key": "OTHER-KEY", "no_key": "signed?"}
"""How the signature column reads: ``signed?`` is a signed alert read without a key to check it."""


def format_alert(alert: dict, verification: str | None = None) -> str:
    """One line per message: a firing with its severity, a resolution as RESOLVED with where its episode began;
    with ``verification`` (a ``signing.verify`` verdict), a column saying whether its signature verified.
    Whatever the message holds, the line is one line of printable text."""
    when = _when(alert.get("created_at", 0))
    if verification is not None:
        when = f"{when} {VERIFICATION_COLUMN.get(verification, verification):9}"
    evidence = alert.get("evidence")
    evidence = evidence if isinstance(evidence, dict) else {}

    def text(record: dict, key: str, default: object = None) -> str:
        return _text(record.get(key, default))

    feature = _text(alert.get("feature") or "-")
    if alert.get("status") == "resolved":
        quiet = (f"{_number(alert.get('statistic', 0), '.0f')} {text(evidence, 'quiet_unit', 'events')} "
                 "without a firing or its condition")
        return (f"{when} RESOLVED {text(alert, 'type')}: model {text(alert, 'model')} "
                f"v{text(alert, 'model_version')} feature {feature} by {text(alert, 'detector')}: "
                f"episode {text(alert, 'episode_id')} (began at event {text(alert, 'started_at_event')}) ended at "
                f"event {text(evidence, 'last_event_id')}, {quiet}")
    severity = alert.get("severity", "?")
    return (f"{when} {_text(severity.upper() if isinstance(severity, str) else severity):8} "
            f"{text(alert, 'type')}: model {text(alert, 'model')} v{text(alert, 'model_version')} "
            f"feature {feature} by {text(alert, 'detector')} (statistic {_number(alert.get('statistic'), '.4g')}, "
            f"threshold {_number(alert.get('threshold', 0), '.4g')}) at event {text(evidence, 'last_event_id')} "
            f"after {text(evidence, 'events_seen')} events")


def _text(value: object) -> str:
    """A field as text: strings with their control characters escaped, numbers and null as Python prints them,
    anything else (a list, an object) as "?"."""
    if isinstance(value, str):
        return printable(value)
    return str(value) if value is None or isinstance(value, (int, float)) else "?"


def _number(value: object, spec: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "?"
    try:
        number = float(value)
    except OverflowError:
        return "?"
    return format(number, spec) if math.isfinite(number) else "?"


def _when(epoch: object) -> str:
    try:
        return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):  # not a number, NaN, or beyond any calendar
        return "?"


def add_parser(sub) -> None:
    p = sub.add_parser("alerts", help="print alerts from the control topic",
                       description="Print drift and other alerts. Without --follow: the alerts already "
                                   "published, then exit. With --follow: new alerts as they arrive (add "
                                   "--from-beginning for the old ones too) until Ctrl-C or --timeout. Each "
                                   "alert says whether its signature verified with DRIFTLINE_SIGNING_KEY "
                                   "(verified, UNSIGNED, BAD-SIG, OTHER-KEY; signed? without a key); --json "
                                   "adds it as the field 'verification'.",
                       epilog=ENV_HELP)
    p.add_argument("--model", help="only this model's alerts")
    p.add_argument("--from-beginning", action="store_true", help="with --follow, start from the oldest alert")
    p.add_argument("--follow", action="store_true", help="keep waiting for new alerts")
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="one alert JSON object per line")
    p.add_argument("--control-topic", metavar="T")
    connection_flags(p, redis_too=False)


def run(args: argparse.Namespace, settings: Settings) -> int:
    key = settings.signing_key_bytes
    for alert in iter_alerts(settings, args.from_beginning, args.follow, args.timeout, args.model):
        verification = verify(alert, key)
        if args.json:
            dump({**alert, "verification": verification})
        else:
            print(format_alert(alert, verification), flush=True)
    return 0
