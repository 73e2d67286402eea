"""The public names of each package are deliberate: this test holds them."""

import importlib
import pkgutil

import detectors
import detectors.model
import producers
import stream_processors
import stream_processors.cli
import stream_processors.faust_app
import stream_processors.ingest
import stream_processors.report
import stream_processors.state

EXPECTED = {
    detectors.model: {"Finding", "JoinParams", "LabelJoin", "ModelMonitor", "MonitorParams", "PerformanceParams",
                      "PerformanceTracker", "PolicyParams", "RetrainPolicy", "alert_id"},
    stream_processors.state: {"AppKeys", "MemoryStateStore", "Quarantine", "RedisStateStore", "StateCommit",
                              "StateStore", "TopicPartition", "profile_key", "redis_client", "triggers_done_key",
                              "triggers_parked_key"},
    detectors: {"AdwinDetector", "CategoryFrequencies", "Firing", "NumericDriftMonitor", "NumericSummary",
                "PageHinkleyDetector", "QuantileSketch", "StateVersionError"},
    producers: {"DEFAULT_INFERENCE_TOPIC", "DEFAULT_LABEL_TOPIC", "SCHEMA_VERSION", "DecodedMessage",
                "DeliveryStats", "InferenceLogger", "KafkaConnection", "LabelLogger", "Rejection", "decode_message",
                "encode_envelope", "encode_event"},
    stream_processors: set(),
    stream_processors.cli: {"COMMANDS", "build_parser", "main", "settings_from"},
    stream_processors.faust_app: set(),
    stream_processors.ingest: {"Rejected"},
    stream_processors.report: {"AlertRow", "Decision", "DecisionReason", "Distribution", "Episode", "FeatureSection",
                               "MetricFigure", "OutputSection", "PerformanceSeries", "ReportData", "render_report"},
}


def test_public_names():
    for module, names in EXPECTED.items():
        assert set(module.__all__) == names, module.__name__
        assert all(hasattr(module, n) for n in names)


def _modules():
    for package in (detectors, producers, stream_processors):
        yield package
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):
                yield importlib.import_module(info.name)


def test_every_package_is_held_here():
    packages = {m.__name__ for m in _modules() if hasattr(m, "__path__")}
    assert packages == {m.__name__ for m in EXPECTED}


def test_every_module_says_what_it_exports_and_has_it():
    for module in _modules():
        assert hasattr(module, "__all__"), module.__name__
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert missing == [], (module.__name__, missing)


def test_every_command_is_a_module_of_the_cli():
    for name in stream_processors.cli.COMMANDS:
        module = importlib.import_module(f"stream_processors.cli.{name}")
        assert callable(module.add_parser) and callable(module.run)


def test_detectors_and_the_report_import_nothing_of_the_outside_world():
    import pathlib
    import re

    pattern = re.compile(r"^\s*(import|from)\s+(confluent_kafka|faust|aiokafka|redis|prometheus_client|os)\b", re.M)
    for package in (detectors, stream_processors.report):
        for path in pathlib.Path(package.__file__).parent.rglob("*.py"):
            assert not pattern.search(path.read_text()), path
