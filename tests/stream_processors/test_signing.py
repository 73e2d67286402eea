import hashlib
import hmac
import json

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from stream_processors.signing import MIN_KEY_BYTES, Signer, canonical_json, key_id, verify

KEY = b"0123456789abcdef0123456789abcdef"
TRIGGER = {"id": "9f2c", "type": "retrain", "model": "credit", "model_version": "v3", "feature": None,
           "statistic": 0.123456789, "threshold": 1e20, "severity": "critical", "created_at": 1764115200.25,
           "evidence": {"last_event_id": "e-9", "events_seen": 5000, "nested": {"b": [1, 2.5, "ü"], "a": True}}}


def test_signature_is_hmac_sha256_of_sorted_compact_json_computed_independently():
    # An independent canonical form (the standard library's json) for a document of strings and integers.
    doc = {"type": "retrain", "model": "crédit", "id": "x", "evidence": {"z": 1, "a": [3, "q"]}}
    expected = hmac.new(KEY, json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                        .encode(), hashlib.sha256).hexdigest()
    signed = Signer(KEY).sign(doc)
    assert signed["signature"] == {"alg": "HMAC-SHA256", "key_id": hashlib.sha256(KEY).hexdigest()[:8],
                                   "value": expected}
    assert {k: v for k, v in signed.items() if k != "signature"} == doc


def test_a_signed_message_verifies_after_a_trip_through_kafka_bytes():
    wire = orjson.dumps(Signer(KEY).sign(TRIGGER))
    assert verify(orjson.loads(wire), KEY) == "verified"


@pytest.mark.parametrize("change", [
    {"model": "other"}, {"type": "drift"}, {"statistic": 0.12345678}, {"feature": "x"},
    {"evidence": {**TRIGGER["evidence"], "events_seen": 5001}}, {"extra": 1}])
def test_any_change_breaks_the_signature(change):
    signed = Signer(KEY).sign(TRIGGER)
    assert verify({**signed, **change}, KEY) == "bad_signature"


def test_unsigned_other_key_and_no_key_are_told_apart():
    signed = Signer(KEY).sign(TRIGGER)
    assert verify(TRIGGER, KEY) == "unsigned"
    assert verify(signed, b"another key of enough length!!") == "other_key"
    assert verify(signed, None) == "no_key"
    assert verify({**signed, "signature": "abc"}, KEY) == "bad_signature"
    assert verify({**signed, "signature": {**signed["signature"], "alg": "none"}}, KEY) == "bad_signature"
    forged_id = {**signed, "signature": {**signed["signature"], "value": "0" * 64}}
    assert verify(forged_id, KEY) == "bad_signature"


def test_short_keys_are_refused_and_the_key_never_shows():
    with pytest.raises(ValueError):
        Signer(b"x" * (MIN_KEY_BYTES - 1))
    signer = Signer(KEY)
    assert KEY.decode() not in repr(signer) and KEY.decode() not in str(signer.sign(TRIGGER))
    assert key_id(KEY) == signer.key_id


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6))
def test_canonical_form_survives_serialisation_and_key_order(doc):
    doc.pop("signature", None)
    reordered = dict(reversed(list(doc.items())))
    assert canonical_json(reordered) == canonical_json(orjson.loads(orjson.dumps(doc)))
    assert verify(orjson.loads(orjson.dumps(Signer(KEY).sign(reordered))), KEY) == "verified"


@pytest.mark.parametrize("value", ["é", "é" * 64, "G" * 64, "0" * 63, "", "0" * 64 + "\n", 12])
def test_a_malformed_signature_value_is_refused_never_raised(value):
    signed = Signer(KEY).sign(TRIGGER)
    assert verify({**signed, "signature": {**signed["signature"], "value": value}}, KEY) == "bad_signature"
