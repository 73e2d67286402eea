import base64
import re
import xml.etree.ElementTree as ET
from html import escape, unescape

import numpy as np
import pytest

from stream_processors.report import (Decision, Distribution, FeatureSection, ReportData, render_report)
from tests.stream_processors.report.synthetic import HOSTILE_CATEGORY, HOSTILE_NAME, synthetic_report


@pytest.fixture(scope="module")
def data() -> ReportData:
    return synthetic_report(n_events=40_000, hostile=True)


@pytest.fixture(scope="module")
def html(data) -> str:
    return render_report(data)


def _feature_order(html: str) -> list[str]:
    return [unescape(name) for name in re.findall(r'<section class="feature" id="feature-\d+" data-feature="([^"]*)"',
                                                  html)]


def _section_of(html: str, data: ReportData, name: str) -> str:
    index = [f.name for f in data.features_by_drift()].index(name) + 1
    return re.search(rf'<section class="feature" id="feature-{index}".*?</section>', html, re.S).group(0)


def test_every_feature_has_its_section_with_a_chart(data, html):
    assert sorted(_feature_order(html)) == sorted(f.name for f in data.features)
    for f in data.features:
        section = _section_of(html, data, f.name)
        assert '<img alt="' in section and 'src="data:image/svg+xml;base64,' in section


def test_features_are_ordered_by_peak_statistic_over_threshold(data, html):
    peaks = np.array([np.max([v for _, v in f.statistic]) / f.threshold for f in data.features])
    names = np.array([f.name for f in data.features])
    expected = names[np.lexsort((names, -peaks))]
    assert _feature_order(html) == list(expected)
    assert peaks[list(names).index("x02")] > 1 > peaks[list(names).index("x10")]  # drifted vs not


def test_the_decision_comes_first_with_its_reasons(data, html):
    decision = re.search(r'<section id="decision" class="decision retrain">.*?</section>', html, re.S)
    assert decision and decision.start() < html.index('<section class="feature"')
    block = decision.group(0)
    assert '<div class="verdict">retrain</div>' in block
    assert escape(data.decision.explanation) in block
    assert data.decision.since_event in block and "realized_accuracy" in block
    for figure in data.decision.figures:
        assert f"{figure.value:.4g}" in block


def test_a_continue_decision_is_shown_as_such(data):
    calm = ReportData(**{**data.__dict__, "decision": Decision("continue", "inputs drift; performance holds")})
    block = re.search(r'<section id="decision".*?</section>', render_report(calm), re.S).group(0)
    assert 'class="decision continue"' in block and '<div class="verdict">continue</div>' in block
    assert "<table>" not in block


def test_user_strings_are_escaped_everywhere(data, html):
    assert "<script" not in html.lower()
    assert HOSTILE_NAME not in html and escape(HOSTILE_NAME) in html
    assert HOSTILE_CATEGORY not in html and escape(HOSTILE_CATEGORY) in html
    assert data.model not in html and escape(data.model) in html


def test_charts_are_valid_svg_even_with_hostile_category_names(data, html):
    section = _section_of(html, data, "region_1")
    svg = base64.b64decode(re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', section).group(1))
    root = ET.fromstring(svg)  # would fail on an unescaped "<img ...>" in a tick label
    assert root.tag.endswith("svg")
    assert HOSTILE_CATEGORY in "".join(root.itertext())


def test_nothing_is_loaded_from_anywhere(html):
    assert all(src.startswith("data:") for src in re.findall(r'\ssrc="([^"]*)"', html))
    assert all(href.startswith("#") for href in re.findall(r'\shref="([^"]*)"', html))
    assert "@import" not in html and "url(" not in html and "<link" not in html


def test_every_alert_of_the_period_is_a_row(data, html):
    table = html[html.index('<h2 id="alerts">'):]
    assert table.count("<tr>") == len(data.alerts) + 1
    assert {"drift", "performance", "retrain"} <= {a.type for a in data.alerts}


def test_size_stays_bounded():
    """20 features over a million events at the default capacity: under 1.5 MB (about 40 kB a feature)."""
    html = render_report(synthetic_report(n_events=1_000_000))
    assert len(html.encode()) < 1_500_000


def test_bad_data_is_refused():
    with pytest.raises(ValueError):
        Distribution((1.0, 2.0), edges=(0.0, 1.0))
    with pytest.raises(ValueError):
        Distribution((1.0,), edges=(0.0, 1.0), categories=("a",))
    with pytest.raises(ValueError):
        Decision("maybe", "")
    with pytest.raises(ValueError):
        FeatureSection("f", "numeric", Distribution((1.0,), edges=(0.0, 1.0)), (), threshold=0.0)


def test_a_decision_from_a_trigger_carries_its_evidence():
    trigger = {"created_at": 12.5, "evidence": {
        "last_event_id": "e-9", "rule": "performance", "explanation": "fell",
        "reasons": [{"id": "a1", "type": "performance", "feature": None, "detector": "cusum",
                     "statistic": 9.1, "threshold": 8.7}],
        "performance": {"realized": {"accuracy": {"value": 0.5, "reference": 0.7}}, "estimated": {}}}}
    decision = Decision.from_trigger(trigger)
    assert (decision.verdict, decision.rule, decision.since_event, decision.since_time) == \
        ("retrain", "performance", "e-9", 12.5)
    assert [(r.alert_id, r.detector, r.statistic, r.threshold) for r in decision.reasons] == [("a1", "cusum", 9.1, 8.7)]
    assert [(f.kind, f.metric, f.value, f.reference) for f in decision.figures] == [("realized", "accuracy", 0.5, 0.7)]


def test_each_episode_is_listed_where_it_began_and_ended(data, html):
    episodes = [(f.name, e) for f in data.features for e in f.episodes]
    assert any(e.ended_at is None for _, e in episodes) and any(e.ended_at is not None for _, e in episodes)
    for name, e in episodes:
        section = _section_of(html, data, name)
        end = e.ended_at_event if e.ended_at is not None else "still open"
        assert f"from {e.started_at_event} to {end}" in section
        if e.ended_at is None:
            assert f"drifting since {e.started_at_event}" in section


def test_many_categories_show_the_largest_and_sum_the_rest(data):
    names = tuple(f"c{i:02d}" for i in range(40))
    counts = tuple(float(1000 - 10 * i) for i in range(40))
    many = FeatureSection("many", "categorical", Distribution(counts, counts, categories=names),
                          ((0, 0.01), (10, 0.02)), threshold=0.1)
    html = render_report(ReportData(**{**data.__dict__, "features": (many,)}))
    svg = base64.b64decode(re.search(r'<section class="feature".*?base64,([^"]+)"', html, re.S).group(1))
    text = "".join(ET.fromstring(svg).itertext())
    assert "c00" in text and "c13" in text and "c14" not in text and "(26 others)" in text


def test_the_last_n_events_cut_series_episodes_and_the_ordering(data):
    ended = min(e.ended_at for f in data.features for e in f.episodes if e.ended_at is not None)
    first = ended + 1
    last = data.last(data.events - first)
    assert last.period == (first, data.events - 1)
    for before, after in zip(data.features, last.features):
        assert after.statistic == tuple(p for p in before.statistic if p[0] >= first) and after.statistic
        assert [e for e in after.episodes] == [e for e in before.episodes if e.ended_at is None or e.ended_at >= first]
        peak = max(v for i, v in before.statistic if i >= first) / before.threshold
        assert after.drift_ratio == pytest.approx(peak)
    assert sum(map(len, (f.episodes for f in last.features))) < sum(map(len, (f.episodes for f in data.features)))
    assert all(i >= first for i, _ in last.performance[0].realized)
    assert f"events {first:,}–{data.events - 1:,} of {data.events:,}" in render_report(last)
