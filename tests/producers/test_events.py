import json

import orjson
import pytest

from producers.events import decode_message, encode_envelope, encode_event

LIMIT = 1_000_000


def _event(i=0, **overrides):
    event = {"model": "m", "model_version": "1", "event_id": f"e{i}", "timestamp": 1700000000.0 + i,
             "features": {"x": 1.5, "c": "a", "b": True, "gone": None}, "prediction": 1, "score": 0.7}
    event.update(overrides)
    return event


def test_single_event_round_trip():
    decoded = decode_message(encode_event(_event()), LIMIT)
    assert decoded.kind == "inference" and not decoded.rejections
    [event] = decoded.events
    assert event["event_id"] == "e0" and event["features"]["x"] == 1.5 and event["score"] == 0.7


def test_envelope_shares_model_and_version():
    events = [{k: v for k, v in _event(i).items() if k not in ("model", "model_version")} for i in range(3)]
    decoded = decode_message(encode_envelope("m", events, "7"), LIMIT)
    assert [e["event_id"] for e in decoded.events] == ["e0", "e1", "e2"]
    assert {(e["model"], e["model_version"]) for e in decoded.events} == {("m", "7")}


def test_iso_timestamp_and_integer_version_are_accepted():
    decoded = decode_message(encode_event(_event(timestamp="2026-01-02T03:04:05+00:00", model_version=3)), LIMIT)
    assert decoded.events[0]["timestamp"] == 1767323045.0
    assert decoded.events[0]["model_version"] == "3"


@pytest.mark.parametrize("overrides, reason", [
    ({"event_id": None}, "missing field 'event_id'"),
    ({"event_id": 12}, "wrong type: 'event_id'"),
    ({"model": ""}, "wrong type: 'model'"),
    ({"features": [1, 2]}, "wrong type: 'features' must be an object"),
    ({"features": {"x": [1]}}, "wrong type: feature 'x'"),
    ({"prediction": None}, "missing field 'prediction'"),
    ({"prediction": {"a": 1}}, "wrong type: 'prediction'"),
    ({"score": "high"}, "wrong type: 'score'"),
    ({"timestamp": "yesterday"}, "is not ISO-8601"),
    ({"timestamp": None}, "missing field 'timestamp'"),
    ({"model_version": None}, "missing field 'model_version'"),
])
def test_invalid_events_are_rejected_with_a_reason(overrides, reason):
    decoded = decode_message(encode_event(_event(**overrides)), LIMIT)
    assert decoded.events == []
    [rejection] = decoded.rejections
    assert reason in rejection.reason


def test_non_finite_value_rejects_only_its_event():
    events = [_event(0), _event(1, features={"x": float("nan")}), _event(2, score=float("inf")), _event(3)]
    raw = json.dumps({"schema_version": 1, "kind": "inference", "model": "m", "events": events}).encode()
    decoded = decode_message(raw, LIMIT)
    assert [e["event_id"] for e in decoded.events] == ["e0", "e3"]
    reasons = [r.reason for r in decoded.rejections]
    assert "feature 'x' is not finite (nan)" in reasons[0]
    assert "'score'" in reasons[1]
    assert [r.event_id for r in decoded.rejections] == ["e1", "e2"]


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "malformed JSON"),
    (b"\xff\xfe", "malformed JSON"),
    (b"[1, 2]", "expected an object"),
    (orjson.dumps({"schema_version": 99, "model": "m"}), "unsupported schema_version 99"),
    (orjson.dumps({"model": "m"}), "unsupported schema_version None"),
    (orjson.dumps({"schema_version": 1, "kind": "gossip"}), "unknown kind"),
    (orjson.dumps({"schema_version": 1, "model": "m", "events": {"a": 1}}), "'events' must be a list"),
    (None, "empty message"),
])
def test_unusable_messages(raw, reason):
    decoded = decode_message(raw, LIMIT)
    assert decoded.events == []
    assert reason in decoded.rejections[0].reason


def test_oversized_message_is_refused_before_parsing():
    raw = encode_envelope("m", [_event(i) for i in range(2000)], "1")
    decoded = decode_message(raw, max_bytes=10_000)
    assert decoded.events == []
    assert decoded.rejections[0].reason.startswith(f"oversized message: {len(raw)} bytes")
    assert len(decoded.rejections[0].excerpt) <= 2048


def test_envelope_with_a_non_object_event_keeps_the_others():
    raw = orjson.dumps({"schema_version": 1, "model": "m", "model_version": "1",
                        "events": [_event(0), "junk", _event(1)]})
    decoded = decode_message(raw, LIMIT)
    assert [e["event_id"] for e in decoded.events] == ["e0", "e1"]
    assert "event is a JSON str" in decoded.rejections[0].reason


def test_label_events():
    raw = encode_envelope("m", [{"event_id": "e1", "label": 0, "timestamp": 1.0},
                                {"event_id": "e2", "timestamp": 2.0}], kind="label")
    decoded = decode_message(raw, LIMIT)
    assert decoded.kind == "label"
    assert decoded.events == [{"model": "m", "event_id": "e1", "label": 0, "timestamp": 1.0}]
    assert "missing field 'label'" in decoded.rejections[0].reason
