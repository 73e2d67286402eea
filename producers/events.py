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
(missing). NaN and infinity are not valid JSON and are rejected.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

__all__ = [
    "MAX_ABS_NUMBER",
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
MAX_ABS_NUMBER = 1e15  # larger magnitudes (and NaN, infinity) are rejected: statistics stay finite and exact
_EXCERPT = 2048
_SCALARS = (int, float, str, bool)
_FEATURE_TYPES = frozenset({int, float, str, bool, type(None)})


@dataclass(frozen=True)
class Rejection:
    """An event (or a whole message) that could not be used, and why."""

    reason: str
    model: str | None = None
    event_id: str | None = None
    excerpt: str = ""


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


def decode_message(raw: bytes | None, max_bytes: int) -> DecodedMessage:
    """Parse and validate one Kafka message; never raises on bad input."""
    if raw is None:
        return DecodedMessage(rejections=[Rejection("empty message (null value)")])
    if len(raw) > max_bytes:
        return DecodedMessage(rejections=[Rejection(
            f"oversized message: {len(raw)} bytes, the limit is {max_bytes}", excerpt=_excerpt(raw))])
    lenient = False
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = _lenient_loads(raw)
        if isinstance(doc, Rejection):
            return DecodedMessage(rejections=[doc])
        lenient = True  # only this parser lets NaN and infinity through
    if not isinstance(doc, dict):
        return DecodedMessage(rejections=[Rejection(
            f"message is a JSON {type(doc).__name__}, expected an object", excerpt=_excerpt(raw))])
    version = doc.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
        return DecodedMessage(rejections=[Rejection(
            f"unsupported schema_version {version!r}; this worker reads {sorted(SUPPORTED_SCHEMA_VERSIONS)}",
            model=_str_or_none(doc.get("model")), excerpt=_excerpt(raw))])
    kind = doc.get("kind", "inference")
    if kind not in KINDS:
        return DecodedMessage(rejections=[Rejection(
            f"unknown kind {kind!r}; expected one of {list(KINDS)}", excerpt=_excerpt(raw))])
    validate = _validate_inference if kind == "inference" else _validate_label
    out = DecodedMessage(kind=kind)
    if "events" in doc:
        events = doc["events"]
        if not isinstance(events, list):
            out.rejections.append(Rejection("envelope field 'events' must be a list",
                                             model=_str_or_none(doc.get("model")), excerpt=_excerpt(raw)))
            return out
        shared = {k: v for k, v in doc.items() if k not in ("events", "schema_version", "kind")}
        for event in events:
            if not isinstance(event, dict):
                out.rejections.append(Rejection(f"event is a JSON {type(event).__name__}, expected an object",
                                                model=_str_or_none(shared.get("model")),
                                                excerpt=_excerpt(orjson.dumps(event))))
                continue
            _collect(validate({**shared, **event}, lenient), out)
    else:
        _collect(validate(doc, lenient), out)
    return out


def _collect(result: dict | Rejection, out: DecodedMessage) -> None:
    if isinstance(result, Rejection):
        out.rejections.append(result)
    else:
        out.events.append(result)


def _lenient_loads(raw: bytes) -> object:
    # orjson refuses NaN/Infinity; the standard library reads them, so a batch
    # with one non-finite value loses only that event, not its neighbours.
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return Rejection(f"malformed JSON: {exc}", excerpt=_excerpt(raw))


def _validate_common(event: dict) -> Rejection | tuple[str, str, float]:
    model = event.get("model")
    event_id = event.get("event_id")
    ident = event_id if isinstance(event_id, str) else None
    model_name = model if isinstance(model, str) else None
    for name, value in (("model", model), ("event_id", event_id)):
        if value is None:
            return _reject(f"missing field '{name}'", event, model_name, ident)
        if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
            return _reject(f"wrong type: '{name}' must be a non-empty string of at most {MAX_ID_LENGTH} "
                           f"characters, got {_describe(value)}", event, model_name, ident)
    timestamp = _timestamp(event.get("timestamp"))
    if isinstance(timestamp, str):
        return _reject(timestamp, event, model, event_id)
    return model, event_id, timestamp


def _validate_inference(event: dict, lenient: bool) -> dict | Rejection:
    common = _validate_common(event)
    if isinstance(common, Rejection):
        return common
    model, event_id, timestamp = common
    version = event.get("model_version")
    if not isinstance(version, str) or not version or len(version) > MAX_ID_LENGTH:
        if isinstance(version, int) and not isinstance(version, bool):
            version = str(version)
        else:
            reason = "missing field 'model_version'" if version is None else \
                f"wrong type: 'model_version' must be a non-empty string, got {_describe(version)}"
            return _reject(reason, event, model, event_id)
    features = event.get("features")
    if not isinstance(features, dict):
        reason = "missing field 'features'" if features is None else \
            f"wrong type: 'features' must be an object, got {_describe(features)}"
        return _reject(reason, event, model, event_id)
    # The common case is checked at C speed; the loop below only runs to name the culprit.
    if lenient or not _FEATURE_TYPES.issuperset(map(type, features.values())):
        for name, value in features.items():
            if value is None:
                continue
            if not isinstance(value, _SCALARS):
                return _reject(f"wrong type: feature '{name}' must be a number, string, boolean or null, "
                               f"got {_describe(value)}", event, model, event_id)
            if isinstance(value, float) and not math.isfinite(value):
                return _reject(f"feature '{name}' is not finite ({value})", event, model, event_id)
    prediction = event.get("prediction")
    if prediction is None:
        return _reject("missing field 'prediction'", event, model, event_id)
    if not isinstance(prediction, _SCALARS) or (isinstance(prediction, float) and not math.isfinite(prediction)):
        return _reject(f"wrong type: 'prediction' must be a finite number, string or boolean, "
                       f"got {_describe(prediction)}", event, model, event_id)
    score = event.get("score")
    if score is not None and not _valid_score(score):
        return _reject("wrong type: 'score' must be a finite number or an object of class probabilities, "
                       f"got {_describe(score)}", event, model, event_id)
    return {"model": model, "model_version": version, "event_id": event_id, "timestamp": timestamp,
            "features": features, "prediction": prediction, "score": score}


def _validate_label(event: dict, lenient: bool) -> dict | Rejection:
    common = _validate_common(event)
    if isinstance(common, Rejection):
        return common
    model, event_id, timestamp = common
    label = event.get("label")
    if label is None:
        return _reject("missing field 'label'", event, model, event_id)
    if not isinstance(label, _SCALARS) or (isinstance(label, float) and not math.isfinite(label)):
        return _reject(f"wrong type: 'label' must be a finite number, string or boolean, got {_describe(label)}",
                       event, model, event_id)
    return {"model": model, "event_id": event_id, "label": label, "timestamp": timestamp}


def _valid_score(score: object) -> bool:
    if isinstance(score, bool):
        return False
    if isinstance(score, (int, float)):
        return math.isfinite(score)
    if isinstance(score, dict):
        return all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)
                   for p in score.values())
    return False


def _timestamp(value: object) -> float | str:
    """Epoch seconds, or a reason why the value is not a timestamp."""
    if value is None:
        return "missing field 'timestamp'"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) and value >= 0:
            return float(value)
        return f"timestamp is not a finite, non-negative number ({value})"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return f"timestamp {value[:64]!r} is not ISO-8601"
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return f"wrong type: 'timestamp' must be epoch seconds or ISO-8601 text, got {_describe(value)}"


def _reject(reason: str, event: dict, model: object, event_id: object) -> Rejection:
    try:
        text = _excerpt(orjson.dumps(event, default=str))
    except TypeError:  # e.g. an integer wider than 64 bits
        text = repr(event)[:_EXCERPT]
    return Rejection(reason, model=_str_or_none(model), event_id=_str_or_none(event_id), excerpt=text)


def _describe(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _excerpt(raw: bytes) -> str:
    return raw[:_EXCERPT].decode("utf-8", errors="replace")
