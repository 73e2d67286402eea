"""The Redis Cluster of deploy/stack.sh, with redis-py's RedisCluster: keys of every slot are served,
moving slots while a client writes loses no write, and a replica takes over a killed master."""

from __future__ import annotations

import threading
import time

import pytest
import redis
pytestmark = pytest.mark.integration

SLOTS = 16384


def test_three_masters_cover_every_slot_and_serve_keys_of_each(redis_cluster):
    assert redis_cluster.env == {"DRIFTLINE_REDIS_CLUSTER_NODES": ",".join(redis_cluster.nodes)}
    masters = redis_cluster.masters()
    assert len(masters) == 3 and sum(m.slots for m in masters) == SLOTS
    client = redis_cluster.client()
    keys = [f"smoke:{i}" for i in range(300)]
    for key in keys:
        client.set(key, key.upper())
    served_by = {client.get_node_from_key(key).name for key in keys}
    assert served_by == {m.address for m in masters}
    assert [client.get(key) for key in keys] == [key.upper() for key in keys]
    assert client.delete(*keys) == len(keys)


def test_resharding_while_writing_loses_no_write(redis_cluster):
    client = redis_cluster.client()
    written: list[tuple[str, float]] = []  # (key, when written)
    failures: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        writer = redis_cluster.client()
        i = 0
        try:
            while not stop.is_set():
                key = f"reshard:{i}"
                writer.set(key, str(i))
                written.append((key, time.monotonic()))
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    while len(written) < 2000 and thread.is_alive():  # slots that move hold keys already
        time.sleep(0.01)
    before = {m.address: m.slots for m in redis_cluster.masters()}
    home_before = redis_cluster.client()  # a fresh slot map: where each key lived before
    early = [key for key, _ in written[:2000]]
    started = time.monotonic()
    source, target = redis_cluster.reshard(1500)
    ended = time.monotonic()
    time.sleep(0.5)
    stop.set()
    thread.join(30)

    assert not failures, failures
    after = {m.address: m.slots for m in redis_cluster.masters()}
    assert after[source.address] == before[source.address] - 1500
    assert after[target.address] == before[target.address] + 1500
    during = sum(started <= t <= ended for _, t in written)
    assert during > 100, f"only {during} writes happened while slots moved"
    values = client.mget_nonatomic([key for key, _ in written])
    lost = [key for (key, _), value in zip(written, values) if value != key.split(":")[1]]
    assert not lost, f"{len(lost)} of {len(written)} writes lost, e.g. {lost[:5]}"
    home_after = redis_cluster.client()
    moved = [key for key in early if home_before.get_node_from_key(key).name == source.address
             and home_after.get_node_from_key(key).name == target.address]
    assert moved, "no key written before the resharding moved with its slot"
    client.delete(*[key for key, _ in written])


def test_a_replica_takes_over_a_killed_master_with_its_keys(redis_cluster_with_replicas):
    cluster = redis_cluster_with_replicas
    client = cluster.client()
    keys = [f"failover:{i}" for i in range(500)]
    for key in keys:
        client.set(key, key)
    victim = cluster.nodes[1]
    on_victim = [key for key in keys if client.get_node_from_key(key).name == victim]
    assert on_victim
    for master in cluster.masters():  # every write replicated before the kill, so none may be lost
        host, port = master.address.rsplit(":", 1)
        assert redis.Redis(host=host, port=int(port)).wait(1, 5000) == 1
    promoted = cluster.kill_master(victim)
    assert promoted.address != victim and promoted.slots > 0
    after = cluster.client()
    assert {after.get_node_from_key(key).name for key in on_victim} == {promoted.address}
    assert after.mget_nonatomic(keys) == keys
