"""Every Redis key Driftline writes, in one place.

Every variable part of a key (app id, model, version, event id, record, consumer group, topic) goes through
:func:`part`, which percent-encodes ``%``, ``:``, ``{``, ``}``, space and every character that is not
printable, so no two different (model, version) pairs — say model ``a:b`` version ``c`` and model ``a`` version
``b:c`` — share a key, and no part can open a Redis Cluster hash tag. Names made only of other characters (the
usual ``credit``, ``fraud-v2``, ``3``) are unchanged, so their keys are the same as before this encoding
(key layout 2): only the state of models or versions whose names hold one of the encoded characters is
under new keys; see the README, "State keys".

A worker's keys live under ``driftline:{app}``::

    driftline:{app}:offsets             hash  "topic:partition" -> last applied offset
    driftline:{app}:state:{model}:{v}   JSON  ModelMonitor.to_dict()
    driftline:{app}:models              hash  "{model}\\t{version}" -> {"events", "updated"} (JSON)
    driftline:{app}:profile:{model}:{v} JSON  ReferenceProfile.to_dict()
    driftline:{app}:pred:{model}:{hour} hash  event id -> [version, prediction, score, timestamp], kept for
                                              labels (expires)
    driftline:{app}:label:{model}:{id}  JSON  {"l": label, "t": timestamp}: a label waiting for its prediction
                                              (expires)
    driftline:{app}:waiting:{model}     zset  waiting labels by deadline
    driftline:{app}:labels              hash  "{model}:pending" / "{model}:unmatched" / "{model}:joined" counts
    driftline:{app}:quarantine:{record}:{sha256}  a saved state or profile that could not be loaded, as it was
    driftline:{app}:quarantined         hash  "{model}\\t{version}" -> {"record", "error", "sha256", "at"} (JSON)

``driftline triggers`` keeps, per consumer group and control topic::

    driftline:triggers-done:{group}:{topic}    set  ids of triggers whose command succeeded (never run twice)
    driftline:triggers-parked:{group}:{topic}  set  "partition:offset" of triggers parked after their last try
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["AppKeys", "member", "parse_member", "part", "profile_key", "triggers_done_key", "triggers_parked_key",
           "unpart"]

LABEL_COUNTS = "labels"
KEY_LAYOUT = 2
_ENCODED = frozenset("%:{} ")


def part(value: str) -> str:
    """``value`` as one unambiguous part of a key: ``%``, ``:``, ``{``, ``}``, space and non-printable characters
    percent-encoded (UTF-8 bytes).

    >>> part("a:b"), part("credit"), part("{x}"), part("50%")
    ('a%3Ab', 'credit', '%7Bx%7D', '50%25')
    """
    if value.isprintable() and not _ENCODED.intersection(value):
        return value
    return "".join(c if c.isprintable() and c not in _ENCODED else "".join(f"%{b:02X}" for b in c.encode())
                   for c in value)


def unpart(value: str) -> str:
    """The inverse of :func:`part`."""
    return unquote(value) if "%" in value else value


def member(model: str, version: str) -> str:
    """The hash field naming a model version: the model encoded (so it holds no tab), a tab, the version."""
    return f"{part(model)}\t{version}"


def parse_member(field: str) -> tuple[str, str]:
    model, _, version = field.partition("\t")
    return unpart(model), version


class AppKeys:
    """The keys of one worker app (its consumer group)."""

    def __init__(self, app_id: str) -> None:
        self.prefix = f"driftline:{part(app_id)}"
        self.offsets = f"{self.prefix}:offsets"
        self.models = f"{self.prefix}:models"
        self.label_counts = f"{self.prefix}:{LABEL_COUNTS}"
        self.quarantined = f"{self.prefix}:quarantined"

    def state(self, model: str, version: str) -> str:
        return f"{self.prefix}:state:{part(model)}:{part(version)}"

    def profile(self, model: str, version: str) -> str:
        return f"{self.prefix}:profile:{part(model)}:{part(version)}"

    def predictions(self, model: str, hour: int) -> str:
        return f"{self.prefix}:pred:{part(model)}:{hour}"

    def waiting_label(self, model: str, event_id: str) -> str:
        return f"{self.prefix}:label:{part(model)}:{part(event_id)}"

    def waiting(self, model: str) -> str:
        return f"{self.prefix}:waiting:{part(model)}"

    def quarantine(self, record: str, digest: str) -> str:
        return f"{self.prefix}:quarantine:{part(record)}:{digest}"


def profile_key(app_id: str, model: str, version: str) -> str:
    return AppKeys(app_id).profile(model, version)


def triggers_done_key(group: str, topic: str) -> str:
    return f"driftline:triggers-done:{part(group)}:{part(topic)}"


def triggers_parked_key(group: str, topic: str) -> str:
    return f"driftline:triggers-parked:{part(group)}:{part(topic)}"
