"""Request bodies -> validated batches of Driftline events, by producers/events.py's own rules.

Every event this service builds or receives is encoded as the worker will read it and passed through
``producers.events.decode_message``: what is accepted here is what a worker accepts, and a request with
any invalid event is refused whole (400, naming the first problems), so a 2xx never hides a dead letter.
An event that would not fit in a message a worker reads (``max_message_bytes``) even in an envelope of its
own is refused the same way (413, ``event_too_large``): the worker would dead-letter it as ``oversized``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import orjson

from producers.events import SCHEMA_VERSION, decode_message, encode_envelope
from stream_processors.ingest.cloudevents import CloudEvent
from stream_processors.ingest.errors import Rejected
from stream_processors.ingest.mapping import Mapping
from stream_processors.ingest.tensors import request_rows, response_rows

__all__ = ["Batch", "driftline_batches", "half_rows", "paired_batch", "resolve_model"]

_SHOWN = 3  # rejections named in one error message


@dataclass(frozen=True)
class Batch:
    """Valid events of one model (and, for inference, one version), ready for one or more envelopes."""

    kind: str
    model: str
    version: str | None
    events: list[dict]


def driftline_batches(body: bytes, kind: str, max_rows: int, *, max_message_bytes: int) -> list[Batch]:
    """Driftline JSON (one event, a list of events, or a batch envelope) of ``kind`` ``inference`` or ``label``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected("bad_json", f"body is not JSON: {exc}") from None
    if isinstance(doc, list):
        doc = {"events": doc}
    if not isinstance(doc, dict):
        raise Rejected("bad_body", f"body is a JSON {type(doc).__name__}; send an event, a list of events or "
                                   "a batch envelope")
    if doc.get("kind", kind) != kind:
        raise Rejected("bad_body", f"this route takes {kind} events, the body says kind {doc['kind']!r}")
    events = doc.get("events")
    if isinstance(events, list):
        if len(events) > max_rows:
            raise Rejected("too_many_rows", f"{len(events)} events in one request; the limit is {max_rows}")
        if not events:
            raise Rejected("bad_body", "'events' is empty")
    return _validated({"schema_version": SCHEMA_VERSION, **doc, "kind": kind}, max_message_bytes)


def _validated(doc: dict, max_message_bytes: int) -> list[Batch]:
    try:
        raw = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # read from JSON, so the one thing orjson cannot write back: nesting past 254
        raise Rejected("bad_body", "values nested too deeply to be events") from None
    decoded = decode_message(raw, max_bytes=1 << 62)
    if decoded.rejections:
        shown = "; ".join((f"event {r.event_id!r}: " if r.event_id else "") + r.reason
                          for r in decoded.rejections[:_SHOWN])
        more = len(decoded.rejections) - _SHOWN
        raise Rejected("invalid_event", f"{len(decoded.rejections)} invalid event(s), nothing accepted: {shown}"
                                        + (f" (and {more} more)" if more > 0 else ""))
    groups: dict[tuple[str, str | None], list[dict]] = {}
    for event in decoded.events:
        key = (event.pop("model"), event.pop("model_version", None))
        groups.setdefault(key, []).append(event)
    batches = [Batch(decoded.kind, model, version, events) for (model, version), events in groups.items()]
    for batch in batches:
        _check_each_fits(batch, max_message_bytes)
    return batches


def _check_each_fits(batch: Batch, max_message_bytes: int) -> None:
    for event in batch.events:
        size = len(encode_envelope(batch.model, [event], batch.version, kind=batch.kind))
        if size > max_message_bytes:
            raise Rejected("event_too_large", f"event {event['event_id']!r} takes {size} bytes in a message of its "
                                              f"own; a worker reads messages of at most {max_message_bytes} bytes "
                                              "(DRIFTLINE_MAX_MESSAGE_BYTES); nothing accepted")


def resolve_model(ce: CloudEvent, mapping: Mapping) -> tuple[str, str]:
    """(model id, version) of a CloudEvent: the mapping's, else its InferenceService name and endpoint."""
    name = ce.inferenceservicename
    if name is None:
        raise Rejected("bad_cloudevent", "CloudEvent has no 'inferenceservicename' extension: which model is it?")
    entry = mapping.resolve(name)
    if entry is None and mapping.strict:
        raise Rejected("unknown_model", f"model {name!r} is not in the mapping file, which is strict")
    model = entry.model if entry else name
    version = (entry.version if entry else None) or ce.endpoint or "1"
    return model, version


def paired_batch(request: CloudEvent, response: CloudEvent, model: str, version: str, now: float, *,
                 max_message_bytes: int) -> Batch:
    """The inference events of one pair whose ``data`` are already rows (``half_rows``): one per row, ids
    ``<ce-id>`` for a single row, else ``<ce-id>-<row>``."""
    features, outputs = request.data, response.data
    if len(features) != len(outputs):
        raise Rejected("row_mismatch", f"CloudEvent {request.id!r}: the request has {len(features)} rows, "
                                       f"the response {len(outputs)}")
    timestamp = request.time or response.time or now
    single = len(features) == 1
    events = []
    for i, (row, (prediction, score)) in enumerate(zip(features, outputs)):
        event = {"event_id": request.id if single else f"{request.id}-{i}", "timestamp": timestamp,
                 "features": row, "prediction": prediction}
        if score is not None:
            event["score"] = score
        events.append(event)
    (batch,) = _validated({"schema_version": SCHEMA_VERSION, "kind": "inference", "model": model,
                           "model_version": version, "events": events}, max_message_bytes)
    return batch


def half_rows(ce: CloudEvent, mapping: Mapping, max_rows: int) -> CloudEvent:
    """``ce`` with its body read into rows: feature dicts (request) or (prediction, score) pairs (response)."""
    entry = mapping.resolve(ce.inferenceservicename or "")
    rows = request_rows(ce.data, entry, max_rows) if ce.half == "request" else response_rows(ce.data, entry, max_rows)
    if not rows:
        raise Rejected("bad_body", f"CloudEvent {ce.id!r}: the {ce.half} has no rows")
    return dataclasses.replace(ce, data=rows)
