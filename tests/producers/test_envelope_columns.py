"""Envelopes are checked column by column (``producers.events``, ``EventBounds.all_within``): against the event by
event checks they replace, over random envelopes mixing valid events with every kind of invalid field.

The oracle is ``decode_message`` as it was before the column check (a copy below) on the module's per-event
validators, and ``EventBounds.problem`` per event: the same events (values, types and key order), the same
rejections in the same order, the same verdict on bounds.
"""

import random

import orjson
import pytest

from producers import events as ev
from producers.events import DecodedMessage, Rejection, decode_message
from stream_processors.bounds import EventBounds, message_owner

LIMIT = 1 << 22


def _reference_decode(raw, max_bytes, check_feature_range=True, max_events=None, max_name_length=ev.MAX_ID_LENGTH):
    """``decode_message`` before envelopes were checked by column: each event merged with the shared fields, then
    validated on its own."""
    if not raw:
        return DecodedMessage(rejections=[Rejection("empty", "empty message (no value)")])
    if len(raw) > max_bytes:
        return DecodedMessage(rejections=[Rejection(
            "oversized", f"oversized message: {len(raw)} bytes, the limit is {max_bytes}", excerpt=ev._excerpt(raw))])
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        code, what = ev._json_error(str(exc), raw[exc.pos:exc.pos + 9] if isinstance(exc.pos, int) else b"")
        return DecodedMessage(rejections=[Rejection(code, f"{what}: {exc}", excerpt=ev._excerpt(raw))])
    if not isinstance(doc, dict):
        return DecodedMessage(rejections=[Rejection(
            "not_an_object", f"message is a JSON {type(doc).__name__}, expected an object",
            excerpt=ev._excerpt(raw))])
    version = doc.get("schema_version")
    if type(version) is not int or version not in ev.SUPPORTED_SCHEMA_VERSIONS:
        return DecodedMessage(rejections=[Rejection(
            "schema_version",
            f"unsupported schema_version {ev._short(version)}; this worker reads "
            f"{sorted(ev.SUPPORTED_SCHEMA_VERSIONS)}", model=ev._str_or_none(doc.get("model")),
            excerpt=ev._excerpt(raw))])
    kind = doc.get("kind", "inference")
    if kind not in ev.KINDS:
        return DecodedMessage(rejections=[Rejection(
            "unknown_kind", f"unknown kind {ev._short(kind)}; expected one of {list(ev.KINDS)}",
            excerpt=ev._excerpt(raw))])
    if kind == "label":
        def validate(event):
            return ev._validate_label(event, max_name_length)
    else:
        def validate(event):
            return ev._validate_inference(event, check_feature_range, max_name_length)
    out = DecodedMessage(kind=kind)
    if "events" in doc:
        events = doc["events"]
        if not isinstance(events, list):
            out.rejections.append(Rejection("bad_envelope", "envelope field 'events' must be a list",
                                            model=ev._str_or_none(doc.get("model")), excerpt=ev._excerpt(raw)))
            return out
        shared = {k: v for k, v in doc.items() if k not in ("events", "schema_version", "kind")}
        if max_events is not None and len(events) > max_events:
            excess = events[max_events:]
            events = events[:max_events]
            first = excess[0]
            out.rejections.append(Rejection(
                "too_many_events", f"{len(excess)} events past the first {max_events} of the message were not "
                f"applied (at most {max_events} events per message)", model=ev._str_or_none(shared.get("model")),
                event_id=ev._str_or_none(first.get("event_id")) if isinstance(first, dict) else None,
                excerpt=ev._excerpt(orjson.dumps(first)), count=len(excess)))
        for event in events:
            if not isinstance(event, dict):
                out.rejections.append(Rejection("not_an_object",
                                                f"event is a JSON {type(event).__name__}, expected an object",
                                                model=ev._str_or_none(shared.get("model")),
                                                excerpt=ev._excerpt(orjson.dumps(event))))
                continue
            ev._collect(validate({**shared, **event}), out)
    else:
        ev._collect(validate(doc), out)
    return out


_LONG_NAME, _LONG_TEXT = "n" * 257, "t" * 1025
# (field, value) of every kind: valid ones (the column check must accept what the event check accepts) and
# invalid ones (it must refuse them all)
_VALUES = {
    "event_id": ["x", "", None, 7, True, [], {}, "i" * 256, _LONG_NAME],
    "model": ["m", "other", "", None, 3, False, ["m"], "m" * 256, _LONG_NAME],
    "model_version": ["1", "2", 3, 0, -4, True, 1.5, None, "", 10 ** 16, [1], "v" * 256, _LONG_NAME, 2 ** 63],
    "timestamp": [0, 12, 1.5, 1e15, 1e15 * 1.0001, -1, -0.5, 10 ** 16, True, None, "", "yesterday", [],
                  "2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05", "1960-01-01T00:00:00", {"a": 1}],
    "prediction": [0, 1, 1.5, -2, "yes", "", True, False, None, 1e16, -1e16, 2 ** 63, [1], {"a": 1}, _LONG_TEXT],
    "score": [0.5, 1, None, -1e15, 1e16, "high", True, [0.5], {"a": 0.5, "b": 0.5}, {"a": "x"}, {"a": 1e16},
              {"a": True}, {}, {_LONG_TEXT: 0.5}, {f"c{k}": 0.001 for k in range(1001)}],
    "feature": [1.0, -3, 0, "a", "", True, None, 1e15, -1e15, 1e16, -1e16, 2 ** 63, [1], {"a": 1}, _LONG_TEXT,
                "v" * 1024],
    "features": [None, [], "x", 1, {}, {"__prediction__": 1.0}, {"__score__": "a"}, {"__error__": None},
                 {"x" * 300: 1.0}, {f"f{k}": 1.0 for k in range(12)}],
}


def _valid_event(rng: random.Random, i: int) -> dict:
    return {"event_id": f"e{i}", "timestamp": 1_700_000_000.0 + i,
            "features": {"x": rng.gauss(0, 1), "n": rng.randint(-5, 5), "c": rng.choice("abc"),
                         "b": rng.random() < 0.5, "gone": None},
            "prediction": rng.choice([0, 1]), "score": rng.random()}


def _mutated(rng: random.Random, event: dict) -> object:
    what = rng.choice(["event_id", "model", "model_version", "timestamp", "prediction", "score", "feature",
                       "features", "drop", "drop", "extra", "not_an_object"])
    if what == "not_an_object":
        return rng.choice(["junk", 3, None, [], [event], True, 2.5])
    if what == "drop":
        event.pop(rng.choice(sorted(event)), None)
    elif what == "extra":
        event[rng.choice(["meta", "schema_version", "kind", "label"])] = rng.choice([1, "x", None, {"a": 1}])
    elif what == "feature":
        features = event.get("features")
        event["features"] = {**(features if isinstance(features, dict) else {}), rng.choice(["x", "c", "new"]): rng.choice(_VALUES["feature"])}
    else:
        event[what] = rng.choice(_VALUES[what])
    return event


def _message(rng: random.Random, serial: int) -> tuple[bytes, bytes | None]:
    """(value, key) of a random message: mostly envelopes of many events, some of them invalid."""
    kind = rng.choice(["inference"] * 4 + ["label"])
    shape = rng.random()
    first = ev.COLUMN_CHECKS_FROM
    n = 1 if shape < 0.1 else rng.randint(0, first - 1) if shape < 0.25 else rng.randint(first, first + 60)
    bad_rate = rng.choice([0.0, 0.0, 0.02, 0.2, 1.0])
    events = []
    for i in range(n):
        event = _valid_event(rng, serial * 1000 + i)
        if kind == "label":
            event = {"event_id": event["event_id"], "timestamp": event["timestamp"],
                     "label": rng.choice([0, 1, "yes", 1.5, True])}
        if rng.random() < bad_rate:
            event = _mutated(rng, event)
            if isinstance(event, dict) and rng.random() < 0.3:
                event = _mutated(rng, event)
        events.append(event)
    model = rng.choice(["m"] * 8 + ["other", None, 3, "", _LONG_NAME])
    key = rng.choice([b"m"] * 6 + [None, b"", b"other"])
    head: dict = {"schema_version": 1, "kind": kind}
    if model is not None:
        head["model"] = model
    if kind == "inference" and rng.random() < 0.9:
        head["model_version"] = rng.choice(["1"] * 5 + [2, True, "", None, _LONG_NAME])
    if rng.random() < 0.1:  # a field every event shares, or one no event reads
        field = rng.choice(["timestamp", "features", "prediction", "score", "event_id", "meta", "label"])
        head[field] = _valid_event(rng, 0).get(field, "shared")
    if n == 1 and shape < 0.1 and isinstance(events[0], dict):
        return orjson.dumps({**head, **events[0]}), key
    if rng.random() < 0.02:
        return orjson.dumps({**head, "events": rng.choice([{}, "x", None])}), key
    return orjson.dumps({**head, "events": events}), key


def _same(decoded: DecodedMessage, reference: DecodedMessage) -> None:
    assert decoded.kind == reference.kind
    # serialised: the values' types (1 and 1.0) and the keys' order count too (dead letters show events)
    assert orjson.dumps(decoded.events) == orjson.dumps(reference.events)
    assert decoded.events == reference.events
    assert decoded.rejections == reference.rejections


@pytest.mark.parametrize("seed", range(12))
def test_envelopes_decode_and_fit_the_bounds_as_event_by_event(seed):
    rng = random.Random(seed)
    bounds = EventBounds(max_features=10, max_name_length=256, max_category_length=1024,
                         partition_of=lambda model: len(model) % 3)
    fast_paths = 0
    for serial in range(400):
        raw, key = _message(rng, serial)
        options = {"check_feature_range": rng.random() < 0.5, "max_name_length": rng.choice([256, 256, 8]),
                   "max_events": rng.choice([None, None, 10_000, 20])}
        decoded = decode_message(raw, LIMIT, **options)
        reference = _reference_decode(raw, LIMIT, **options)
        _same(decoded, reference)
        events = reference.events
        owner = message_owner(key, events)
        partition = rng.choice([None, 0, 1, 2])
        within = bounds.all_within(events, owner, partition)
        assert within == (not any(bounds.problem(e, owner, partition) for e in events)), raw[:300]
        fast_paths += within and len(events) >= ev.COLUMN_CHECKS_FROM
    assert fast_paths > 10  # the column checks did run, and accepted


@pytest.mark.parametrize("field", sorted(_VALUES))
def test_each_invalid_value_in_one_event_of_a_long_envelope_is_found(field):
    """One event differs from 29 valid ones: the column check refuses exactly what the event check refuses."""
    rng = random.Random(field)
    bounds = EventBounds(max_features=10, max_name_length=256, max_category_length=1024)
    for value in _VALUES[field]:
        for kind in ("inference", "label"):
            events = [_valid_event(rng, i) for i in range(ev.COLUMN_CHECKS_FROM + 8)]
            if kind == "label":
                events = [{"event_id": e["event_id"], "timestamp": e["timestamp"], "label": 1} for e in events]
                if field in ("prediction", "score"):
                    field_here = "label"
                elif field in ("feature", "features", "model_version"):
                    continue
                else:
                    field_here = field
            else:
                field_here = field
            if field_here == "feature":
                events[13]["features"]["c"] = value
            else:
                events[13][field_here] = value
            raw = orjson.dumps({"schema_version": 1, "kind": kind, "model": "m", "model_version": "1",
                                "events": events})
            for check_range in (True, False):
                decoded = decode_message(raw, LIMIT, check_range)
                _same(decoded, _reference_decode(raw, LIMIT, check_range))
                owner = message_owner(b"m", decoded.events)
                assert bounds.all_within(decoded.events, owner) == \
                    (not any(bounds.problem(e, owner) for e in decoded.events)), (field_here, value)
