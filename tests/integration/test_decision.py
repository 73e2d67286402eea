"""The decision follows the evidence, through a real worker on Kafka and Redis: ``retrain`` after a drop in
accuracy, the same as the trigger on the control topic (``continue`` while inputs drift and performance holds:
test_feedback_loop.py's shift that does not hurt); and the report of that worker's state, written by
``driftline report``, opened in headless chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from producers.example_data import drifting_credit_data
from tests.stream_processors.report.browser import chromium, chromium_missing, load

from .conftest import read_topic, run_cli, status_json, wait_until_applied

pytestmark = pytest.mark.integration

OUTPUT = Path(__file__).resolve().parents[2] / "build" / "test-output"


def test_after_a_drop_in_accuracy_the_decision_is_the_retrain_trigger_and_the_report_shows_it(
        settings, worker_factory, tmp_path):
    prod = drifting_credit_data(n=16000, shift_at=8000, seed=71)  # income shifts by 1 sd half way
    rng = np.random.default_rng(72)
    flip = (np.arange(len(prod)) >= 10000) & (rng.random(len(prod)) < 0.35)
    prod.loc[flip, "label"] = 1 - prod.loc[flip, "label"]  # from event 10000 on, the model is often wrong
    prod.to_csv(tmp_path / "prod.csv", index=False)
    worker = worker_factory(settings.replace(performance_window=1000)).start()
    assert run_cli(settings, "replay", "--model", "credit", "--model-version", "1", "--data",
                   str(tmp_path / "prod.csv")).returncode == 0
    wait_until_applied(settings, worker)

    alerts = read_topic(settings, settings.control_topic)
    triggers = [a for a in alerts if a["type"] == "retrain"]
    assert len({t["id"] for t in triggers}) == 1 and triggers[0]["evidence"]["rule"] == "performance"
    decision = status_json(settings)["decision"]
    assert decision["verdict"] == "retrain" and decision["trigger_id"] == triggers[0]["id"]
    assert decision["rule"] == "performance" and decision["since_event"] == triggers[0]["evidence"]["last_event_id"]
    assert decision["reasons"] == triggers[0]["evidence"]["reasons"]
    assert int(decision["since_event"].rsplit("-", 1)[1]) >= 10000  # not before the drop

    missing = chromium_missing()
    if missing:
        pytest.fail(missing)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    report, screenshot = OUTPUT / "report-from-worker.html", OUTPUT / "report-from-worker.png"
    written = run_cli(settings, "report", "--model", "credit", "--output", str(report))
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == str(report.resolve())
    with chromium() as browser:
        page = load(browser, report, screenshot=screenshot)
    print(f"\nreport: {report}\nscreenshot: {screenshot}\nload event after {page.seconds:.3f} s")
    assert page.console_errors == [] and page.page_errors == []
    assert [url for url in page.requests if not url.startswith("data:")] == [page.url]
    features = set(drifting_credit_data(n=10).columns) - {"event_id", "timestamp", "prediction", "score", "label"}
    assert set(page.features) == features and len(page.features) == len(features)
    assert page.features[0] == "income"  # the most drifted first
    assert page.verdict.strip().lower() == "retrain"
    html = report.read_text()
    assert triggers[0]["evidence"]["reasons"][0]["id"][:12] in html  # the alert behind the decision
    assert html.count(">retrain_policy<") == len(triggers)  # the trigger in the table of the period
    assert screenshot.stat().st_size > 10_000


def test_report_names_what_is_wrong(settings):
    unknown = run_cli(settings, "report", "--model", "nobody")
    assert unknown.returncode == 1 and "unknown model 'nobody'" in unknown.stderr
    down = run_cli(settings.replace(redis_url="redis://127.0.0.1:1/0"), "report", "--model", "credit")
    assert down.returncode == 1 and "Redis" in down.stderr and "Traceback" not in down.stderr
