"""Bad input becomes dead-letter records with reasons; the valid events around it all count."""

import json

import confluent_kafka
import orjson
import pytest

from producers.events import encode_envelope, encode_event

from .conftest import describe, read_topic, wait_until_applied

pytestmark = pytest.mark.integration


def _good(i):
    return {"event_id": f"ok-{i}", "timestamp": 1764000000.0 + i, "features": {"x": float(i), "c": "k"},
            "prediction": i % 2}


def test_bad_input_goes_to_the_dead_letter_topic(settings, worker_factory):
    limit = 20_000
    settings = settings.replace(max_message_bytes=limit)
    worker = worker_factory(settings).start()
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka_bootstrap})
    good_ids = []

    def send(value: bytes) -> None:
        producer.produce(settings.inference_topic, key=b"m", value=value)

    def good_batch(start, n):
        good_ids.extend(f"ok-{i}" for i in range(start, start + n))
        send(encode_envelope("m", [_good(i) for i in range(start, start + n)], "1"))

    good_batch(0, 10)
    send(b'{"schema_version": 1, "model": "m", "events": [')                        # malformed JSON
    send(encode_event({"model": "m", "model_version": "1", "event_id": "bad-type", "timestamp": 1.0,
                       "features": "not an object", "prediction": 1}))                 # wrong type
    nan_batch = [_good(100), {**_good(101), "event_id": "bad-nan", "features": {"x": float("nan")}},
                 {**_good(102), "event_id": "bad-inf", "prediction": float("inf")}, _good(103)]
    good_ids += ["ok-100", "ok-103"]
    send(json.dumps({"schema_version": 1, "model": "m", "model_version": "1", "events": nan_batch}).encode())
    send(encode_event({"model": "m", "model_version": "1", "event_id": "bad-missing", "timestamp": 1.0,
                       "features": {"x": 1.0}}))                                       # missing prediction
    send(orjson.dumps({"schema_version": 7, "model": "m", "event_id": "bad-version"}))  # unknown schema version
    send(encode_envelope("m", [_good(i) for i in range(1000, 1400)], "1"))            # oversized (> 20 kB)
    send(b"")                                                                          # empty
    good_batch(10, 10)
    assert producer.flush(30) == 0
    wait_until_applied(settings, worker)

    status = describe(settings, "m", "1")
    assert status["events"] == len(good_ids) == 22
    assert status["features"]["x"]["count"] == 22
    assert status["last_event_id"] == "ok-19"

    letters = read_topic(settings, settings.dead_letter_topic)
    reasons = sorted(letter["reason"].split(":")[0].split(" (")[0] for letter in letters)
    assert len(letters) == 8, reasons
    assert any(r.startswith("malformed JSON") for r in reasons)
    assert any(r.startswith("oversized message") for r in reasons)
    by_id = {letter["event_id"]: letter for letter in letters if letter["event_id"]}
    assert "wrong type" in by_id["bad-type"]["reason"]
    assert "not finite" in by_id["bad-nan"]["reason"]
    assert "'prediction'" in by_id["bad-inf"]["reason"]
    assert "missing field 'prediction'" in by_id["bad-missing"]["reason"]
    assert any("unsupported schema_version 7" in letter["reason"] for letter in letters)
    for letter in letters:
        assert letter["source"]["topic"] == settings.inference_topic
        assert letter["worker"] == settings.app_id
    assert worker.alive()
