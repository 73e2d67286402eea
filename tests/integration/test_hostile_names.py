"""The tools people look at alerts with, against a control topic anyone can write to and names anyone can send
(issue 1015): ``driftline alerts``, ``report`` and ``status`` on the real Kafka and Redis print what they can,
count what they skipped in one line on stderr, and show names as escaped text."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import confluent_kafka
import orjson
import pytest

from producers.partitioning import partition_for
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.state import RedisStateStore

from .conftest import run_cli

pytestmark = pytest.mark.integration

ANSI = "\x1b[1A\x1b[2K\rDECISION: CONTINUE (spoofed)\n  \x1b[8m"
SHOWN = "\\x1b[1A\\x1b[2K\\rDECISION: CONTINUE (spoofed)\\n  \\x1b[8m"
MODEL = "m2"


def _seed_state(settings) -> None:
    """A model whose feature name and category rewrite the terminal lines above them."""
    store = RedisStateStore(settings.redis, settings.app_id, settings.topic_partitions)
    store.prepare()
    events = [{"event_id": f"e{i}", "timestamp": 1.0 + i, "prediction": 1,
               "features": {ANSI: "bad\x01" + "ab"[i % 2], "x": float(i % 3)}} for i in range(50)]
    message = orjson.dumps({"schema_version": 1, "kind": "inference", "model": MODEL, "model_version": "1",
                            "events": events})
    batch = BatchProcessor(settings, store).process([IncomingMessage(
        settings.inference_topic, partition_for(MODEL, settings.topic_partitions), 0, message, MODEL.encode())])
    assert batch.events and store.commit(batch)


def _produce(settings, values: list[bytes]) -> None:
    producer = confluent_kafka.Producer(settings.kafka.client_config())
    for value in values:
        producer.produce(settings.control_topic, value, key=MODEL.encode())
    assert producer.flush(10) == 0


GOOD = {"id": "a1", "model": MODEL, "model_version": "1", "type": "drift", "status": "firing", "severity": "warning",
        "detector": "chi_square", "feature": ANSI, "statistic": 9.5, "threshold": 3.0, "created_at": 1.7e9,
        "evidence": {"last_event_id": "e49", "events_seen": 50}}


def test_malformed_control_records_and_terminal_escapes_break_no_tool(settings, tmp_path):
    _seed_state(settings)
    _produce(settings, [b"[1, 2]", b"not json", orjson.dumps(GOOD),
                        orjson.dumps({**GOOD, "id": "a2", "statistic": "n/a"}),
                        orjson.dumps({**GOOD, "id": "a3", "created_at": 1e20}),
                        orjson.dumps({**GOOD, "id": "a4", "evidence": "oops"})])

    alerts = run_cli(settings, "alerts")
    assert alerts.returncode == 0 and "Traceback" not in alerts.stderr, alerts.stderr
    assert alerts.stderr == (f"driftline: skipped 2 malformed record(s) on {settings.control_topic} "
                             "(not a JSON object)\n")
    lines = alerts.stdout.splitlines()
    assert len(lines) == 4 and all(line.isprintable() for line in lines)
    assert not any(line.startswith("DECISION") for line in lines) and all(SHOWN in line for line in lines)

    output = tmp_path / "report.html"
    report = run_cli(settings, "report", "--model", MODEL, "--output", str(output))
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    assert f"skipped 2 malformed record(s) on {settings.control_topic}" in report.stderr  # not objects
    assert f"skipped 2 malformed record(s) of model {MODEL}" in report.stderr  # "n/a", evidence "oops"
    html = output.read_text(encoding="utf-8")
    charts = re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)
    assert charts and all(ET.fromstring(base64.b64decode(c)) is not None for c in charts)
    table = html[html.index('<h2 id="alerts">'):]
    assert table.count("<tr>") == 3 and "<tr><td>?</td>" in table  # a1, and a3 at a time beyond any calendar

    status = run_cli(settings, "status", "--model", MODEL)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert "\x1b" not in status.stdout and all(line.isprintable() for line in lines)
    assert sum(line.startswith("DECISION") for line in lines) == 1 and lines[0].startswith("DECISION: CONTINUE since")
    assert any(line.startswith(f"  {SHOWN} categorical") and "bad\\x01a: 25" in line for line in lines)
    listing = run_cli(settings, "status")
    assert listing.returncode == 0 and "\x1b" not in listing.stdout
    as_json = run_cli(settings, "status", "--model", MODEL, "--json")
    assert ANSI in orjson.loads(as_json.stdout)["features"]  # --json keeps the name as it is
