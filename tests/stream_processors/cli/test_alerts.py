"""``driftline alerts`` on a control topic anyone can write to: records that are not objects are skipped and
counted, every other one is one line of printable text, whatever its fields hold."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from stream_processors.cli import alerts as alerts_cli
from stream_processors.cli.alerts import format_alert, iter_alerts
from stream_processors.config import Settings

ANSI = "\x1b[1A\x1b[2K\rDECISION: CONTINUE (spoofed)\n  \x1b[8m"
GOOD = {"id": "a1", "created_at": 1_700_000_000.0, "type": "drift", "model": "m", "model_version": "1",
        "severity": "critical", "detector": "cusum", "feature": "x", "statistic": 5.0, "threshold": 1.0,
        "evidence": {"last_event_id": "e9", "events_seen": 10}}


@pytest.mark.parametrize("alert", [
    {},
    {**GOOD, "statistic": "n/a", "threshold": None},
    {**GOOD, "statistic": 10 ** 400, "threshold": [1]},
    {**GOOD, "created_at": 1e20},
    {**GOOD, "created_at": "yesterday"},
    {**GOOD, "evidence": "oops"},
    {**GOOD, "evidence": ["a"]},
    {**GOOD, "severity": 3, "type": {"a": 1}, "model": ["m"]},
    {**GOOD, "status": "resolved", "statistic": "long", "evidence": {"quiet_unit": ["x"]}},
    {**GOOD, "feature": ANSI, "model": ANSI, "model_version": ANSI, "detector": ANSI, "severity": ANSI,
     "evidence": {"last_event_id": ANSI, "events_seen": ANSI}},
    {**GOOD, "status": "resolved", "feature": ANSI, "episode_id": ANSI, "started_at_event": ANSI},
])
def test_any_alert_object_is_one_line_of_printable_text(alert):
    line = format_alert(alert, "unsigned")
    assert line.isprintable() and "\n" not in line
    assert not line.startswith("DECISION")


def test_what_cannot_be_shown_reads_as_a_question_mark_and_names_as_their_escapes():
    line = format_alert({**GOOD, "statistic": "n/a", "created_at": 1e20, "feature": ANSI})
    assert line.startswith("? ") and "(statistic ?, threshold 1)" in line
    assert "feature \\x1b[1A\\x1b[2K\\rDECISION: CONTINUE (spoofed)\\n  \\x1b[8m by cusum" in line
    assert format_alert(GOOD).startswith("2023-11-14 22:13:20 CRITICAL drift: model m v1 feature x by cusum "
                                         "(statistic 5, threshold 1) at event e9 after 10 events")


class FakeConsumer:
    """One partition of the control topic holding ``values``, as ``confluent_kafka.Consumer`` reads it."""

    def __init__(self, topic: str, values: list[bytes]) -> None:
        self.topic, self.values, self.closed = topic, list(values), False

    def list_topics(self, topic, timeout):
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})

    def get_watermark_offsets(self, partition, timeout):
        return 0, len(self.values)

    def subscribe(self, topics):
        self.offset = 0

    def poll(self, timeout):
        if self.offset >= len(self.values):
            return None
        offset, self.offset = self.offset, self.offset + 1
        return SimpleNamespace(error=lambda: None, partition=lambda: 0, offset=lambda: offset,
                               value=lambda: self.values[offset])

    def close(self):
        self.closed = True


@pytest.fixture
def control_topic(monkeypatch):
    def use(values: list[bytes]) -> FakeConsumer:
        consumer = FakeConsumer("t.control", values)
        monkeypatch.setattr(alerts_cli.kafka, "check_connection", lambda *a, **k: [])
        monkeypatch.setattr(alerts_cli.kafka, "consumer", lambda *a, **k: consumer)
        return consumer
    return use


def test_records_that_are_not_objects_are_skipped_and_counted_on_stderr(control_topic, capsys):
    consumer = control_topic([b"not json", b"[1, 2]", orjson.dumps(GOOD), b"null", b'"text"', b"3",
                              orjson.dumps({**GOOD, "id": "a2", "model": "other"})])
    settings = Settings(control_topic="t.control")
    assert [a["id"] for a in iter_alerts(settings, from_beginning=True, follow=False, timeout_s=5)] == ["a1", "a2"]
    assert consumer.closed
    assert capsys.readouterr().err == "driftline: skipped 5 malformed record(s) on t.control (not a JSON object)\n"
    control_topic([b"[1]", orjson.dumps(GOOD), orjson.dumps({**GOOD, "id": "a2", "model": "other"})])
    assert [a["id"] for a in iter_alerts(settings, True, False, 5, model="m")] == ["a1"]
    assert "skipped 1 malformed record(s)" in capsys.readouterr().err


def test_the_alerts_command_prints_what_it_can_without_a_traceback(control_topic, capsys):
    from stream_processors.cli import main

    control_topic([b"[]", orjson.dumps({**GOOD, "statistic": "n/a", "evidence": "oops", "feature": ANSI}),
                   orjson.dumps({**GOOD, "created_at": 1e20}), b"{}"])
    assert main(["alerts", "--control-topic", "t.control"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.isprintable() for line in lines)
    assert not any(line.startswith("DECISION") for line in lines)
    assert err == "driftline: skipped 1 malformed record(s) on t.control (not a JSON object)\n"
