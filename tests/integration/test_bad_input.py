"""Poison messages of every kind, alone and inside envelopes, between valid events.

Each ends in the dead-letter topic with its reason code and payload; every
valid event around it is applied: counts and means equal numpy's over
exactly the valid events; the worker stays up.
"""

import json

import confluent_kafka
import numpy as np
import orjson
import pytest

from producers.events import MAX_ABS_NUMBER, encode_envelope, encode_event

from .conftest import describe, read_topic, wait_until_applied

pytestmark = pytest.mark.integration


def _good(i):
    return {"event_id": f"ok-{i}", "timestamp": 1764000000.0 + i, "features": {"x": float(i % 97) * 1.5, "c": "k"},
            "prediction": i % 2, "score": 0.25}


def _single(event: dict) -> bytes:
    return encode_event({"model": "m", "model_version": "1", **event})


HUGE = "1" + "0" * 400  # an integer of 401 digits: beyond any float


def test_poison_messages_are_dead_lettered_and_everything_else_applied(settings, worker_factory):
    limit = 20_000
    settings = settings.replace(max_message_bytes=limit)
    worker = worker_factory(settings).start()
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka.bootstrap,
                                         "partitioner": "murmur2_random"})
    good: list[dict] = []
    expected_codes: list[str] = []

    def send(value: bytes) -> None:
        producer.produce(settings.inference_topic, key=b"m", value=value)

    def good_single(i):
        good.append(_good(i))
        send(_single(_good(i)))

    def poison(value: bytes, code: str):
        expected_codes.append(code)
        send(value)

    i = 0
    for round_ in range(3):
        for _ in range(5):
            good_single(i)
            i += 1
        # message-level poison, one per kind
        poison(b'{"schema_version": 1, "model": "m", "events": [', "malformed_json")
        poison(b"\xff\xfe\xfd", "invalid_utf8")
        poison(b'{"schema_version": 1, "model": "m", "model_version": "1", "event_id": "s", "x": "\\ud800"}',
               "invalid_utf8")
        poison(b'{"schema_version": 1, "model": "m", "deep": ' + b"[" * 1100 + b"]" * 1100 + b"}", "too_deep")
        poison(_single(_good(90_000 + round_)).replace(b'"prediction":', b'"prediction":' + HUGE.encode() + b',"p":'),
               "out_of_range")
        poison(json.dumps({"schema_version": 1, "model": "m", "model_version": "1",
                           "events": [_good(80_000 + round_), {**_good(80_100 + round_), "features": {"x": float("nan")}}]
                           }).encode(), "out_of_range")
        poison(orjson.dumps({"schema_version": 7, "model": "m", "event_id": "v"}), "schema_version")
        poison(orjson.dumps([1, 2, 3]), "not_an_object")
        poison(orjson.dumps({"schema_version": 1, "kind": "gossip"}), "unknown_kind")
        poison(orjson.dumps({"schema_version": 1, "model": "m", "events": {"a": 1}}), "bad_envelope")
        poison(encode_envelope("m", [_good(j) for j in range(1000, 1400)], "1"), "oversized")
        poison(b"", "empty")
        # event-level poison inside an envelope, beside valid events
        events, codes = [], []
        for bad, code in [({"features": {"x": 1e308}}, "out_of_range"),
                          ({"features": {"x": -MAX_ABS_NUMBER * 10}}, "out_of_range"),
                          ({"score": 2e15}, "out_of_range"),
                          ({"prediction": 10 ** 17}, "out_of_range"),
                          ({"timestamp": 1e300}, "timestamp"),
                          ({"features": "not an object"}, "wrong_type"),
                          ({"features": {"x": [1]}}, "wrong_type"),
                          ({"prediction": None}, "missing_field"),
                          ({"event_id": None}, "missing_field")]:
            events.append(_good(i))
            good.append(_good(i))
            i += 1
            events.append({**_good(70_000 + len(codes) + 100 * round_), **bad})
            codes.append(code)
        events.append("not an event")
        codes.append("not_an_object")
        expected_codes += codes
        send(encode_envelope("m", events, "1"))
    for _ in range(5):
        good_single(i)
        i += 1
    assert producer.flush(30) == 0
    wait_until_applied(settings, worker)

    status = describe(settings, "m", "1")
    xs = np.array([e["features"]["x"] for e in good])
    assert status["events"] == len(good) == 3 * (5 + 9) + 5
    assert status["features"]["x"]["count"] == len(good)
    assert status["features"]["x"]["mean"] == pytest.approx(xs.mean(), rel=1e-12)
    assert status["features"]["x"]["std"] == pytest.approx(xs.std(ddof=1), rel=1e-9)
    assert status["last_event_id"] == good[-1]["event_id"]

    letters = read_topic(settings, settings.dead_letter_topic)
    assert sorted(letter["reason_code"] for letter in letters) == sorted(expected_codes)
    for letter in letters:
        assert letter["source"]["topic"] == settings.inference_topic
        assert letter["worker"] == settings.app_id
        assert isinstance(letter["payload"], str) and len(letter["payload"]) <= 2048
        assert letter["reason"]
    oversized = [letter for letter in letters if letter["reason_code"] == "oversized"]
    assert all(letter["payload"].startswith('{"schema_version"') for letter in oversized)
    assert worker.alive()
