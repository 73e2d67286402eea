"""Kafka's murmur2, checked against the values of Kafka's own UtilsTest.testMurmur2."""

import pytest

from producers.partitioning import murmur2, partition_for

KAFKA_VALUES = {  # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize("key,expected", sorted(KAFKA_VALUES.items()))
def test_murmur2_matches_kafka(key, expected):
    assert murmur2(key.encode()) == expected


def test_partition_is_the_positive_hash_modulo_the_partition_count():
    assert partition_for("foobar", 7) == (-790332482 & 0x7FFFFFFF) % 7
    assert partition_for(b"abc", 1) == 0
    with pytest.raises(ValueError):
        partition_for("abc", 0)
