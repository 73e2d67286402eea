"""KServe inference-logger CloudEvents over HTTP, binary and structured content modes. Pure functions.

KServe's logger POSTs each inference request and response as a CloudEvent: in binary mode the attributes
are ``ce-*`` headers and the body is the request or response JSON; in structured mode
(``Content-Type: application/cloudevents+json``) attributes and ``data`` share one JSON object. The two
events of one inference share their ``id``; ``type`` says which half it is.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from stream_processors.ingest.errors import Rejected

__all__ = ["CloudEvent", "REQUEST_TYPE", "RESPONSE_TYPE", "parse_cloudevent", "is_structured"]

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
_HALVES = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
_STRUCTURED = "application/cloudevents+json"
_BATCH = "application/cloudevents-batch+json"


@dataclass(frozen=True)
class CloudEvent:
    id: str
    half: str
    """``request`` or ``response``."""
    source: str
    time: str | None
    inferenceservicename: str | None
    endpoint: str | None
    data: object
    size: int = field(default=0, compare=False)
    """Bytes of the HTTP body it came in: what holding it costs, as the pairing table counts it."""


def is_structured(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == _STRUCTURED


def parse_cloudevent(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """One CloudEvent from an HTTP request; ``headers`` keys lower-case."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == _BATCH:
        raise Rejected("unsupported_media_type", "batched CloudEvents are not supported; send one event per request")
    if content_type == _STRUCTURED:
        doc = _json(body, "structured CloudEvent")
        if not isinstance(doc, dict):
            raise Rejected("bad_cloudevent", "a structured CloudEvent must be a JSON object")
        attrs = {k.lower(): v for k, v in doc.items() if k not in ("data", "data_base64")}
        if "data_base64" in doc:
            try:
                data = _json(base64.b64decode(doc["data_base64"], validate=True), "CloudEvent data_base64")
            except (binascii.Error, TypeError, ValueError):
                raise Rejected("bad_cloudevent", "CloudEvent 'data_base64' is not base64") from None
        elif "data" in doc:
            data = doc["data"]
            if isinstance(data, str):  # JSON carried as a string
                data = _json(data.encode(), "CloudEvent data")
        else:
            raise Rejected("bad_cloudevent", "structured CloudEvent has no 'data'")
    else:
        attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        if not attrs:
            raise Rejected("bad_cloudevent", "no ce-* headers: send a CloudEvent in binary mode, or with "
                                             f"Content-Type: {_STRUCTURED}")
        data = _json(body, "CloudEvent data")
    return dataclasses.replace(_event(attrs, data), size=len(body))


def _json(raw: bytes, what: str) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected("bad_json", f"{what} is not JSON: {exc}") from None


def _event(attrs: dict, data: object) -> CloudEvent:
    for name, value in attrs.items():
        # aiohttp keeps a header's bytes that are not UTF-8 as lone surrogates, which no JSON can carry
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise Rejected("bad_cloudevent", f"CloudEvent attribute {name[:100]!r} is not UTF-8 text") from None
    for name in ("id", "type", "specversion"):
        if not isinstance(attrs.get(name), str) or not attrs[name]:
            raise Rejected("bad_cloudevent", f"CloudEvent attribute '{name}' is missing")
    half = _HALVES.get(attrs["type"])
    if half is None:
        raise Rejected("bad_cloudevent", f"CloudEvent type {attrs['type'][:100]!r} is not one of "
                                         f"{sorted(_HALVES)}")
    if len(attrs["id"]) > 200:
        raise Rejected("bad_cloudevent", "CloudEvent id is longer than 200 characters")

    def text(name: str) -> str | None:
        value = attrs.get(name)
        return value if isinstance(value, str) and value else None

    return CloudEvent(attrs["id"], half, text("source") or "", text("time"), text("inferenceservicename"),
                      text("endpoint"), data)
