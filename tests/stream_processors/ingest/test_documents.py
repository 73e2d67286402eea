"""Driftline JSON and CloudEvent pairs become the events a worker accepts, or one clear refusal."""

from datetime import datetime, timezone

import orjson
import pytest

from producers.events import decode_message, encode_envelope
from stream_processors.ingest.cloudevents import CloudEvent
from stream_processors.ingest.documents import driftline_batches, half_rows, paired_batch, resolve_model
from stream_processors.ingest.errors import Rejected
from stream_processors.ingest.mapping import Mapping, ModelMapping

EVENT = {"model": "m", "model_version": "1", "event_id": "e1", "timestamp": 5.0, "features": {"x": 1.5},
         "prediction": 1}
LIMIT = 1 << 20  # a worker's max_message_bytes


@pytest.mark.parametrize("doc", [EVENT, [EVENT, {**EVENT, "event_id": "e2"}],
                                 {"model": "m", "model_version": "1", "events": [{**EVENT, "model": "m"}]}])
def test_one_event_a_list_or_an_envelope(doc):
    (batch,) = driftline_batches(orjson.dumps(doc), "inference", 10, max_message_bytes=LIMIT)
    assert (batch.kind, batch.model, batch.version) == ("inference", "m", "1")
    # what is produced decodes, in the worker, to the same events
    decoded = decode_message(encode_envelope(batch.model, batch.events, batch.version), 1 << 20)
    assert not decoded.rejections and [e["event_id"] for e in decoded.events] == [e["event_id"] for e in batch.events]


def test_events_of_two_models_are_two_batches_and_labels_have_no_version():
    batches = driftline_batches(orjson.dumps([EVENT, {**EVENT, "model": "n"}]), "inference", 10,
                                max_message_bytes=LIMIT)
    assert sorted(b.model for b in batches) == ["m", "n"]
    (labels,) = driftline_batches(orjson.dumps({"model": "m", "event_id": "e1", "label": 0, "timestamp": 6}),
                                  "label", 10, max_message_bytes=LIMIT)
    assert labels.version is None and labels.events == [{"event_id": "e1", "label": 0, "timestamp": 6.0}]


@pytest.mark.parametrize("body, reason, words", [
    (b"{oops", "bad_json", "not JSON"),
    (b"3", "bad_body", "JSON int"),
    (orjson.dumps({**EVENT, "kind": "label"}), "bad_body", "kind 'label'"),
    (orjson.dumps([EVENT, {**EVENT, "prediction": None}]), "invalid_event", "missing field 'prediction'"),
    (orjson.dumps({**EVENT, "features": {"x": [1]}}), "invalid_event", "feature 'x'"),
    (orjson.dumps([EVENT] * 11), "too_many_rows", "11 events"),
])
def test_refusals_name_the_problem(body, reason, words):
    with pytest.raises(Rejected) as exc:
        driftline_batches(body, "inference", 10, max_message_bytes=LIMIT)
    assert exc.value.reason == reason and words in exc.value.message


def ce(half, data, name="income", endpoint=None):
    return CloudEvent("id-7", half, "", "2026-11-26T10:00:00+00:00", name, endpoint, data)


def test_pair_ids_versions_and_timestamps():
    mapping = Mapping({"income": ModelMapping("income-model", "4", columns=("a", "b"))})
    req = half_rows(ce("request", {"instances": [[1, 2], [3, 4]]}), mapping, 10)
    res = half_rows(ce("response", {"predictions": [0, 1]}), mapping, 10)
    batch = paired_batch(req, res, *resolve_model(req, mapping), now=0.0, max_message_bytes=LIMIT)
    assert (batch.model, batch.version) == ("income-model", "4")
    assert [e["event_id"] for e in batch.events] == ["id-7-0", "id-7-1"]
    assert batch.events[1]["features"] == {"a": 3, "b": 4} and batch.events[1]["prediction"] == 1
    assert batch.events[0]["timestamp"] == datetime(2026, 11, 26, 10, tzinfo=timezone.utc).timestamp()
    one = paired_batch(half_rows(ce("request", {"instances": [[1]]}), Mapping(), 10),
                       half_rows(ce("response", {"predictions": [1]}), Mapping(), 10), "m", "1", now=0.0,
                     max_message_bytes=LIMIT)
    assert [e["event_id"] for e in one.events] == ["id-7"]


def test_version_falls_back_to_the_endpoint_then_1_and_strict_refuses_unknown_models():
    assert resolve_model(ce("request", {}, endpoint="canary"), Mapping()) == ("income", "canary")
    assert resolve_model(ce("request", {}), Mapping()) == ("income", "1")
    with pytest.raises(Rejected) as exc:
        resolve_model(ce("request", {}), Mapping({}, strict=True))
    assert exc.value.status == 422 and "income" in exc.value.message
    with pytest.raises(Rejected) as exc:
        paired_batch(half_rows(ce("request", {"instances": [[1], [2]]}), Mapping(), 10),
                     half_rows(ce("response", {"predictions": [1]}), Mapping(), 10), "m", "1", now=0.0,
                     max_message_bytes=LIMIT)
    assert exc.value.reason == "row_mismatch"


def test_an_event_a_worker_would_dead_letter_as_oversized_is_refused_with_413():
    def event(eid, chars):
        return {**EVENT, "event_id": eid, "features": {"x": 1.5, "note": "n" * chars}}

    (empty,) = driftline_batches(orjson.dumps(event("big", 0)), "inference", 10, max_message_bytes=LIMIT)
    room = LIMIT - len(encode_envelope("m", empty.events, "1"))  # "note" this long: a message of exactly LIMIT
    (batch,) = driftline_batches(orjson.dumps([event("small", 10), event("big", room)]), "inference", 10,
                                 max_message_bytes=LIMIT)
    assert len(encode_envelope("m", batch.events[1:], "1")) == LIMIT
    assert not decode_message(encode_envelope("m", batch.events[1:], "1"), LIMIT).rejections
    with pytest.raises(Rejected) as exc:
        driftline_batches(orjson.dumps([event("small", 10), event("big", room + 1)]), "inference", 10,
                          max_message_bytes=LIMIT)
    assert (exc.value.status, exc.value.reason) == (413, "event_too_large")
    assert f"'big' takes {LIMIT + 1} bytes" in exc.value.message
    with pytest.raises(Rejected, match="event_too_large|takes"):
        paired_batch(half_rows(ce("request", {"instances": [{"a": "v" * LIMIT}]}), Mapping(), 10),
                     half_rows(ce("response", {"predictions": [1]}), Mapping(), 10), "m", "1", now=0.0,
                     max_message_bytes=LIMIT)


def test_values_nested_deeper_than_json_can_be_written_back_are_400_not_500():
    deep = b"[" * 300 + b"1" + b"]" * 300
    body = b'{"model": "m", "event_id": "e", "timestamp": 1, "prediction": 0, "features": {"x": ' + deep + b"}}"
    with pytest.raises(Rejected, match="nested too deeply") as exc:
        driftline_batches(body, "inference", 10, max_message_bytes=LIMIT)
    assert exc.value.status == 400
    request = orjson.loads(b'{"instances": [{"x": ' + deep + b"}]}")
    with pytest.raises(Rejected, match="nested too deeply"):
        paired_batch(half_rows(ce("request", request), Mapping(), 10),
                     half_rows(ce("response", {"predictions": [1]}), Mapping(), 10), "m", "1", now=0.0,
                     max_message_bytes=LIMIT)
