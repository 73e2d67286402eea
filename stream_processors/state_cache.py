"""Live model states kept across batches, so that a version this worker saved is not read back from Redis.

Loading a version (GET of its ~150 kB of JSON, ``orjson.loads``, ``ModelMonitor.from_dict``) costs more than
applying a batch of envelopes to it. A worker owns its partitions for long stretches, so the state it saved
last batch is, almost always, the state Redis holds. The cache keeps it, under rules that keep a batch's
outcome the bytes it would be without the cache:

1. Ownership. ``take`` removes an entry: the batch mutates the state as it applies events. ``put`` brings the
   states of a partition back only once the batch's commit of that partition succeeded. A batch that fails, is
   retried, or loses its compare-and-set reloads from Redis.
2. Offsets. Every commit of a partition moves the stored offsets of that partition, and only a commit writes
   a state. With each ``put``, the cache keeps the partition's offsets as they stand after the commit (all
   topics the batch read, including one this worker did not move); ``check`` drops a partition whose stored
   offsets differ in any way (another worker, a restart or a Redis failover wrote or rolled it back). An entry
   is used only in a batch whose ``check`` saw its partition.
3. Rebuilds. An entry keeps the bytes the commit wrote: where a batch has to rebuild the version from its
   state at the start of the batch, it decodes those, as it would the record read from Redis.
4. Memory. At most ``capacity`` versions, and at most ``max_saved_bytes`` of their saved bytes (a live state
   takes about 3.5 times its saved bytes; a version of 400 features measured 4 MB saved, 13.6 MB live), least
   recently used evicted (capacity 0: no cache).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["MAX_SAVED_BYTES", "CachedState", "StateCache"]

MAX_SAVED_BYTES = 64 * 1024 * 1024
"""The saved bytes the cached versions may add up to: about 220 MB of live states."""

TopicPartition = tuple[str, int]
Key = tuple[str, str]
S = TypeVar("S")


@dataclass(frozen=True)
class CachedState(Generic[S]):
    state: S
    """The live state, as it stood when its commit succeeded."""
    saved: bytes
    """What that commit wrote."""
    partition: int


class StateCache(Generic[S]):
    """Per (model, version): the live state this worker committed last, guarded by its partition's offsets.

    >>> cache = StateCache(capacity=2)
    >>> cache.put(0, {("t", 0): 7}, {("m", "1"): ("live", b"{}")})
    >>> cache.check({("t", 0): 7}, {0})
    >>> cache.take(("m", "1")).state
    'live'
    >>> cache.take(("m", "1")) is None  # taken: it comes back with the next commit
    True
    >>> cache.put(0, {("t", 0): 8}, {("m", "1"): ("live", b"{}")})
    >>> cache.check({("t", 0): 9}, {0})  # someone else moved partition 0
    >>> len(cache)
    0
    >>> small = StateCache(capacity=10, max_saved_bytes=5)
    >>> small.put(0, {("t", 0): 1}, {("a", "1"): ("A", b"123"), ("b", "1"): ("B", b"456")})
    >>> len(small), small.saved_bytes  # past the bytes: the least recently used went
    (1, 3)
    """

    def __init__(self, capacity: int, max_saved_bytes: int = MAX_SAVED_BYTES) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be 0 or more, got {capacity}")
        self.capacity = capacity
        self.max_saved_bytes = max_saved_bytes
        self.saved_bytes = 0
        self._entries: OrderedDict[Key, CachedState[S]] = OrderedDict()
        self._offsets: dict[int, dict[TopicPartition, int]] = {}
        self._checked: set[int] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def watched(self, partitions: set[int]) -> set[TopicPartition]:
        """The topic partitions whose stored offsets ``check`` needs for ``partitions``."""
        return {tp for n in partitions & self._offsets.keys() for tp in self._offsets[n]}

    def check(self, stored: dict[TopicPartition, int], partitions: set[int]) -> None:
        """At the start of a batch of ``partitions``, with the stored offsets it read (at least ``watched``):
        drop each partition whose offsets are not those after this worker's last commit of it. Only entries
        of ``partitions`` can be taken until the next check."""
        for n in partitions & self._offsets.keys():
            if any(stored.get(tp) != offset for tp, offset in self._offsets[n].items()):
                self.drop(n)
        self._checked = set(partitions)

    def take(self, key: Key) -> CachedState[S] | None:
        """The entry of ``key``, removed from the cache (the caller owns the state now); None where there is
        none, or its partition was not checked for this batch."""
        entry = self._entries.get(key)
        if entry is None or entry.partition not in self._checked:
            return None
        return self._remove(key)

    def put(self, partition: int, offsets: dict[TopicPartition, int], states: dict[Key, tuple[S, bytes]]) -> None:
        """A commit of ``partition`` succeeded: its stored offsets are now ``offsets``, and ``states`` (the
        live states and the bytes written) what it saved. The partition's other entries stay valid: only
        this commit wrote the partition since the last one."""
        if not self.capacity:
            return
        self._offsets[partition] = dict(offsets)
        for key, (state, saved) in states.items():
            self._remove(key)
            self._entries[key] = CachedState(state, saved, partition)
            self.saved_bytes += len(saved)
        while self._entries and (len(self._entries) > self.capacity or self.saved_bytes > self.max_saved_bytes):
            self._remove(next(iter(self._entries)))

    def _remove(self, key: Key) -> CachedState[S] | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.saved_bytes -= len(entry.saved)
        return entry

    def drop(self, partition: int) -> None:
        self._offsets.pop(partition, None)
        for key in [k for k, e in self._entries.items() if e.partition == partition]:
            self._remove(key)

    def clear(self) -> None:
        self.saved_bytes = 0
        self._entries.clear()
        self._offsets.clear()
        self._checked = set()
