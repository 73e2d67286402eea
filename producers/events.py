"""The event contract: what model servers and label sources write to Kafka.

A Kafka message holds one event, or a batch envelope of events of one model.
The message key is the model id, so one model's events keep their order
within a partition. Version 1 of the schema:

Inference event (topic ``driftline.inference`` by default)::

    {"schema_version": 1, "kind": "inference",
     "model": "fraud", "model_version": "3", "event_id": "e-1",
     "timestamp": 1764158400.0,            # epoch seconds, or ISO-8601 text
     "features": {"amount": 12.5, "country": "FR", "new_user": true, "age": null},
     "prediction": 1,                      # number, text or boolean
     "score": 0.91}                        # optional: number, or {class: probability}

Batch envelope: the fields shared by every event sit at the top, the events
in ``events``; an event may override ``model_version``::

    {"schema_version": 1, "kind": "inference", "model": "fraud", "model_version": "3",
     "events": [{"event_id": "e-1", "timestamp": ..., "features": {...}, "prediction": 1}, ...]}

Label event (topic ``driftline.labels``), single or batched alike::

    {"schema_version": 1, "kind": "label", "model": "fraud", "event_id": "e-1",
     "label": 0, "timestamp": 1764158460.0}

Feature values are numbers (numeric), text (categorical), booleans, or null
(missing). NaN and infinity are not valid JSON: a message holding one is not
JSON and is rejected whole. Numbers (features, prediction, score, label,
timestamp) must lie within ±``MAX_ABS_NUMBER`` (1e15), so that no statistic
can overflow; an event with a larger one is rejected alone.

Every rejection carries a machine-readable ``code`` (one of ``REASON_CODES``)
and a human-readable ``reason``. A message that is not a JSON object of the
contract is rejected whole (codes ``empty``, ``oversized``, ``malformed_json``,
``invalid_utf8``, ``too_deep``, ``out_of_range``, ``not_an_object``,
``schema_version``, ``unknown_kind``, ``bad_envelope``); inside a valid
envelope each event is checked on its own (``not_an_object``,
``missing_field``, ``wrong_type``, ``out_of_range``, ``timestamp``,
``name_too_long``), so one bad event never costs its neighbours. Events of an
envelope past ``max_events`` become one ``too_many_events`` rejection with
their ``count``. The other bounds (``BOUND_CODES``) are the worker's
(``stream_processors.bounds``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain, repeat
from operator import itemgetter

import orjson

__all__ = [
    "MAX_ABS_NUMBER",
    "features_within_range",
    "BOUND_CODES",
    "REASON_CODES",
    "SCHEMA_VERSION",
    "DecodedMessage",
    "Rejection",
    "decode_message",
    "encode_envelope",
    "encode_event",
]

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
KINDS = ("inference", "label")
MAX_ID_LENGTH = 256
# the largest magnitude a number may have: far beyond any feature, and squares of a billion such values still
# sum without overflowing a float64
MAX_ABS_NUMBER = 1e15
REASON_CODES = ("empty", "oversized", "malformed_json", "invalid_utf8", "too_deep", "out_of_range",
                "not_an_object", "schema_version", "unknown_kind", "bad_envelope", "missing_field", "wrong_type",
                "timestamp", "apply_failed", "model_mismatch", "too_many_versions", "too_many_models",
                "too_many_features", "name_too_long", "too_many_events", "wrong_partition", "too_many_classes",
                "reserved_name", "duplicate_label")
BOUND_CODES = ("model_mismatch", "too_many_versions", "too_many_models", "too_many_features", "name_too_long",
               "too_many_events", "wrong_partition", "too_many_classes", "reserved_name")
"""The reason codes of bounds on what a producer can create (``driftline_bounds_hit_total{bound}``)."""
_EXCERPT = 2048
_NUMBERS = frozenset({int, float})
_FEATURE_TYPES = frozenset({int, float, str, bool, type(None)})
_SCALARS = frozenset({int, float, bool})
_FLOATS = frozenset({float})
_TEXT = frozenset({str})
_OBJECTS = frozenset({dict})
_NONE = frozenset({type(None)})
_VERSION_TYPES = frozenset({str, int})
COLUMN_CHECKS_FROM = 32
"""Envelopes of fewer events are checked event by event: a column check has a fixed cost of about eight events,
and an envelope that fails it (a bad event in it) is checked again event by event, at most about 1.7 times the
cost of the event by event checks alone."""


@dataclass(frozen=True)
class Rejection:
    """An event (or a whole message) that could not be used, and why.

    ``code`` is one of ``REASON_CODES``: what dead letters are counted by (the ``reason`` label of
    ``driftline_events_rejected_total``); ``reason`` is the text for people and is never parsed.
    """

    code: str
    reason: str
    model: str | None = None
    event_id: str | None = None
    excerpt: str = ""
    count: int = 1
    """How many events this rejection stands for: more than one only for a run of events refused together
    (``too_many_events`` past the per-message cap, ``too_many_versions``/``too_many_models`` per message)."""

    def __post_init__(self) -> None:
        if self.code not in REASON_CODES:
            raise ValueError(f"unknown rejection code {self.code!r}; add it to REASON_CODES")


@dataclass
class DecodedMessage:
    """The valid events of one Kafka message and the rejections among them.

    Valid inference events are dicts with ``model``, ``model_version``,
    ``event_id``, ``timestamp`` (float epoch seconds), ``features``,
    ``prediction`` and ``score`` (or None). Valid label events have
    ``model``, ``event_id``, ``label`` and ``timestamp``.
    """

    kind: str | None = None
    events: list[dict] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def encode_event(event: dict, kind: str = "inference") -> bytes:
    """One event as a Kafka message value."""
    return orjson.dumps({"schema_version": SCHEMA_VERSION, "kind": kind, **event})


def encode_envelope(model: str, events: list[dict], model_version: str | None = None,
                    kind: str = "inference") -> bytes:
    """A batch envelope of events of one model as a Kafka message value."""
    head: dict = {"schema_version": SCHEMA_VERSION, "kind": kind, "model": model}
    if model_version is not None:
        head["model_version"] = model_version
    head["events"] = events
    return orjson.dumps(head)


def decode_message(raw: bytes | None, max_bytes: int, check_feature_range: bool = True,
                   max_events: int | None = None, max_name_length: int = MAX_ID_LENGTH) -> DecodedMessage:
    """Parse and validate one Kafka message; never raises, whatever the bytes.

    ``check_feature_range=False`` leaves the ±MAX_ABS_NUMBER check of feature values to the caller: the worker
    does it on whole columns at once (``ModelState``), which costs far less than a check per event.
    ``max_events``: events of an envelope past this many are not validated; they become one ``too_many_events``
    rejection whose ``count`` says how many they were. ``max_name_length``: longer ``model``, ``model_version``
    or ``event_id`` values are rejected (``name_too_long``).

    The events of an envelope are checked column by column (``_envelope_events``) and, only when one of them is not
    valid, one by one: the outcome is the same, and decoding a valid envelope costs about 0.6 of what it did.
    """
    if not raw:
        return DecodedMessage(rejections=[Rejection("empty", "empty message (no value)")])
    if len(raw) > max_bytes:
        return DecodedMessage(rejections=[Rejection(
            "oversized", f"oversized message: {len(raw)} bytes, the limit is {max_bytes}", excerpt=_excerpt(raw))])
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        code, what = _json_error(str(exc), raw[exc.pos:exc.pos + 9] if isinstance(exc.pos, int) else b"")
        return DecodedMessage(rejections=[Rejection(code, f"{what}: {exc}", excerpt=_excerpt(raw))])
    if not isinstance(doc, dict):
        return DecodedMessage(rejections=[Rejection(
            "not_an_object", f"message is a JSON {type(doc).__name__}, expected an object", excerpt=_excerpt(raw))])
    version = doc.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        return DecodedMessage(rejections=[Rejection(
            "schema_version",
            f"unsupported schema_version {_short(version)}; this worker reads {sorted(SUPPORTED_SCHEMA_VERSIONS)}",
            model=_str_or_none(doc.get("model")), excerpt=_excerpt(raw))])
    kind = doc.get("kind", "inference")
    if kind not in KINDS:
        return DecodedMessage(rejections=[Rejection(
            "unknown_kind", f"unknown kind {_short(kind)}; expected one of {list(KINDS)}", excerpt=_excerpt(raw))])
    if kind == "label":
        def validate(event: dict) -> dict | Rejection:
            return _validate_label(event, max_name_length)
    else:
        def validate(event: dict) -> dict | Rejection:
            return _validate_inference(event, check_feature_range, max_name_length)
    out = DecodedMessage(kind=kind)
    if "events" in doc:
        events = doc["events"]
        if not isinstance(events, list):
            out.rejections.append(Rejection("bad_envelope", "envelope field 'events' must be a list",
                                            model=_str_or_none(doc.get("model")), excerpt=_excerpt(raw)))
            return out
        shared = {k: v for k, v in doc.items() if k not in ("events", "schema_version", "kind")}
        if max_events is not None and len(events) > max_events:
            excess = events[max_events:]
            events = events[:max_events]
            first = excess[0]
            out.rejections.append(Rejection(
                "too_many_events", f"{len(excess)} events past the first {max_events} of the message were not "
                f"applied (at most {max_events} events per message)", model=_str_or_none(shared.get("model")),
                event_id=_str_or_none(first.get("event_id")) if isinstance(first, dict) else None,
                excerpt=_excerpt(dumped(first)), count=len(excess)))
        fast = _envelope_events(kind, events, shared, check_feature_range, max_name_length) \
            if len(events) >= COLUMN_CHECKS_FROM else None
        if fast is not None:
            out.events = fast
            return out
        for event in events:
            if not isinstance(event, dict):
                out.rejections.append(Rejection("not_an_object",
                                                f"event is a JSON {type(event).__name__}, expected an object",
                                                model=_str_or_none(shared.get("model")),
                                                excerpt=_excerpt(dumped(event))))
                continue
            _collect(validate({**shared, **event}), out)
    else:
        _collect(validate(doc), out)
    return out


def _envelope_events(kind: str, events: list, shared: dict, check_feature_range: bool,
                     max_name_length: int) -> list[dict] | None:
    """The decoded events of an envelope when every one of them is valid, else None (the per-event path then names
    the culprits and keeps the others).

    The same checks as ``_validate_inference`` and ``_validate_label`` on ``{**shared, **event}``, made column by
    column at a few C-speed passes per field (type sets, min and max) instead of a function call per event: the
    checks cost about a third of what they would one by one.
    """
    if frozenset(map(type, events)) != _OBJECTS:
        return None
    n = len(events)

    def column(name: str) -> list:
        if name in events[0]:  # every event has it, mostly: itemgetter is faster than dict.get with a default
            try:
                return list(map(itemgetter(name), events))
            except KeyError:
                pass
        return list(map(dict.get, events, repeat(name, n), repeat(shared.get(name), n)))

    models = column("model")
    if not _names_valid(models, shared.get("model"), max_name_length):
        return None
    ids = column("event_id")
    if frozenset(map(type, ids)) != _TEXT or not all(ids) or max(map(len, ids)) > max_name_length:
        return None
    timestamps = _timestamps(column("timestamp"))
    if timestamps is None:
        return None
    if kind == "label":
        labels = column("label")
        if not _scalars_valid(labels, "label"):
            return None
        return [{"model": model, "event_id": event_id, "label": label, "timestamp": timestamp}
                for model, event_id, label, timestamp in zip(models, ids, labels, timestamps)]
    versions = _versions(column("model_version"), shared.get("model_version"), max_name_length)
    if versions is None:
        return None
    features = column("features")
    if frozenset(map(type, features)) != _OBJECTS or \
            not _FEATURE_TYPES.issuperset(map(type, chain.from_iterable(map(dict.values, features)))) or \
            (check_feature_range and not all(map(_within_range, map(dict.values, features)))):
        return None
    predictions = column("prediction")
    if not _scalars_valid(predictions, "prediction"):
        return None
    scores = column("score")
    types = frozenset(map(type, scores))
    if types <= _NUMBERS:
        if not -MAX_ABS_NUMBER <= min(scores) or not max(scores) <= MAX_ABS_NUMBER:
            return None
    elif not types <= _NONE and any(s is not None and _score_problem(s) for s in scores):
        return None
    return [{"model": model, "model_version": version, "event_id": event_id, "timestamp": timestamp,
             "features": values, "prediction": prediction, "score": score}
            for model, version, event_id, timestamp, values, prediction, score
            in zip(models, versions, ids, timestamps, features, predictions, scores)]


def _names_valid(names: list, shared: object, max_name_length: int) -> bool:
    """Are all ``names`` non-empty strings of at most ``max_name_length`` characters? (Mostly the envelope's.)"""
    if type(shared) is str and names.count(shared) == len(names):
        distinct: Iterable = (shared,)
    elif frozenset(map(type, names)) == _TEXT:
        distinct = frozenset(names)
    else:
        return False
    return all(0 < len(name) <= max_name_length for name in distinct)


def _versions(versions: list, shared: object, max_name_length: int) -> list | None:
    """The column of model versions as ``_validate_inference`` leaves them (integers as text), or None when one is
    not valid."""
    if type(shared) is str and versions.count(shared) == len(versions):
        return versions if 0 < len(shared) <= max_name_length else None
    types = frozenset(map(type, versions))
    if types == _TEXT:
        return versions if _names_valid(versions, None, max_name_length) else None
    if not types <= _VERSION_TYPES:
        return None
    texts = [v if type(v) is str else str(v) for v in versions]
    if any(type(v) is int and abs(v) > MAX_ABS_NUMBER for v in versions) or \
            not _names_valid(texts, None, max_name_length):
        return None
    return texts


def _timestamps(values: list) -> list | None:
    """The column of timestamps as epoch seconds (``_timestamp``), or None when one is not valid."""
    types = frozenset(map(type, values))
    if types <= _NUMBERS:
        if not 0 <= min(values) or not max(values) <= MAX_ABS_NUMBER:
            return None
        return values if types == _FLOATS else list(map(float, values))
    seconds = list(map(_timestamp, values))
    return None if Rejection in frozenset(map(type, seconds)) else seconds


def _scalars_valid(values: list, name: str) -> bool:
    """Are all ``values`` (predictions or labels) numbers in range, strings or booleans (``_scalar_problem``)?"""
    types = frozenset(map(type, values))
    if types <= _SCALARS:
        return -MAX_ABS_NUMBER <= min(values) and max(values) <= MAX_ABS_NUMBER
    if types == _TEXT:
        return True
    return type(None) not in types and not any(_scalar_problem(name, value) for value in values)


def _json_error(message: str, at: bytes) -> tuple[str, str]:
    """The reason code of a document orjson refused, from its message and the bytes where it stopped."""
    if at.startswith((b"NaN", b"Infinity", b"-Infinity")):
        return "out_of_range", "malformed JSON (NaN and infinity are not JSON numbers)"
    if "depth limit" in message or "recursion" in message:
        return "too_deep", "malformed JSON (nested too deeply)"
    if "infinity" in message or "too large" in message:
        return "out_of_range", "malformed JSON (a number out of range)"
    if "UTF-8" in message or "surrogate" in message:
        return "invalid_utf8", "malformed JSON (not valid UTF-8 text)"
    return "malformed_json", "malformed JSON"


def _collect(result: dict | Rejection, out: DecodedMessage) -> None:
    if isinstance(result, Rejection):
        out.rejections.append(result)
    else:
        out.events.append(result)


def _validate_common(event: dict, max_name_length: int) -> Rejection | tuple[str, str, float]:
    model = event.get("model")
    event_id = event.get("event_id")
    ident = event_id if isinstance(event_id, str) else None
    model_name = model if isinstance(model, str) else None
    for name, value in (("model", model), ("event_id", event_id)):
        if value is None:
            return _reject("missing_field", f"missing field '{name}'", event, model_name, ident)
        if not isinstance(value, str) or not value:
            return _reject("wrong_type", f"wrong type: '{name}' must be a non-empty string, got "
                           f"{_describe(value)}", event, model_name, ident)
        if len(value) > max_name_length:
            return _reject("name_too_long", f"'{name}' is {len(value)} characters long; at most {max_name_length}",
                           event, None, None)
    timestamp = _timestamp(event.get("timestamp"))
    if isinstance(timestamp, Rejection):
        return _reject(timestamp.code, timestamp.reason, event, model, event_id)
    return model, event_id, timestamp


def _validate_inference(event: dict, check_feature_range: bool = True,
                        max_name_length: int = MAX_ID_LENGTH) -> dict | Rejection:
    common = _validate_common(event, max_name_length)
    if isinstance(common, Rejection):
        return common
    model, event_id, timestamp = common
    version = event.get("model_version")
    if not isinstance(version, str) or not version:
        if type(version) is int and abs(version) <= MAX_ABS_NUMBER:
            version = str(version)
        elif version is None:
            return _reject("missing_field", "missing field 'model_version'", event, model, event_id)
        else:
            return _reject("wrong_type", f"wrong type: 'model_version' must be a non-empty string, got "
                           f"{_describe(version)}", event, model, event_id)
    if len(version) > max_name_length:
        return _reject("name_too_long", f"'model_version' is {len(version)} characters long; at most "
                       f"{max_name_length}", event, model, event_id)
    features = event.get("features")
    if not isinstance(features, dict):
        if features is None:
            return _reject("missing_field", "missing field 'features'", event, model, event_id)
        return _reject("wrong_type", f"wrong type: 'features' must be an object, got {_describe(features)}",
                       event, model, event_id)
    # The common case is checked at C speed; the loop below only runs to name the culprit.
    values = features.values()
    if not _FEATURE_TYPES.issuperset(map(type, values)) or (check_feature_range and not _within_range(values)):
        for name, value in features.items():
            if value is None or type(value) is str or type(value) is bool:
                continue
            if type(value) not in _NUMBERS:
                return _reject("wrong_type", f"wrong type: feature {_short(name)} must be a number, string, "
                               f"boolean or null, got {_describe(value)}", event, model, event_id)
            if not -MAX_ABS_NUMBER <= value <= MAX_ABS_NUMBER:
                return _reject("out_of_range", f"feature {_short(name)} is out of range ({_short(value)}); "
                               f"numbers must lie within ±{MAX_ABS_NUMBER:g}", event, model, event_id)
    prediction = event.get("prediction")
    if prediction is None:
        return _reject("missing_field", "missing field 'prediction'", event, model, event_id)
    problem = _scalar_problem("prediction", prediction)
    if problem:
        return _reject(*problem, event, model, event_id)
    score = event.get("score")
    if score is not None:
        problem = _score_problem(score)
        if problem:
            return _reject(*problem, event, model, event_id)
    return {"model": model, "model_version": version, "event_id": event_id, "timestamp": timestamp,
            "features": features, "prediction": prediction, "score": score}


def _validate_label(event: dict, max_name_length: int = MAX_ID_LENGTH) -> dict | Rejection:
    common = _validate_common(event, max_name_length)
    if isinstance(common, Rejection):
        return common
    model, event_id, timestamp = common
    label = event.get("label")
    if label is None:
        return _reject("missing_field", "missing field 'label'", event, model, event_id)
    problem = _scalar_problem("label", label)
    if problem:
        return _reject(*problem, event, model, event_id)
    return {"model": model, "event_id": event_id, "label": label, "timestamp": timestamp}


def features_within_range(features: dict) -> bool:
    """Are all numeric values of a features object within ±MAX_ABS_NUMBER?"""
    return _within_range(features.values())


def _within_range(values) -> bool:
    numbers = [v for v in values if type(v) is float or type(v) is int]
    return not numbers or (-MAX_ABS_NUMBER <= min(numbers) and max(numbers) <= MAX_ABS_NUMBER)


def _scalar_problem(name: str, value: object) -> tuple[str, str] | None:
    """(code, reason) when a prediction or label is not a number in range, a string or a boolean."""
    if type(value) in _NUMBERS:
        if -MAX_ABS_NUMBER <= value <= MAX_ABS_NUMBER:
            return None
        return "out_of_range", f"'{name}' is out of range ({_short(value)}); numbers must lie within " \
                               f"±{MAX_ABS_NUMBER:g}"
    if type(value) is str or type(value) is bool:
        return None
    return "wrong_type", f"wrong type: '{name}' must be a number, string or boolean, got {_describe(value)}"


def _score_problem(score: object) -> tuple[str, str] | None:
    if type(score) in _NUMBERS:
        if -MAX_ABS_NUMBER <= score <= MAX_ABS_NUMBER:
            return None
        probabilities = [score]
    elif isinstance(score, dict) and all(type(p) in _NUMBERS for p in score.values()):
        probabilities = list(score.values())
        if all(-MAX_ABS_NUMBER <= p <= MAX_ABS_NUMBER for p in probabilities):
            return None
    else:
        return "wrong_type", f"wrong type: 'score' must be a number or an object of class probabilities, " \
                             f"got {_describe(score)}"
    return "out_of_range", f"'score' is out of range; numbers must lie within ±{MAX_ABS_NUMBER:g}"


def _timestamp(value: object) -> float | Rejection:
    """Epoch seconds, or why the value is not a timestamp."""
    if value is None:
        return Rejection("missing_field", "missing field 'timestamp'")
    if type(value) in _NUMBERS:
        if 0 <= value <= MAX_ABS_NUMBER:
            return float(value)
        return Rejection("timestamp", f"timestamp is not a non-negative number within {MAX_ABS_NUMBER:g} "
                                      f"({_short(value)})")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return Rejection("timestamp", f"timestamp {value[:64]!r} is not ISO-8601")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        seconds = parsed.timestamp()
        if seconds < 0:
            return Rejection("timestamp", f"timestamp {value[:64]!r} is before 1970")
        return seconds
    return Rejection("wrong_type", f"wrong type: 'timestamp' must be epoch seconds or ISO-8601 text, "
                                   f"got {_describe(value)}")


def _reject(code: str, reason: str, event: dict, model: object, event_id: object) -> Rejection:
    return Rejection(code, reason, model=_str_or_none(model), event_id=_str_or_none(event_id),
                     excerpt=_excerpt(dumped(event)))


def dumped(value: object) -> bytes:
    """JSON of a decoded value, for an excerpt; never raises. orjson reads 1024 levels of nesting but writes 255
    (and Python's repr stops near 1000): deeper containers are written as "[…]" or "{…}" past 200 levels."""
    try:
        return orjson.dumps(value, default=str)
    except (TypeError, RecursionError):
        return orjson.dumps(_cut(value, _EXCERPT_DEPTH), default=str)


_EXCERPT_DEPTH = 200


def _cut(value: object, depth: int) -> object:
    if type(value) is dict:
        return {k: _cut(v, depth - 1) for k, v in value.items()} if depth else "{…}"
    if type(value) is list:
        return [_cut(v, depth - 1) for v in value] if depth else "[…]"
    return value


def _short(value: object) -> str:
    """A value for a reason text: bounded in length, whatever a producer sent."""
    try:
        text = repr(value)
    except RecursionError:  # nested about a thousand levels deep
        text = dumped(value)[:80].decode("utf-8", "replace")
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _excerpt(raw: bytes) -> str:
    return raw[:_EXCERPT].decode("utf-8", errors="replace")
