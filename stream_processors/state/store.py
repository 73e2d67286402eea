"""The state store's contract, in domain terms: what a batch commits and what the logic reads.

A commit is split by topic partition (:func:`by_partition`): a model belongs to the partition its keyed
messages arrive on, and each partition's part — the new state of its models touched by the batch, the new
offsets of that partition of both topics, the label join's writes and the quarantined records of its models —
is written atomically, partitions in ascending order. Each part first checks that the partition's stored
offsets are still the ones the batch started from, so a worker that lost its partitions in a rebalance and
wakes up late cannot overwrite the state its successor wrote; on a conflict the commit stops there and
returns False. A part with something to write but no offset of its partition to check (no fresh message of
that partition in the batch) has nothing guarding it, so it is refused the same way: nothing of it is written
and the commit returns False. Partitions saved before the conflict are skipped by their offsets when the batch is redone, so
nothing is counted twice. Two implementations: ``RedisStateStore`` (one Lua script per partition, so it runs
on Redis Cluster) and ``MemoryStateStore`` (for tests); the contract test in ``tests/stream_processors/state``
runs against both.

A record that cannot even be decoded is handed to the caller as its raw bytes, so that it can be quarantined
rather than stop the worker.

States are saved as orjson JSON. Measured for a 20-feature model after 10,000 events (147 KB of JSON): msgpack
is 31% smaller (101 KB) but takes about as long per save and load (encode 3.6 ms vs 1.7 ms, decode 4.1 ms vs
5.2 ms, on a busy two-core machine), and zlib on the JSON is 73% smaller for 4x the encoding time; neither is
worth a second format that old states would have to be told apart from. A batch writes only the versions
it touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol

import orjson

from detectors.model.writes import JoinWrite

__all__ = ["PartitionCommit", "Quarantine", "StateCommit", "StateStore", "TopicPartition", "by_partition", "unguarded"]

TopicPartition = tuple[str, int]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quarantine:
    """A saved record that could not be loaded: kept aside under its own key instead of being overwritten."""

    kind: str                   # "state" or "profile"
    model: str
    model_version: str
    raw: bytes
    error: str


class StateCommit(Protocol):
    """What one batch writes (``BatchOutcome`` is one)."""

    offsets: dict[TopicPartition, tuple[int, int]]
    """Per partition: (the offset the batch started from, the new one)."""
    states: dict[tuple[str, str], bytes]
    events_total: dict[tuple[str, str], int]
    writes: list[JoinWrite]
    """The label join's writes."""
    quarantined: list[Quarantine]
    # optional: decisions: dict[tuple[str, str], str], each saved version's decision, kept in the registry's
    # summary beside its event count (what a worker exports for a model before its next event)


@dataclass
class PartitionCommit:
    """The part of a commit that belongs to one topic partition (a ``StateCommit`` of its own)."""

    offsets: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    states: dict[tuple[str, str], bytes] = field(default_factory=dict)
    events_total: dict[tuple[str, str], int] = field(default_factory=dict)
    writes: list[JoinWrite] = field(default_factory=list)
    quarantined: list[Quarantine] = field(default_factory=list)
    decisions: dict[tuple[str, str], str] = field(default_factory=dict)


def unguarded(part: PartitionCommit) -> bool:
    """True where ``part`` would write (states, label-join writes, quarantined records) without any offset of
    its partition to check: a worker that no longer owns the partition could write there unnoticed."""
    return not part.offsets and bool(part.states or part.writes or part.quarantined)


def by_partition(batch: StateCommit, partition_of: Callable[[str], int],
                 partitions: int) -> list[tuple[int, PartitionCommit]]:
    """``batch`` split by partition (``partition_of(model)``; a topic partition ``n`` is ``n % partitions``),
    in ascending order: what one atomic step each commits."""
    parts: dict[int, PartitionCommit] = {}

    def of(n: int) -> PartitionCommit:
        return parts.setdefault(n, PartitionCommit())

    for tp, moved in batch.offsets.items():
        of(tp[1] % partitions).offsets[tp] = moved
    decisions = getattr(batch, "decisions", {})
    for key, state in batch.states.items():
        target = of(partition_of(key[0]))
        target.states[key] = state
        target.events_total[key] = batch.events_total[key]
        if key in decisions:
            target.decisions[key] = decisions[key]
    for write in batch.writes:
        of(partition_of(write.model)).writes.append(write)
    for q in batch.quarantined:
        of(partition_of(q.model)).quarantined.append(q)
    return sorted(parts.items())


class StateStore(Protocol):
    partitions: int | None
    """The topics' partition count, as the worker learnt it from Kafka; None where it is not known (every model is
    then in partition 0, and where messages arrive is not checked)."""

    def offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Last applied offset per partition; -1 where none was applied."""

    def load(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | bytes | None]:
        """Saved state per (model, version); None where there is none, bytes where it is not JSON."""

    def commit(self, batch: StateCommit) -> bool:
        """Per partition (:func:`by_partition`), in ascending order: write its states, writes and quarantined
        records and move its offsets from ``(expected, new)``, all at once; False on a conflict (that partition
        and the ones after it not written). A part that would write without an offset to check is a conflict
        (:func:`unguarded`)."""

    def partition_of(self, model: str) -> int:
        """The topic partition a model's keyed messages arrive on (its state lives with that partition's)."""

    def quarantined(self) -> dict[tuple[str, str], dict]:
        """Per (model, version): its latest quarantined record, {"record", "error", "sha256", "at"}."""

    def models(self) -> dict[tuple[str, str], float]:
        """Every (model, version) with state, and when it was last updated."""

    def existing(self, models: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of ``models`` that have saved state (one look-up for all)."""

    def model_summaries(self) -> dict[tuple[str, str], dict]:
        """Per (model, version): {"events", "updated"} as of its last commit, and "decision" where the commit
        gave one."""

    def summaries_of(self, partitions: set[int], limit: int | None = None) -> dict[tuple[str, str], dict]:
        """``model_summaries`` of the models of ``partitions`` only (a worker's, after an assignment), up to about
        ``limit`` of them, in no particular order."""

    def profiles(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | bytes | None]:
        """Registered reference profile per (model, version); None where there is none, bytes where it is
        not JSON."""

    def put_profile(self, profile: dict, only_if_absent: bool = False) -> bool:
        """Register a profile; with ``only_if_absent``, keep one already there."""

    # the label join's reads (detectors.model.label_join.LabelStore)
    def kept_predictions(self, model: str, hours: list[int], event_ids: list[str]) -> list[list | None]: ...

    def waiting_labels(self, model: str, event_ids: list[str]) -> list[dict | None]: ...

    def due_labels(self, model: str, now: float, limit: int) -> list[str]: ...

    def pending_labels(self, model: str) -> int: ...

    def pending_labels_of(self, models: list[str]) -> dict[str, int]:
        """``pending_labels`` of each of ``models``, in one round trip."""
        ...

    def label_counts(self) -> dict[str, int]:
        """``{model}:pending``, ``{model}:unmatched`` and ``{model}:joined`` counts."""

    # one model's records, read from its partition only (``driftline status --model``)
    def versions_of(self, model: str) -> dict[str, float]:
        """Every version of ``model`` with state, and when it was last updated (its partition's registry only)."""

    def model_label_counts(self, model: str) -> dict[str, int]:
        """``model``'s ``joined``, ``pending`` and ``unmatched`` label counts (0 where none)."""

    def quarantine_of(self, model: str, version: str) -> dict | None:
        """The latest quarantined record of one model version, or None."""


def decoded(raw: bytes | None) -> dict | bytes | None:
    """A saved record, or its bytes when they are not JSON."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def join_record(where: str, raw: bytes | None) -> dict | list | None:
    """A kept prediction or waiting label; one that cannot be decoded is reported and read as absent (a label
    then waits for, or misses, its prediction and is counted as unmatched), so it cannot stop the worker."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        _log.error("damaged label-join record at %s (%d bytes) is ignored", where[:300], len(raw))
        return None


def prediction_records(write) -> list[bytes]:
    """How kept predictions are stored, one field per event id of their hour's hash: [version, prediction, score,
    timestamp] (what older workers wrote, and the join reads): each ``orjson.dumps(record)``, cut from one dump
    of them all (``split_array``)."""
    records = split_array(orjson.dumps(write.predictions), len(write.predictions), b"],[")
    return list(map(orjson.dumps, write.predictions)) if records is None else \
        [b"[" + record + b"]" for record in records]


def split_array(dumped: bytes, n: int, separator: bytes) -> list[bytes] | None:
    """The ``n`` items of the JSON array ``dumped`` (orjson's bytes, no spaces), without the first and last
    characters of each (brackets of arrays, quotes of strings), when ``separator`` - the end of an item, a comma,
    the start of the next: ``],[`` between arrays, ``","`` between strings - is found nowhere but between items;
    else None.

    Between items it is found ``n - 1`` times, and ``],[`` inside an item (in a string, a nested array) adds to
    the count. ``","`` can also overlap one between items (``"x\\","`` ends the string ``x",``), so any escaped
    quote in the dump makes it None. One dump and one split cost a few C calls a batch where a dump per item
    costs a Python call per event."""
    if n < 1 or dumped.count(separator) != n - 1 or (separator == b'","' and b'\\"' in dumped):
        return None
    return dumped[2:-2].split(separator)


def label_record(write) -> bytes:
    return orjson.dumps({"l": write.label, "t": write.timestamp})


def quarantine_record(q: Quarantine, digest: str, now: float) -> bytes:
    return orjson.dumps({"record": q.kind, "error": q.error, "sha256": digest, "at": now})
