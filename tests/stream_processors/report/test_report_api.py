"""The report package's public names are deliberate: this test holds them."""

import stream_processors.report as report

EXPECTED = {"AlertRow", "Decision", "DecisionReason", "Distribution", "Episode", "FeatureSection", "MetricFigure",
            "OutputSection", "PerformanceSeries", "ReportData", "render_report"}


def test_public_names():
    assert set(report.__all__) == EXPECTED
    assert all(hasattr(report, name) for name in EXPECTED)


def test_the_report_imports_no_service_client():
    import pathlib
    import re

    pattern = re.compile(r"^\s*(import|from)\s+(confluent_kafka|faust|aiokafka|redis|prometheus_client|os)\b", re.M)
    for path in pathlib.Path(report.__file__).parent.glob("*.py"):
        assert not pattern.search(path.read_text()), path
