"""Every Redis key Driftline writes, in one place (key layout 3: state partitioned like the topic).

Every variable part of a key (app id, model, version, event id, record, consumer group, topic) goes through
:func:`part`, which percent-encodes ``%``, ``:``, ``{``, ``}``, space and every character that is not
printable, so no two different (model, version) pairs — say model ``a:b`` version ``c`` and model ``a`` version
``b:c`` — share a key, and no part can open a Redis Cluster hash tag of its own.

A model's keys, and the saved offsets of the topic partition its messages arrive on, share one Redis Cluster
hash tag ``{driftline:{app}:p{N}}``, where N is ``partition_for(model, P)`` of the inference topic's P
partitions: the partition its keyed messages land on. Everything one batch writes for one partition then
lives in one hash slot, and one Lua script commits it atomically, on one Redis or on a cluster. Knowing
(app id, model, P), anyone finds a model's keys without a SCAN; P is recorded under ``layout`` by the worker
(:mod:`stream_processors.state.layout`), so readers that do not talk to Kafka (``status``) know it too.

Per partition N (``T`` = ``{driftline:{app}:p{N}}``)::

    T:offsets                hash  "topic:partition" -> last applied offset (partition N of both topics)
    T:state:{model}:{v}      JSON  ModelMonitor.to_dict()
    T:models                 hash  "{model}\\t{version}" -> {"events", "updated", "decision"} (JSON), the
                                   models of N
    T:pred:{model}:{hour}    hash  event id -> [version, prediction, score, timestamp], kept for labels
                                   (expires)
    T:label:{model}:{id}     JSON  {"l": label, "t": timestamp}: a label waiting for its prediction (expires)
    T:waiting:{model}        zset  waiting labels by deadline
    T:joined:{model}         zset  event ids whose labels joined, by when (a later label is a duplicate)
    T:labels                 hash  "{model}:pending" / "{model}:unmatched" / "{model}:joined" counts
    T:quarantine:{record}:{sha256}  a saved state or profile that could not be loaded, as it was
    T:quarantined            hash  "{model}\\t{version}" -> {"record", "error", "sha256", "at"} (JSON)

Untagged, per app (read one key at a time, never in a batch's script)::

    driftline:{app}:profile:{model}:{v}  JSON  ReferenceProfile.to_dict() (read-only for the worker)
    driftline:{app}:layout               JSON  {"layout": 3, "partitions": P}, written once the keys are in place
    driftline:{app}:relocating           the lock of the worker moving keys to their tags (expires)

``driftline triggers`` keeps, per consumer group and control topic (one key per call)::

    driftline:triggers-done:{group}:{topic}    set  ids of triggers whose command succeeded (never run twice)
    driftline:triggers-parked:{group}:{topic}  set  "partition:offset" of triggers parked after their last try
"""

from __future__ import annotations

from urllib.parse import unquote

from producers.partitioning import partition_for

__all__ = ["AppKeys", "PartitionKeys", "member", "parse_member", "part", "profile_key", "triggers_done_key",
           "triggers_parked_key", "unpart"]

LABEL_COUNTS = "labels"
KEY_LAYOUT = 3
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


class PartitionKeys:
    """The keys of one topic partition's state: all under one hash tag, so one script may write them all.

    >>> PartitionKeys("workers", 7).state("credit", "3")
    '{driftline:workers:p7}:state:credit:3'
    """

    def __init__(self, app_id: str, partition: int) -> None:
        self.partition = partition
        self.tag = f"{{driftline:{part(app_id)}:p{partition}}}"
        self.offsets = f"{self.tag}:offsets"
        self.models = f"{self.tag}:models"
        self.label_counts = f"{self.tag}:{LABEL_COUNTS}"
        self.quarantined = f"{self.tag}:quarantined"

    def state(self, model: str, version: str) -> str:
        return f"{self.tag}:state:{part(model)}:{part(version)}"

    def predictions(self, model: str, hour: int) -> str:
        return f"{self.tag}:pred:{part(model)}:{hour}"

    def joined(self, model: str) -> str:
        return f"{self.tag}:joined:{part(model)}"

    def waiting_label(self, model: str, event_id: str) -> str:
        return f"{self.tag}:label:{part(model)}:{part(event_id)}"

    def waiting(self, model: str) -> str:
        return f"{self.tag}:waiting:{part(model)}"

    def quarantine(self, record: str, digest: str) -> str:
        return f"{self.tag}:quarantine:{part(record)}:{digest}"


_KNOWN_MODELS = 100_000
"""Models whose partition ``AppKeys`` remembers (forgotten all at once past it)."""


class AppKeys:
    """The keys of one worker app (its consumer group) whose topics have ``partitions`` partitions.

    ``of(n)`` are partition n's keys, ``partition_of(model)`` the partition of a model (murmur2, as producers key
    by model), and ``state``/``predictions``/... a model's keys under its partition's tag.

    >>> keys = AppKeys("workers", 12)
    >>> keys.state("credit", "3") == keys.of(keys.partition_of("credit")).state("credit", "3")
    True
    """

    def __init__(self, app_id: str, partitions: int = 1) -> None:
        if partitions < 1:
            raise ValueError(f"a topic has at least one partition, got {partitions}")
        self.app_id = app_id
        self.partitions = partitions
        self.prefix = f"driftline:{part(app_id)}"
        self.layout = f"{self.prefix}:layout"
        self.relocating = f"{self.prefix}:relocating"
        self._of = [PartitionKeys(app_id, n) for n in range(partitions)]
        # murmur2 in Python costs ~4 us; a batch asks it for every event and every label-join write
        self._partition_of: dict[str, int] = {}

    def of(self, partition: int) -> PartitionKeys:
        """Partition ``partition``'s keys (a partition past the count, which only a misconfigured test sends,
        wraps around)."""
        return self._of[partition % self.partitions]

    def every(self) -> list[PartitionKeys]:
        return list(self._of)

    def partition_of(self, model: str) -> int:
        known = self._partition_of
        n = known.get(model)
        if n is None:
            if len(known) >= _KNOWN_MODELS:
                known.clear()
            n = known[model] = partition_for(model, self.partitions)
        return n

    def for_model(self, model: str) -> PartitionKeys:
        return self._of[self.partition_of(model)]

    def state(self, model: str, version: str) -> str:
        return self.for_model(model).state(model, version)

    def predictions(self, model: str, hour: int) -> str:
        return self.for_model(model).predictions(model, hour)

    def joined(self, model: str) -> str:
        return self.for_model(model).joined(model)

    def waiting_label(self, model: str, event_id: str) -> str:
        return self.for_model(model).waiting_label(model, event_id)

    def waiting(self, model: str) -> str:
        return self.for_model(model).waiting(model)

    def profile(self, model: str, version: str) -> str:
        return f"{self.prefix}:profile:{part(model)}:{part(version)}"


def profile_key(app_id: str, model: str, version: str) -> str:
    return AppKeys(app_id).profile(model, version)


def triggers_done_key(group: str, topic: str) -> str:
    return f"driftline:triggers-done:{part(group)}:{part(topic)}"


def triggers_parked_key(group: str, topic: str) -> str:
    return f"driftline:triggers-parked:{part(group)}:{part(topic)}"
