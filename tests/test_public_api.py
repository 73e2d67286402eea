"""The public names of each package are deliberate: this test holds them."""

import detectors
import producers
import stream_processors.report

EXPECTED = {
    detectors: {"AdwinDetector", "CategoryFrequencies", "Firing", "NumericDriftMonitor", "NumericSummary",
                "PageHinkleyDetector", "QuantileSketch", "StateVersionError"},
    producers: {"DEFAULT_INFERENCE_TOPIC", "DEFAULT_LABEL_TOPIC", "SCHEMA_VERSION", "DecodedMessage",
                "DeliveryStats", "InferenceLogger", "LabelLogger", "Rejection", "decode_message", "encode_envelope",
                "encode_event"},
    stream_processors.report: {"AlertRow", "Decision", "DecisionReason", "Distribution", "Episode", "FeatureSection",
                               "MetricFigure", "OutputSection", "PerformanceSeries", "ReportData", "render_report"},
}


def test_public_names():
    for module, names in EXPECTED.items():
        assert set(module.__all__) == names
        assert all(hasattr(module, n) for n in names)


def test_detectors_and_the_report_import_nothing_of_the_outside_world():
    import pathlib
    import re

    pattern = re.compile(r"^\s*(import|from)\s+(confluent_kafka|faust|aiokafka|redis|prometheus_client|os)\b", re.M)
    for package in (detectors, stream_processors.report):
        for path in pathlib.Path(package.__file__).parent.glob("*.py"):
            assert not pattern.search(path.read_text()), path
