"""Hostile input at decode → apply → commit on the in-memory store.

Whatever the bytes, no exception escapes, every message ends applied or
dead-lettered (inside an envelope, event by event), and every saved state
loads again. Damaged saved state is quarantined, never silently replaced.
"""

import json
import random

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.events import REASON_CODES
from stream_processors.batch import logic_params
from detectors.model.monitor import ModelMonitor
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings
from stream_processors.state import MemoryStateStore

SETTINGS = Settings(window_size=20, edge_events=20, baseline_windows=2, pilot_size=40, baseline_blocks=10,
                    block_size=5, performance_window=10, category_block_size=5, category_baseline_blocks=10)
MESSAGE_CODES = {"empty", "oversized", "malformed_json", "invalid_utf8", "too_deep", "out_of_range",
                 "not_an_object", "schema_version", "unknown_kind", "bad_envelope"}

hostile_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10 ** 300, max_value=10 ** 330),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e15, -1e15, 1e15 * 1.01, 1e308, -1e308, 5e-324]),
    st.text(max_size=20), st.sampled_from(["\ud800", "a\x00b", "é" * 300, ""]),
)
hostile_value = st.recursive(hostile_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                     st.dictionaries(st.text(max_size=5), inner,
                                                                                     max_size=3)), max_leaves=6)


def _valid_event(i: int, rng: random.Random) -> dict:
    return {"event_id": f"e{i}", "timestamp": 1_700_000_000.0 + i, "prediction": rng.choice([0, 1]),
            "score": rng.random(), "features": {"x": rng.gauss(0, 1), "c": rng.choice("abc"), "b": rng.random() < .5}}


@st.composite
def mutated_event(draw, i: int):
    event = _valid_event(i, random.Random(i))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["event_id", "timestamp", "prediction", "score", "features", "feature",
                                      "model", "model_version", "drop"]))
        value = draw(hostile_value)
        if where == "feature":
            event["features"] = dict(event["features"]) if isinstance(event.get("features"), dict) else {}
            event["features"][draw(st.sampled_from(["x", "c", "b", "new"]))] = value
        elif where == "drop":
            event.pop(draw(st.sampled_from(sorted(event))), None)
        else:
            event[where] = value
    return event


def _dumps(doc, ascii_only: bool) -> bytes:
    # json, not orjson: it writes what a careless producer would (NaN, huge integers, lone surrogates)
    return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def message(draw, first_id: int):
    """(bytes, the number of inputs it carries)"""
    shape = draw(st.sampled_from(["bytes", "single", "envelope", "envelope", "deep", "labels"]))
    ascii_only = draw(st.booleans())
    if shape == "bytes":
        return draw(st.binary(max_size=200)), 1
    if shape == "deep":
        depth = draw(st.integers(1000, 1100))
        return b'{"schema_version": 1, "model": "m", "x": ' + b"[" * depth + b"]" * depth + b"}", 1
    if shape == "labels":  # labels of earlier events, some hostile; they join predictions kept in the store
        n = draw(st.integers(1, 4))
        labels = [{"event_id": f"e{draw(st.integers(0, 3000))}", "timestamp": 1.7e9,
                   "label": draw(st.one_of(st.sampled_from([0, 1, True, "1", 1.0, "yes"]), hostile_value))}
                  for _ in range(n)]
        return _dumps({"schema_version": 1, "kind": "label", "model": "m", "events": labels}, ascii_only), n
    if shape == "single":
        event = draw(mutated_event(first_id))
        return _dumps({"schema_version": 1, "kind": "inference", "model": "m", "model_version": "1", **event}, ascii_only), 1
    n = draw(st.integers(0, 6))
    events = [draw(mutated_event(first_id + j)) if draw(st.booleans()) else _valid_event(first_id + j,
                                                                                          random.Random(j))
              for j in range(n)]
    head = {"schema_version": 1, "kind": "inference", "model": "m", "model_version": draw(st.sampled_from(["1", "2"]))}
    if draw(st.integers(0, 9)) == 0:
        head[draw(st.sampled_from(["schema_version", "kind", "model"]))] = draw(hostile_value)
    return _dumps({**head, "events": events}, ascii_only), n


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_no_input_escapes_and_every_input_is_accounted_for(data):
    store = MemoryStateStore()
    processor = BatchProcessor(SETTINGS, store)
    offset = 0
    for _batch in range(data.draw(st.integers(1, 4))):
        drawn = [data.draw(message(1000 * offset + 1000 * k)) for k in range(data.draw(st.integers(1, 8)))]
        messages = [IncomingMessage("t", 0, offset + k, raw) for k, (raw, _n) in enumerate(drawn)]
        offset += len(messages)
        if data.draw(st.integers(0, 4)) == 0:
            _damage_a_state(store, data.draw(st.integers(0, 2 ** 32)))
        outcome = processor.process(messages)
        assert store.commit(outcome)
        by_offset: dict[int, list[dict]] = {}
        for letter in outcome.dead_letters:
            assert letter["reason_code"] in REASON_CODES
            orjson.dumps(letter)  # a dead letter is always publishable
            by_offset.setdefault(letter["source"]["offset"], []).append(letter)
        expected_events = expected_labels = 0
        for m, (raw, n) in zip(messages, drawn):
            letters = by_offset.get(m.offset, [])
            if len(letters) == 1 and letters[0]["event_id"] is None and letters[0]["reason_code"] in MESSAGE_CODES:
                continue  # the whole message was refused, with one reason
            assert len(letters) <= n, letters
            if raw.startswith(b'{"schema_version": 1, "kind": "label"'):
                # a valid label is joined or waits; one that then fails to apply is dead-lettered too; a message's
                # labels of events that have one already are one dead letter, its count saying how many
                expected_labels += n - sum(d["count"] for d in letters if d["reason_code"] != "apply_failed")
            else:
                expected_events += n - len(letters)
        assert outcome.events == expected_events
        assert outcome.labels == expected_labels
        for q in outcome.quarantined:
            assert any(a["type"] == "state_quarantined" and a["model_version"] == q.model_version
                       for a in outcome.alerts)
        for alert in outcome.alerts:
            orjson.dumps(alert)
    # one more valid event per version: a state damaged after its last batch is loaded (and quarantined) too
    final = [IncomingMessage("t", 0, offset + k, orjson.dumps({"schema_version": 1, "model": model,
                                                               "model_version": version,
                                                               **_valid_event(10 ** 9 + k, random.Random(k))}))
             for k, (model, version) in enumerate(sorted(store.models()))]
    if final:
        outcome = processor.process(final)
        assert store.commit(outcome) and outcome.events == len(final)
    for key in store.models():
        saved = store.load([key])[key]
        restored = ModelMonitor.from_dict(saved, logic_params(SETTINGS).monitor)
        assert restored.to_dict() == saved


def _damage_a_state(store: MemoryStateStore, seed: int) -> None:
    keys = sorted(store.models())
    if not keys:
        return
    rng = random.Random(seed)
    key = rng.choice(keys)
    raw = bytearray(store._states[key])
    how = rng.choice(["truncate", "flip", "garbage", "window"])
    if how == "truncate":
        raw = raw[: rng.randrange(len(raw))]
    elif how == "flip":
        for _ in range(5):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
    elif how == "garbage":
        raw = bytearray(b"\x00\xffnot json")
    else:
        raw = bytearray(raw.replace(b'"window":"', b'"window":"AAAA', 1))
    store.put_raw("state", key[0], key[1], bytes(raw))
