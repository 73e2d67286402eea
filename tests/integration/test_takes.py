"""The worker's takes (``faust_app/takes.py``) on a real broker: every message once and in order, within the
bounds, the next take filled while the agent works on this one, and a take the agent failed on not
acknowledged."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import confluent_kafka
import pytest

from producers import kafka
from producers.topics import ensure_topics

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("takes_app.py")


def _produce(s, topic: str, sizes: list[int], partitions: int) -> list[tuple[int, int]]:
    """One message of each size, keys spread over the partitions; the (partition, offset) of each."""
    ensure_topics(s.kafka, [topic], partitions)
    producer = kafka.producer(s.kafka, {"linger.ms": 20})
    placed: list = []
    for i, size in enumerate(sizes):
        producer.produce(topic, key=b"k%d" % (i % 7), value=b"x" * size,
                         on_delivery=lambda err, msg: placed.append((err, msg.partition(), msg.offset())))
        producer.poll(0)
    producer.flush(30)
    assert all(err is None for err, _p, _o in placed)
    return [(p, o) for _err, p, o in placed]


def _run(s, topic: str, out: Path, expect: int, *options: str, code: int = 0) -> list[dict]:
    done = subprocess.run([sys.executable, str(APP), "--topic", topic, "--group", f"{topic}-group",
                           "--expect", str(expect), "--out", str(out), *options],
                          env=s.to_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == code, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def _each_once_in_order(taken: list[dict], placed: list[tuple[int, int]]) -> None:
    seen = [tuple(o) for take in taken for o in take["offsets"]]
    assert sorted(seen) == sorted(placed)  # every message once: none lost, none twice
    for partition in {p for p, _o in placed}:
        offsets = [o for p, o in seen if p == partition]
        assert offsets == sorted(offsets)


def test_a_backlog_comes_in_full_takes_filled_while_the_agent_works(settings, tmp_path):
    topic = f"{settings.app_id}.takes"
    placed = _produce(settings, topic, [100] * 3000, 2)
    # the agent is busy 1.5 s with each take and comes back for the next after 10 ms: faust's take_events
    # would hand it what it moves in those 10 ms; these takes filled while it worked
    taken = _run(settings, topic, tmp_path / "takes.jsonl", 3000, "--max-messages", "500", "--within", "0.01",
                 "--work", "1.5")
    _each_once_in_order(taken, placed)
    counts = [len(t["offsets"]) for t in taken]
    assert max(counts) == 500
    assert all(n == 500 for n in counts[1:-1]), counts


def test_takes_keep_within_their_bytes_and_a_larger_message_comes_alone(settings, tmp_path):
    topic = f"{settings.app_id}.takes"
    rng = random.Random(7)
    sizes = [rng.randint(1, 30_000) for _ in range(400)]
    sizes[150] = sizes[151] = 250_000  # each above the bound: a take of its own
    placed = _produce(settings, topic, sizes, 1)
    # a take waits up to 2 s to fill once the agent is back: cut by its bound, never by the clock
    taken = _run(settings, topic, tmp_path / "takes.jsonl", len(sizes), "--max-bytes", "100000", "--work", "0.2",
                 "--within", "2")
    _each_once_in_order(taken, placed)
    assert [t["sizes"] for t in taken if sum(t["sizes"]) > 100_000] == [[250_000], [250_000]]
    by_offset = dict(zip([o for _p, o in placed], sizes))
    # behind a backlog a take ends only where the next message would not fit (as chunks() cuts a batch)
    for take in taken[1:-1]:
        last = take["offsets"][-1][1]
        if last + 1 in by_offset and sum(take["sizes"]) <= 100_000:
            assert sum(take["sizes"]) + by_offset[last + 1] > 100_000, take["sizes"]


def test_a_take_the_agent_failed_on_is_not_acknowledged(settings, tmp_path):
    topic = f"{settings.app_id}.takes"
    placed = _produce(settings, topic, [100] * 300, 1)
    taken = _run(settings, topic, tmp_path / "takes.jsonl", 300, "--max-messages", "100", "--work", "0.5",
                 "--fail-at", "2", code=3)
    [first] = taken  # the second take failed: it was not recorded
    size = len(first["offsets"])
    assert 0 < size <= 100 and [o for _p, o in first["offsets"]] == list(range(size))
    consumer = confluent_kafka.Consumer({**settings.kafka.client_config(), "group.id": f"{topic}-group"})
    try:
        [committed] = consumer.committed([confluent_kafka.TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    # the first take was acknowledged (faust commits the offset after it); the second, which failed, was not
    # (faust's take_events acknowledges a take in a finally, failed or not: there, all 300 were)
    assert committed.offset == size and len(placed) == 300
