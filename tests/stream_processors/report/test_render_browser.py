"""The report of a model with drift and labels, opened in Debian's headless chromium on a real page load.

The rendered file and a full-page screenshot are kept in build/test-output/
for a person to look at (the paths are printed; ``pytest -s`` shows them).
"""

from pathlib import Path

import pytest

from stream_processors.report import render_report
from tests.stream_processors.report.browser import chromium, chromium_missing, load
from tests.stream_processors.report.synthetic import HOSTILE_NAME, synthetic_report

pytestmark = [pytest.mark.browser, pytest.mark.integration]

OUTPUT = Path(__file__).resolve().parents[3] / "build" / "test-output"


def test_report_opens_offline_with_every_feature_and_the_decision():
    missing = chromium_missing()
    if missing:
        pytest.fail(missing)
    data = synthetic_report(n_events=100_000, hostile=True)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    report, screenshot = OUTPUT / "report.html", OUTPUT / "report.png"
    report.write_text(render_report(data), encoding="utf-8")

    with chromium() as browser:
        page = load(browser, report, screenshot=screenshot)
    print(f"\nreport: {report}\nscreenshot: {screenshot}\nload event after {page.seconds:.3f} s")

    assert page.console_errors == [] and page.page_errors == []
    # data: URIs are the file's own bytes, not requests; anything else would be the network
    assert [url for url in page.requests if not url.startswith("data:")] == [page.url]
    assert page.features == [f.name for f in data.features_by_drift()]
    assert HOSTILE_NAME in page.features  # shown as text: the name's <script> never ran or parsed
    assert page.verdict.strip().lower() == data.decision.verdict == "retrain"
    assert page.seconds < 2.0
    assert screenshot.stat().st_size > 10_000
