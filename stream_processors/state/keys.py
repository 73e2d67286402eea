"""Every Redis key Driftline writes, in one place.

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

__all__ = ["AppKeys", "profile_key", "triggers_done_key", "triggers_parked_key"]

LABEL_COUNTS = "labels"


class AppKeys:
    """The keys of one worker app (its consumer group)."""

    def __init__(self, app_id: str) -> None:
        self.prefix = f"driftline:{app_id}"
        self.offsets = f"{self.prefix}:offsets"
        self.models = f"{self.prefix}:models"
        self.label_counts = f"{self.prefix}:{LABEL_COUNTS}"
        self.quarantined = f"{self.prefix}:quarantined"

    def state(self, model: str, version: str) -> str:
        return f"{self.prefix}:state:{model}:{version}"

    def profile(self, model: str, version: str) -> str:
        return f"{self.prefix}:profile:{model}:{version}"

    def predictions(self, model: str, hour: int) -> str:
        return f"{self.prefix}:pred:{model}:{hour}"

    def waiting_label(self, model: str, event_id: str) -> str:
        return f"{self.prefix}:label:{model}:{event_id}"

    def waiting(self, model: str) -> str:
        return f"{self.prefix}:waiting:{model}"

    def quarantine(self, record: str, digest: str) -> str:
        return f"{self.prefix}:quarantine:{record}:{digest}"


def profile_key(app_id: str, model: str, version: str) -> str:
    return AppKeys(app_id).profile(model, version)


def triggers_done_key(group: str, topic: str) -> str:
    return f"driftline:triggers-done:{group}:{topic}"


def triggers_parked_key(group: str, topic: str) -> str:
    return f"driftline:triggers-parked:{group}:{topic}"
