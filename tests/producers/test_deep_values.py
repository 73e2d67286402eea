"""decode_message never raises, whatever the bytes: values nested between 255 and 1023 levels deep parse
(orjson.loads allows 1024) but cannot be written back by orjson.dumps (255) nor shown by repr (about 1000) for
the excerpt and the reason text; they are rejected like any other wrong value, and the batch goes on."""

import pytest

from producers.events import decode_message
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings
from stream_processors.state import MemoryStateStore

DEEP = b"[" * 300 + b"]" * 300
NOT_AN_OBJECT = b'{"schema_version":1,"model":"m","model_version":"1","events":[' + DEEP + b"]}"
PAST_MAX_EVENTS = b'{"schema_version":1,"model":"m","model_version":"1","events":[{},' + DEEP + b"]}"


@pytest.mark.parametrize("raw, max_events", [(NOT_AN_OBJECT, None), (PAST_MAX_EVENTS, 1)])
def test_a_deeply_nested_event_is_rejected_not_raised(raw, max_events):
    decoded = decode_message(raw, 1 << 20, max_events=max_events)
    assert decoded.rejections and not decoded.events


def test_a_deeply_nested_event_does_not_stop_the_batch():
    outcome = BatchProcessor(Settings(), MemoryStateStore()).process([IncomingMessage("t", 0, 0, NOT_AN_OBJECT)])
    assert [d["reason_code"] for d in outcome.dead_letters] == ["not_an_object"]


@pytest.mark.parametrize("depth", [1000, 1020])
def test_a_feature_nested_about_a_thousand_deep_is_rejected_not_raised(depth):
    """_reject falls back to repr(event) when orjson.dumps refuses (past 255 levels); repr itself hits Python's
    recursion limit near 1000 levels (RecursionError, not caught), below orjson.loads' own limit (1024)."""
    deep = b"[" * depth + b"]" * depth
    raw = (b'{"schema_version":1,"model":"m","model_version":"1","event_id":"e","timestamp":1,"prediction":1,'
           b'"features":{"a":' + deep + b"}}")
    decoded = decode_message(raw, 1 << 20)
    assert [r.code for r in decoded.rejections] == ["wrong_type"]


@pytest.mark.parametrize("field", ["schema_version", "kind"])
def test_a_deep_schema_version_or_kind_is_rejected_not_raised(field):
    """The reason text shows the value with _short (repr): RecursionError at about 1000 levels."""
    deep = b"[" * 1000 + b"]" * 1000
    raw = b'{"schema_version":1,"kind":' + deep + b"}" if field == "kind" else b'{"schema_version":' + deep + b"}"
    decoded = decode_message(raw, 1 << 20)
    assert [r.code for r in decoded.rejections] == ["unknown_kind" if field == "kind" else "schema_version"]
