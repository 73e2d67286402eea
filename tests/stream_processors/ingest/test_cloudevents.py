"""KServe's CloudEvents in binary and structured mode parse to the same event."""

import base64

import orjson
import pytest

from stream_processors.ingest.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, parse_cloudevent
from stream_processors.ingest.errors import Rejected

DATA = {"instances": [[1.0, 2.0]]}


def binary_headers(type_=REQUEST_TYPE):
    return {"content-type": "application/json", "ce-id": "abc", "ce-type": type_, "ce-specversion": "1.0",
            "ce-source": "http://localhost:9081/", "ce-inferenceservicename": "income", "ce-endpoint": "canary",
            "ce-time": "2026-11-26T10:00:00Z"}


def test_binary_and_structured_modes_agree():
    binary = parse_cloudevent(binary_headers(), orjson.dumps(DATA))
    attrs = {k[3:]: v for k, v in binary_headers().items() if k.startswith("ce-")}
    structured = parse_cloudevent({"content-type": "application/cloudevents+json; charset=utf-8"},
                                  orjson.dumps({**attrs, "data": DATA}))
    encoded = parse_cloudevent({"content-type": "application/cloudevents+json"},
                               orjson.dumps({**attrs, "data_base64": base64.b64encode(orjson.dumps(DATA)).decode()}))
    assert binary == structured == encoded
    assert (binary.id, binary.half, binary.inferenceservicename, binary.endpoint) == ("abc", "request", "income",
                                                                                      "canary")
    assert parse_cloudevent(binary_headers(RESPONSE_TYPE), b'{"predictions": [1]}').half == "response"


@pytest.mark.parametrize("headers, body, reason, words", [
    ({"content-type": "application/json"}, b"{}", "bad_cloudevent", "no ce-* headers"),
    ({**binary_headers(), "ce-type": "com.example.other"}, b"{}", "bad_cloudevent", "com.example.other"),
    ({k: v for k, v in binary_headers().items() if k != "ce-id"}, b"{}", "bad_cloudevent", "'id'"),
    (binary_headers(), b"{not json", "bad_json", "not JSON"),
    ({"content-type": "application/cloudevents+json"}, b"[1]", "bad_cloudevent", "JSON object"),
    ({"content-type": "application/cloudevents-batch+json"}, b"[]", "unsupported_media_type", "batched"),
])
def test_malformed_cloudevents_are_refused(headers, body, reason, words):
    with pytest.raises(Rejected) as exc:
        parse_cloudevent(headers, body)
    assert exc.value.reason == reason and words in exc.value.message


def test_attributes_that_are_not_utf8_are_refused_before_anything_is_held():
    # aiohttp hands on a header byte that is not UTF-8 as a lone surrogate
    for name in ("ce-inferenceservicename", "ce-id", "ce-endpoint"):
        with pytest.raises(Rejected) as exc:
            parse_cloudevent({**binary_headers(), name: "income\udcff"}, orjson.dumps(DATA))
        assert exc.value.status == 400 and "not UTF-8" in exc.value.message
        orjson.dumps({"error": exc.value.message})  # the refusal itself can be answered in JSON
    assert parse_cloudevent({**binary_headers(), "ce-inferenceservicename": "revenu-modèle"},
                            orjson.dumps(DATA)).inferenceservicename == "revenu-modèle"


def test_the_size_of_an_event_is_its_body():
    body = orjson.dumps(DATA)
    assert parse_cloudevent(binary_headers(), body).size == len(body)
