import json

import orjson
import pytest

from producers.events import MAX_ABS_NUMBER, REASON_CODES, decode_message, encode_envelope, encode_event

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


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_literals_are_not_json_and_reject_the_message(bad):
    events = [_event(0), _event(1, features={"x": bad}), _event(2)]
    raw = json.dumps({"schema_version": 1, "kind": "inference", "model": "m", "events": events}).encode()
    decoded = decode_message(raw, LIMIT)
    assert decoded.events == []
    [rejection] = decoded.rejections
    assert rejection.code == "out_of_range" and "NaN and infinity" in rejection.reason


@pytest.mark.parametrize("where", ["feature", "prediction", "score", "score_dict", "timestamp"])
@pytest.mark.parametrize("value", [1e15 * 1.0001, -2e15, 10 ** 16, 1e308])
def test_numbers_beyond_the_magnitude_limit_reject_only_their_event(where, value):
    bad = {"feature": {"features": {"x": value}}, "prediction": {"prediction": value}, "score": {"score": value},
           "score_dict": {"score": {"a": 0.5, "b": value}}, "timestamp": {"timestamp": value}}[where]
    raw = orjson.dumps({"schema_version": 1, "kind": "inference", "model": "m",
                        "events": [_event(0), _event(1, **bad), _event(2)]})
    decoded = decode_message(raw, LIMIT)
    assert [e["event_id"] for e in decoded.events] == ["e0", "e2"]
    [rejection] = decoded.rejections
    assert rejection.event_id == "e1"
    assert rejection.code == ("timestamp" if where == "timestamp" else "out_of_range")


def test_the_magnitude_limit_itself_is_accepted():
    decoded = decode_message(encode_event(_event(features={"x": MAX_ABS_NUMBER, "y": -MAX_ABS_NUMBER},
                                                 prediction=-MAX_ABS_NUMBER)), LIMIT)
    assert not decoded.rejections and decoded.events[0]["features"]["x"] == MAX_ABS_NUMBER


def test_label_beyond_the_limit_is_rejected():
    decoded = decode_message(encode_envelope("m", [{"event_id": "a", "label": 1e16, "timestamp": 1.0},
                                                   {"event_id": "b", "label": 1, "timestamp": 1.0}], kind="label"),
                             LIMIT)
    assert [e["event_id"] for e in decoded.events] == ["b"]
    assert decoded.rejections[0].code == "out_of_range"


@pytest.mark.parametrize("raw, code", [
    (b'{"schema_version": 1, "model": "m", "x": ' + b"9" * 400 + b"}", "out_of_range"),
    (b"[" * 2000 + b"]" * 2000, "too_deep"),
    (b'{"schema_version": 1, "model": "\\ud800"}', "invalid_utf8"),
    (b"\xff\xfe", "invalid_utf8"),
    (b'{"schema_version": [1]}', "schema_version"),
    (b'{"schema_version": 1.0}', "schema_version"),
    (b'{"schema_version": 1, "kind": {"a": 1}}', "unknown_kind"),
    (b"", "empty"),
])
def test_hostile_documents_have_their_own_codes(raw, code):
    decoded = decode_message(raw, LIMIT)
    assert decoded.events == []
    [rejection] = decoded.rejections
    assert rejection.code == code, rejection.reason
    assert rejection.code in REASON_CODES


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


def test_a_rejection_code_is_one_of_the_reason_codes():
    import pytest

    from producers.events import REASON_CODES, Rejection

    assert Rejection("oversized", "too big").code in REASON_CODES
    with pytest.raises(ValueError, match="unknown rejection code 'too big'"):
        Rejection("too big", "oversized")
