"""Signatures on the control topic: HMAC-SHA256 over an alert's canonical JSON.

Anyone who can write to the control topic could otherwise forge a retrain
trigger. With ``DRIFTLINE_SIGNING_KEY`` (or ``DRIFTLINE_SIGNING_KEY_FILE``)
set, the worker adds a ``signature`` field to every alert and trigger::

    "signature": {"alg": "HMAC-SHA256", "key_id": "<first 8 hex of sha256(key)>", "value": "<hex digest>"}

The digest covers the *canonical JSON* of the message without its
``signature`` field: object keys sorted at every level, no whitespace, UTF-8,
numbers as orjson writes them (the shortest form that reads back as the same
double). A consumer parses the message, removes ``signature``, serialises the
rest canonically and compares digests in constant time. ``key_id`` only helps
to tell "signed with another key" from "altered"; it reveals nothing usable
about the key.

>>> signer = Signer(b"k" * 32)
>>> signed = signer.sign({"id": "a1", "type": "retrain", "model": "m"})
>>> verify(signed, b"k" * 32)
'verified'
>>> verify({**signed, "model": "other"}, b"k" * 32)
'bad_signature'
>>> verify({"id": "a1"}, b"k" * 32)
'unsigned'
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Literal

import orjson

__all__ = ["ALGORITHM", "SIGNATURE_FIELD", "MIN_KEY_BYTES", "Signer", "Verdict", "canonical_json", "key_id",
           "verify"]

ALGORITHM = "HMAC-SHA256"
SIGNATURE_FIELD = "signature"
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
MIN_KEY_BYTES = 16  # 128 bits: shorter keys are refused at start-up, not used

Verdict = Literal["verified", "unsigned", "bad_signature", "other_key", "no_key"]


def canonical_json(doc: dict) -> bytes:
    """The bytes a signature covers: ``doc`` without ``signature``, keys sorted, compact."""
    return orjson.dumps({k: v for k, v in doc.items() if k != SIGNATURE_FIELD}, option=orjson.OPT_SORT_KEYS)


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _digest(key: bytes, doc: dict) -> str:
    return hmac.new(key, canonical_json(doc), hashlib.sha256).hexdigest()


class Signer:
    """Adds a signature to outgoing control messages."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the signing key must be at least {MIN_KEY_BYTES} bytes long")
        self._key = key
        self.key_id = key_id(key)

    def __repr__(self) -> str:  # never the key
        return f"Signer(key_id={self.key_id!r})"

    def sign(self, doc: dict) -> dict:
        return {**doc, SIGNATURE_FIELD: {"alg": ALGORITHM, "key_id": self.key_id, "value": _digest(self._key, doc)}}


def verify(doc: dict, key: bytes | None) -> Verdict:
    """What can be said of ``doc``'s signature with ``key`` (None: no key configured here)."""
    signature = doc.get(SIGNATURE_FIELD)
    if signature is None:
        return "unsigned"
    if key is None:
        return "no_key"
    if not isinstance(signature, dict) or signature.get("alg") != ALGORITHM \
            or not isinstance(signature.get("value"), str) or not _HEX_DIGEST.fullmatch(signature["value"]):
        return "bad_signature"
    if hmac.compare_digest(signature["value"].encode(), _digest(key, doc).encode()):
        return "verified"
    return "other_key" if signature.get("key_id") != key_id(key) else "bad_signature"
