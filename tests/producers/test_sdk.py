"""The SDK's checks in log() and its per-event encoding, with the Kafka producer swapped for a recorder."""

from decimal import Decimal
from enum import IntEnum

import numpy as np
import orjson
import pytest

from producers.events import MAX_ABS_NUMBER, decode_message
from producers.sdk import InferenceLogger, LabelLogger


class RecordingProducer:
    """Stands in for confluent_kafka.Producer: keeps each value and reports it delivered."""

    def __init__(self, fail_first: int = 0) -> None:
        self.values: list[bytes] = []
        self.fail_first = fail_first

    def produce(self, topic, value, key, on_delivery):
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("the broker connection broke in an unexpected way")
        self.values.append(value)
        on_delivery(None, None)

    def poll(self, timeout):
        return 0

    def flush(self, timeout):
        return 0


def _logger(cls=InferenceLogger, **kwargs):
    args = {"model": "fraud", "batch_size": 100, "linger_s": 60.0}
    if cls is InferenceLogger:
        args["model_version"] = "2"
    args.update(kwargs)
    logger = cls("127.0.0.1:1", **args)
    logger._producer = RecordingProducer()
    return logger


def _sent_events(logger) -> list[dict]:
    return [e for value in logger._producer.values for e in orjson.loads(value)["events"]]


class Level(IntEnum):
    HIGH = 2


def test_numpy_scalars_decimal_and_int_subclasses_are_sent_as_json_numbers_and_booleans():
    logger = _logger()
    features = {"i64": np.int64(7), "i8": np.int8(-3), "f32": np.float32(0.25), "f64": np.float64(1.5),
                "flag": np.bool_(True), "zero_d": np.array(2.5), "dec": Decimal("1.25"), "whole": Decimal("3"),
                "level": Level.HIGH, "text": np.str_("FR"), "missing": None}
    logger.log("e1", features, prediction=np.int64(1), score=np.float32(0.75), timestamp=np.float64(1.7e9))
    logger.log("e2", {"x": 1.0}, prediction="yes", score={"yes": np.float64(0.6), "no": Decimal("0.4")})
    stats = logger.close(timeout=5)
    assert (stats.logged, stats.delivered, stats.unencodable, stats.rejected) == (2, 2, 0, 0)
    [value] = logger._producer.values
    decoded = decode_message(value, 1 << 20)
    assert decoded.rejections == []
    first, second = decoded.events
    assert first["features"] == {"i64": 7, "i8": -3, "f32": 0.25, "f64": 1.5, "flag": True, "zero_d": 2.5,
                                 "dec": 1.25, "whole": 3, "level": 2, "text": "FR", "missing": None}
    assert {k: type(v) for k, v in first["features"].items() if v is not None} == {
        "i64": int, "i8": int, "f32": float, "f64": float, "flag": bool, "zero_d": float, "dec": float,
        "whole": int, "level": int, "text": str}
    assert (first["prediction"], first["score"], first["timestamp"]) == (1, 0.75, 1.7e9)
    assert second["score"] == {"yes": 0.6, "no": 0.4}


@pytest.mark.parametrize("call, field", [
    (lambda log: log.log("e1", {"amount": float("nan")}, prediction=1), "feature 'amount'"),
    (lambda log: log.log("e1", {"amount": np.float32("-inf")}, prediction=1), "feature 'amount'"),
    (lambda log: log.log("e1", {"amount": Decimal("NaN")}, prediction=1), "feature 'amount'"),
    (lambda log: log.log("e1", {"amount": Decimal("Infinity")}, prediction=1), "feature 'amount'"),
    (lambda log: log.log("e1", {"amount": 10 ** 400}, prediction=1), "feature 'amount'"),
    (lambda log: log.log("e1", {"amount": np.array(-2e15)}, prediction=1), "feature 'amount'"),
    (lambda log: log.log("e1", {"amount": 1.0}, prediction=float("inf")), "prediction"),
    (lambda log: log.log("e1", {"amount": 1.0}, prediction=1, score=np.float64("nan")), "score"),
    (lambda log: log.log("e1", {"amount": 1.0}, prediction="a", score={"a": float("nan")}), "score of class 'a'"),
    (lambda log: log.log("e1", {"amount": 1.0}, prediction=1, timestamp=float("inf")), "timestamp"),
])
def test_non_finite_and_huge_numbers_are_refused_by_log_naming_the_field(call, field):
    logger = _logger()
    with pytest.raises(ValueError, match=f"event 'e1': {field} is "):
        call(logger)
    logger.log("e2", {"amount": MAX_ABS_NUMBER}, prediction=-MAX_ABS_NUMBER)  # the limit itself is fine
    stats = logger.close(timeout=5)
    assert (stats.rejected, stats.logged, stats.delivered) == (1, 1, 1)
    assert field in stats.last_error
    assert [e["event_id"] for e in _sent_events(logger)] == ["e2"]


def test_label_logger_checks_and_converts_labels():
    logger = _logger(LabelLogger)
    with pytest.raises(ValueError, match="label is nan"):
        logger.log("e1", np.float64("nan"))
    logger.log("e2", np.int64(1))
    logger.log("e3", Decimal("0.5"))
    logger.close(timeout=5)
    assert [(e["event_id"], e["label"]) for e in _sent_events(logger)] == [("e2", 1), ("e3", 0.5)]


def test_features_must_be_a_dict():
    logger = _logger()
    with pytest.raises(TypeError, match="features must be a dict"):
        logger.log("e1", [1.0, 2.0], prediction=1)
    logger.close(timeout=5)


def test_an_unencodable_event_costs_only_itself_and_the_sender_carries_on():
    logger = _logger()
    logger.log("e1", {"x": 1.0}, prediction=0)
    logger.log("bad", {"x": object()}, prediction=0)
    logger.log("e3", {"x": 3.0}, prediction=1)
    first = logger.flush(timeout=5)
    assert (first.logged, first.delivered, first.unencodable, first.failed) == (3, 2, 1, 0)
    assert "'bad' could not be encoded" in first.last_error
    logger.log("e4", {"x": 4.0}, prediction=1)  # the background thread still sends later events
    logger.log("e5", {"x": 5.0}, prediction=1)
    stats = logger.close(timeout=5)
    assert [e["event_id"] for e in _sent_events(logger)] == ["e1", "e3", "e4", "e5"]
    assert (stats.logged, stats.delivered, stats.unencodable, stats.buffered) == (5, 4, 1, 0)


def test_an_unexpected_failure_is_counted_and_the_sender_thread_survives():
    logger = _logger(batch_size=2, max_buffered=10)
    logger._producer = RecordingProducer(fail_first=1)
    logger.log("e1", {"x": 1.0}, prediction=0)
    logger.log("e2", {"x": 2.0}, prediction=0)  # a full batch: the thread sends it, and produce raises
    logger.log("e3", {"x": 3.0}, prediction=0)
    logger.log("e4", {"x": 4.0}, prediction=0)
    stats = logger.close(timeout=5)
    assert not logger._thread.is_alive()  # ended by close(), not by the failure
    assert (stats.failed, stats.delivered, stats.buffered) == (2, 2, 0)
    assert "unexpected way" in stats.last_error
    assert [e["event_id"] for e in _sent_events(logger)] == ["e3", "e4"]
