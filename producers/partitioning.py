"""Which partition a keyed message lands on: Kafka's murmur2 partitioner, as Java clients and librdkafka's
``murmur2_random`` (set on every Driftline producer) compute it, so a model's partition is known without
reading the topic.

>>> partition_for(b"credit", 12) == partition_for(b"credit", 12) < 12
True
>>> murmur2(b"21")
-973932308
"""

from __future__ import annotations

__all__ = ["murmur2", "partition_for"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: MurmurHash2, 32 bits, seed 0x9747b28c, as a signed int like Java's."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes | str, partitions: int) -> int:
    """The partition of a message keyed ``key`` on a topic of ``partitions`` partitions (Kafka's
    ``toPositive(murmur2(key)) % partitions``)."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions
