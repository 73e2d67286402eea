"""The report of a model whose names and control-topic messages are hostile: it renders, every chart is XML, and
what could not be shown is counted, never raised (the reviewer's cases of issue 1015)."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import orjson
import pytest

from detectors.model.monitor import ModelMonitor
from stream_processors.batch import logic_params
from stream_processors.config import Settings
from stream_processors.report import render_report
from stream_processors.report.data import AlertRow
from stream_processors.report.from_state import report_from_state

SETTINGS = Settings(window_size=200, edge_events=200, baseline_windows=2, performance_window=200)
LONG = "K" * 1000
LONG_FEATURE = "F" * 300


def monitor_of(events: list[dict], batch: int = 200) -> ModelMonitor:
    monitor = ModelMonitor("m", "1", logic_params(SETTINGS).monitor)
    for start in range(0, len(events), batch):
        monitor.apply(events[start:start + batch])
    return ModelMonitor.from_dict(orjson.loads(orjson.dumps(monitor.to_dict())), monitor.params)


def event(i: int, features: dict) -> dict:
    return {"event_id": f"e{i}", "timestamp": 1000.0 + i, "features": features, "prediction": 1, "score": None}


def svgs(html: str) -> list[bytes]:
    return [base64.b64decode(s) for s in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)]


@pytest.fixture(scope="module")
def hostile_html() -> str:
    events = [event(i, {"f\x0bx": float(i % 5), "c": "bad\x01" + str(i % 3), "long": LONG + str(i % 2),
                        "esc\x1b[31m": "\x1b[2J" + "ab"[i % 2], LONG_FEATURE: float(i % 7)}) for i in range(400)]
    return render_report(report_from_state(monitor_of(events), [], generated_at=0.0))


def test_every_chart_of_names_with_control_characters_is_well_formed_xml(hostile_html):
    charts = svgs(hostile_html)
    assert len(charts) >= 4
    texts = " ".join("".join(ET.fromstring(svg).itertext()) for svg in charts)  # raises on a bad character
    assert "bad\\x01" in texts and "\\x1b[2Ja" in texts  # the name, recognisably
    assert "K" * 23 + "…" in texts and LONG not in texts  # shortened for display


def test_the_page_holds_no_character_xml_forbids_and_keeps_long_names_whole_in_a_title(hostile_html):
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", hostile_html)
    assert "f\\x0bx" in hostile_html and "esc\\x1b[31m" in hostile_html
    assert f'title="{LONG_FEATURE}"' in hostile_html and f">{LONG_FEATURE}<" not in hostile_html
    assert "F" * 119 + "…" in hostile_html


GOOD = {"id": "good", "model": "m", "model_version": "1", "type": "drift", "status": "firing",
        "severity": "critical", "detector": "cusum", "feature": "x", "statistic": 5.0, "threshold": 1.0,
        "created_at": 1_700_000_000.0, "evidence": {"last_event_id": "e299", "events_seen": 300}}
MALFORMED = [
    ["a", "list"],
    "a string",
    None,
    {k: v for k, v in GOOD.items() if k != "statistic"},
    {**GOOD, "statistic": "n/a"},
    {**GOOD, "threshold": [1]},
    {**GOOD, "statistic": True},
    {**GOOD, "evidence": "oops"},
    {**GOOD, "evidence": {"last_event_id": 7}},
    {**GOOD, "feature": {"x": 1}},
    {**GOOD, "created_at": "yesterday"},
    {k: v for k, v in GOOD.items() if k != "id"},
]
SHOWN_WITH_A_QUESTION_MARK = [
    {**GOOD, "id": "far", "created_at": 1e20},          # beyond any calendar
    {**GOOD, "id": "huge", "statistic": 10 ** 400},     # an integer beyond any float
    {**GOOD, "id": "events", "evidence": {"events_seen": 1e308 * 10}},
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_a_malformed_alert_is_refused_by_its_row(bad):
    with pytest.raises(ValueError):
        AlertRow.from_alert(bad)


@pytest.mark.parametrize("last", [None, 100])
def test_malformed_control_messages_are_counted_and_the_rest_is_shown(last):
    monitor = monitor_of([event(i, {"x": float(i % 9)}) for i in range(300)])
    other_model = {**GOOD, "model": "other", "statistic": "n/a"}
    alerts = [*MALFORMED, GOOD, *SHOWN_WITH_A_QUESTION_MARK, other_model]
    data = report_from_state(monitor, alerts, generated_at=0.0, last=last)
    assert data.skipped_alerts == len(MALFORMED)  # the other model's is not this report's
    assert {a.id for a in data.alerts} == {"good", "far", "huge", "events"}
    html = render_report(data)
    assert f"{len(MALFORMED)} malformed control-topic message(s) of this model were skipped" in html
    table = html[html.index('<h2 id="alerts">'):]
    assert table.count("<tr>") == 5
    assert table.count("<tr><td>?</td>") == 1 and table.count("<tr><td>2023-11-14 22:13:20 UTC</td>") == 3
    assert '<td class="num">?</td>' in table  # the statistic beyond any float
