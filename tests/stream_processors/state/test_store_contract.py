"""One contract, two stores: the in-memory store behaves as the Redis store does (commits, offsets,
conflicts, quarantine, expiry of kept predictions, the label join, a commit saved partition by partition).
The Redis cases talk to the real Redis, and to a real Redis Cluster of the test session's own, under an app id
of their own; every store has PARTITIONS partitions, so a batch over several partitions commits in parts."""

from __future__ import annotations

import copy
import hashlib
import random
import time
import uuid
from dataclasses import dataclass, field

import orjson
import pytest
import redis

from detectors.model.label_join import LabelJoin
from detectors.model.params import JoinParams
from detectors.model.writes import AwaitLabel, CountLabels, ForgetLabel, KeepPredictions, MarkJoined
from producers.events import encode_envelope
from producers.partitioning import partition_for
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import RedisConnection, Settings, load_settings
from stream_processors.errors import ServiceUnavailable, StateRolledBack
from stream_processors.state import MemoryStateStore, Quarantine, RedisStateStore, redis_client
from tests.integration.redis_cluster import redis_cluster  # noqa: F401 - the cluster case's own cluster

PARTITIONS = 3
P = partition_for("m", PARTITIONS)  # model "m"'s partition, where its writes and offsets go together


@dataclass
class Commit:
    offsets: dict = field(default_factory=dict)
    states: dict = field(default_factory=dict)
    events_total: dict = field(default_factory=dict)
    writes: list = field(default_factory=list)
    quarantined: list = field(default_factory=list)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration),
                        pytest.param("cluster", marks=pytest.mark.integration)])
def store(request):
    """(store, advance): ``advance(seconds)`` lets that much time pass for the store."""
    if request.param == "memory":
        clock = Clock()

        def advance(seconds: float) -> None:
            clock.now += seconds

        yield MemoryStateStore(clock, partitions=PARTITIONS), advance
        return
    connection = load_settings().redis
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        connection = RedisConnection(connection.url, cluster_nodes=",".join(cluster.nodes))
    try:
        redis_client(connection, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.fail(f"Redis is not reachable at {connection.redacted()}: run 'make stack-up'")
    app_id = f"contract-{uuid.uuid4().hex[:10]}"
    yield RedisStateStore(connection, app_id, PARTITIONS), time.sleep
    client = redis_client(connection)
    for pattern in (f"driftline:{app_id}:*", f"{{driftline:{app_id}:p*"):
        for key in list(client.scan_iter(match=pattern)):
            client.delete(key)


def test_a_commit_writes_states_and_offsets_together(store):
    store, _ = store
    tp = ("inference", P)
    assert store.offsets([tp]) == {tp: -1}
    assert store.load([("m", "1")]) == {("m", "1"): None}
    assert store.commit(Commit({tp: (-1, 41)}, {("m", "1"): b'{"events": 3}'}, {("m", "1"): 3}))
    assert store.offsets([tp]) == {tp: 41}
    assert store.load([("m", "1")]) == {("m", "1"): {"events": 3}}
    assert store.model_summaries()[("m", "1")]["events"] == 3
    assert set(store.models()) == {("m", "1")}


def test_a_commit_from_a_stale_offset_writes_nothing(store):
    store, _ = store
    tp = ("inference", P)
    assert store.commit(Commit({tp: (-1, 10)}, {("m", "1"): b'{"v": 1}'}, {("m", "1"): 1}))
    stale = Commit({tp: (5, 20)}, {("m", "1"): b'{"v": 2}'}, {("m", "1"): 2},
                   writes=[CountLabels("m", joined=1)])
    assert not store.commit(stale)
    assert store.offsets([tp]) == {tp: 10}
    assert store.load([("m", "1")])[("m", "1")] == {"v": 1}
    assert store.label_counts() == {}


def test_undecodable_state_is_handed_back_as_bytes_and_can_be_quarantined(store):
    store, _ = store
    tp = ("inference", P)
    assert store.commit(Commit({tp: (-1, 0)}, {("m", "1"): b"{damaged"}, {("m", "1"): 1}))
    raw = store.load([("m", "1")])[("m", "1")]
    assert raw == b"{damaged"
    store.put_profile({"model": "m", "model_version": "1", "columns": {}})
    assert store.profiles([("m", "1")])[("m", "1")]["model"] == "m"
    assert not store.put_profile({"model": "m", "model_version": "1", "x": 1}, only_if_absent=True)
    assert store.commit(Commit({tp: (0, 1)}, quarantined=[Quarantine("profile", "m", "1", b"{p", "bad"),
                                                             Quarantine("state", "m", "1", raw, "ValueError")]))
    record = store.quarantined()[("m", "1")]
    assert record["record"] == "state" and record["error"] == "ValueError"
    assert record["sha256"] == hashlib.sha256(raw).hexdigest()
    assert store.quarantined_record("state", record["sha256"]) == raw
    assert store.profiles([("m", "1")]) == {("m", "1"): None}  # a quarantined profile is not read again


def test_kept_predictions_are_found_in_their_hour_and_expire(store):
    store, advance = store
    now = time.time()
    hour = int(now // 3600)
    writes = [KeepPredictions("m", hour, 1, ("e0", "e1", "e2"), tuple(("1", i % 2, 0.5, 10.0 + i) for i in range(3))),
              KeepPredictions("m", hour - 1, 60, ("old",), (("1", "yes", None, 1.0),))]
    assert store.commit(Commit({("inference", P): (-1, 0)}, writes=writes))
    assert store.kept_predictions("m", [hour, hour - 1], ["e1", "old", "nope"]) == \
        [["1", 1, 0.5, 11.0], ["1", "yes", None, 1.0], None]
    assert store.kept_predictions("other", [hour], ["e1"]) == [None]
    advance(2.2)
    assert store.kept_predictions("m", [hour, hour - 1], ["e1", "old"]) == [None, ["1", "yes", None, 1.0]]


# event ids and values that a JSON round trip (orjson in Python, cjson in the commit script) could change
_TRICKY = ["é", "日本語", "😀 astral 𝄞", 'quote " and \\ backslash', "\x00 nul", "\x01\x1f\x7f controls",
           "\n\r\t\b\f", "\u2028\u2029", "/slash/", "\ud7ff\ue000\uffff\U0010ffff", "", "null", "1e5", "[{",
           "\\u0041 not an escape", "x" * 100_000]
_VALUES = [0.1, -0.0, 1e300, 5e-324, 1.7976931348623157e308, 2 ** 63 - 1, -(2 ** 63), 1732680000.123456, None,
           True, "é\"\\\x00😀", {"a": [1, 2.5, "x", None], "é": {}}, [], 12345678901234567890]


def _bucket(store, model: str, hour: int) -> dict[bytes, bytes]:
    """The raw fields of a kept predictions' hour bucket, as the store holds them."""
    if isinstance(store, MemoryStateStore):
        return {k.encode(): v for k, v in store._predictions[(model, hour)][0].items()}
    return store.client.hgetall(store.keys().predictions(model, hour))


def test_kept_predictions_are_stored_byte_for_byte_as_one_json_record_per_event(store):
    """Each event id is a field of its hour's hash holding exactly orjson's [version, prediction, score, timestamp]
    (what older workers wrote): tricky strings, numbers of every kind, several buckets, a bucket of more fields
    than one HSET takes, a bucket written twice, an event id kept twice (the later wins), and none at all."""
    store, _ = store
    hour = int(time.time() // 3600)
    tricky = [("1", v, v, 1.5) for v in _VALUES] + [(s, s, 0.5, 2.0) for s in _TRICKY]
    many = 2 * 2000 + 3  # more than redis_store's _UNPACK_LIMIT field/value pairs per HSET
    writes = [KeepPredictions("m", hour, 3600, tuple(_TRICKY + [f"v{i}" for i in range(len(_VALUES))]),
                              tuple(tricky[len(_VALUES):] + tricky[:len(_VALUES)])),
              KeepPredictions("m", hour - 1, 3600, tuple(f"e{i}" for i in range(many)),
                              tuple(("2", i, i / 7, 1e9 + i) for i in range(many))),
              KeepPredictions("m", hour - 5, 3600, ("a", "b", "a"), (("1", 1, None, 1.0), ("1", 2, None, 2.0),
                                                                     ("1", 3, None, 3.0))),
              KeepPredictions("m", hour - 7, 3600, (), ())]
    assert store.commit(Commit({("inference", P): (-1, 0)}, writes=writes))
    assert store.commit(Commit({("inference", P): (0, 1)}, writes=[
        KeepPredictions("m", hour - 5, 3600, ("c", "b"), (("9", "late", 0.25, 4.0), ("9", "again", 0.5, 5.0)))]))
    expected = {w.hour: {} for w in writes}
    for w in [*writes, KeepPredictions("m", hour - 5, 0, ("c", "b"), (("9", "late", 0.25, 4.0),
                                                                      ("9", "again", 0.5, 5.0)))]:
        expected[w.hour].update({i.encode(): orjson.dumps(p) for i, p in zip(w.event_ids, w.predictions)})
    for h, fields in expected.items():
        assert _bucket(store, "m", h) == fields, h
    assert _bucket(store, "m", hour)[b"v0"] == b'["1",0.1,0.1,1.5]'
    assert _bucket(store, "m", hour - 5) == {b"a": b'["1",3,null,3.0]', b"b": b'["9","again",0.5,5.0]',
                                              b"c": b'["9","late",0.25,4.0]'}
    assert len(_bucket(store, "m", hour - 1)) == many and store.kept_predictions("m", [hour - 7], ["a"]) == [None]
    hours = [hour, hour - 1, hour - 5]
    ids = [*_TRICKY, "e0", f"e{many - 1}", "b", "nope"]
    assert store.kept_predictions("m", hours, ids) == [
        *([s, s, 0.5, 2.0] for s in _TRICKY), ["2", 0, 0.0, 1e9], ["2", many - 1, (many - 1) / 7, 1e9 + many - 1],
        ["9", "again", 0.5, 5.0], None]
    if isinstance(store, RedisStateStore):
        for h in hours:
            assert 0 < store.client.ttl(store.keys().predictions("m", h)) <= 3600


def _random_text(rng: random.Random) -> str:
    alphabet = ["a", "Z", "0", " ", '"', "\\", "/", "\x00", "\x1f", "\n", "\x7f", "é", "日", "\u2028", "\ud7ff",
                "\ue000", "\uffff", "😀", "\U0010ffff", "[", "}", ","]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))


def _random_value(rng: random.Random) -> object:
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randint(-2 ** 63, 2 ** 64 - 1)
    if kind == 1:
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(-300, 300)
    if kind == 2:
        return rng.choice([None, True, False, 0.0, -0.0])
    if kind == 3:
        return _random_text(rng)
    if kind == 4:
        return [rng.random(), _random_text(rng), {"k": rng.randint(0, 9)}]
    return rng.random()


def test_random_kept_predictions_leave_the_same_bytes_as_on_the_memory_store(store):
    """The same random writes (random ids and values, ids kept twice, a write longer than one HSET takes) leave
    each hour bucket as the in-memory store has it."""
    store, _ = store
    rng = random.Random(11)
    memory = MemoryStateStore(partitions=PARTITIONS)
    hour = int(time.time() // 3600)
    ids = [_random_text(rng) for _ in range(300)]
    for offset in range(4):
        writes = []
        for h in (hour, hour - 1, hour - 2):
            n = 4100 if (offset, h) == (1, hour) else rng.randint(0, 200)
            chosen = tuple(rng.choice(ids) if rng.random() < 0.5 else f"{offset}-{i}-{_random_text(rng)}"
                           for i in range(n))
            writes.append(KeepPredictions("m", h, 3600, chosen, tuple(
                (_random_text(rng), _random_value(rng), _random_value(rng), rng.random() * 2e9) for _ in chosen)))
        for target in (store, memory):
            assert target.commit(Commit({("inference", P): (offset - 1, offset)}, writes=writes))
    for h in (hour, hour - 1, hour - 2):
        assert _bucket(store, "m", h) == _bucket(memory, "m", h), h
    assert store.kept_predictions("m", [hour, hour - 1, hour - 2], ids) == \
        memory.kept_predictions("m", [hour, hour - 1, hour - 2], ids)


def test_waiting_labels_fall_due_and_are_forgotten(store):
    store, _ = store
    writes = [AwaitLabel("m", "a", 1, 5.0, deadline=100.0, ttl_s=3600),
              AwaitLabel("m", "b", "no", 6.0, deadline=50.0, ttl_s=3600),
              CountLabels("m", pending=2)]
    assert store.commit(Commit({("labels", P): (-1, 0)}, writes=writes))
    assert store.pending_labels("m") == 2 and store.pending_labels("x") == 0
    assert store.waiting_labels("m", ["a", "b", "c"]) == [{"l": 1, "t": 5.0}, {"l": "no", "t": 6.0}, None]
    assert store.due_labels("m", 49.0, 10) == []
    assert store.due_labels("m", 100.0, 10) == ["b", "a"]  # by deadline
    assert store.due_labels("m", 100.0, 1) == ["b"]  # the sweep's LIMIT
    assert store.commit(Commit({("labels", P): (0, 1)},
                               writes=[ForgetLabel("m", "b"), CountLabels("m", pending=-1, unmatched=1)]))
    assert store.due_labels("m", 100.0, 10) == ["a"]
    assert store.waiting_labels("m", ["b"]) == [None]
    assert store.label_counts() == {"m:pending": 1, "m:unmatched": 1}


def test_pending_labels_of_many_models_are_read_at_once(store):
    store, _ = store
    models = [f"model-{i}" for i in range(40)]
    by_partition: dict[int, list] = {}
    for i, model in enumerate(models[:8]):  # i + 1 labels wait: the count is the size of the waiting set
        by_partition.setdefault(store.partition_of(model), []).extend(
            [AwaitLabel(model, f"e{j}", 1, 5.0, deadline=1e12, ttl_s=3600) for j in range(i + 1)]
            + [CountLabels(model, pending=i + 1)])
    assert len(by_partition) > 1  # models of several partitions (slots, on a cluster)
    for partition, writes in by_partition.items():
        assert store.commit(Commit({("labels", partition): (-1, 0)}, writes=writes))
    read = store.pending_labels_of(["unknown", *models])
    assert read == {"unknown": 0, **{m: i + 1 for i, m in enumerate(models[:8])}, **{m: 0 for m in models[8:]}}
    assert read["model-3"] == store.pending_labels("model-3") == 4
    assert store.pending_labels_of([]) == {}


def test_the_label_join_runs_alike_on_both_stores(store):
    store, _ = store
    join = LabelJoin(JoinParams(keep_predictions=True, prediction_ttl_s=86400, label_wait_s=60.0), store)
    now = time.time()
    predictions = {"m": [("1", {"event_id": f"e{i}", "prediction": i % 2, "score": 0.1 * i, "timestamp": now})
                         for i in range(5)]}
    first = join.run(predictions, {"m": [{"event_id": "e0", "label": 0, "timestamp": now},
                                         {"event_id": "late", "label": 1, "timestamp": now}]}, now)
    assert [j.event_id for j in first.joined[("m", "1")]] == ["e0"]
    assert store.commit(Commit({("inference", P): (-1, 0)}, writes=first.writes))
    second = join.run({}, {"m": [{"event_id": f"e{i}", "label": 1, "timestamp": now} for i in (3, 4)]}, now + 1)
    assert [(j.event_id, j.prediction, j.label) for j in second.joined[("m", "1")]] == [("e3", 1, 1), ("e4", 0, 1)]
    assert store.commit(Commit({("inference", P): (0, 1)}, writes=second.writes))
    third = join.run({"m": [("1", {"event_id": "late", "prediction": 1, "score": None, "timestamp": now})]}, {},
                     now + 2)
    assert [j.event_id for j in third.joined[("m", "1")]] == ["late"]
    assert store.commit(Commit({("inference", P): (1, 2)}, writes=third.writes))
    assert store.label_counts() == {"m:joined": 4, "m:pending": 0}
    fourth = join.run({}, {"m": [{"event_id": "never", "label": 1, "timestamp": now}]}, now + 3)
    assert store.commit(Commit({("inference", P): (2, 3)}, writes=fourth.writes))
    gone = join.run({}, {"m": []}, now + 100)  # a model's due labels are settled when it has traffic
    assert gone.unmatched == {"m": 1}
    assert store.commit(Commit({("inference", P): (3, 4)}, writes=gone.writes))
    assert store.label_counts()["m:unmatched"] == 1 and store.pending_labels("m") == 0


def test_a_batch_over_partitions_saves_each_and_its_redo_after_a_conflict_counts_nothing_twice(store):
    """Partition a's part is saved, then b's conflicts: the redo skips a's messages by their offset and applies
    b's once, so each model ends with exactly the events produced for it."""
    store, _ = store
    models = {"a": partition_for("a", PARTITIONS), "m": P}
    assert models["a"] < models["m"]  # the commit saves a's partition first
    settings = Settings(topic_partitions=PARTITIONS)
    messages = [IncomingMessage("t", part, offset, encode_envelope(model, [
        {"event_id": f"{model}-{offset}-{i}", "features": {"x": float(i)}, "prediction": 1, "score": 0.5,
         "timestamp": 1.0 + i} for i in range(4)], "1"), model.encode())
        for model, part in models.items() for offset in range(3)]
    first = BatchProcessor(settings, store).process(messages)
    assert set(first.offsets) == {("t", models["a"]), ("t", P)}
    # another writer advances m's partition meanwhile (a worker that owned it before a rebalance, say)
    assert store.commit(Commit({("t", P): (-1, 0)}))
    assert not store.commit(first)
    assert store.offsets([("t", models["a"]), ("t", P)]) == {("t", models["a"]): 2, ("t", P): 0}
    assert store.load([("m", "1")])[("m", "1")] is None
    redo = BatchProcessor(settings, store).process(messages)
    assert redo.skipped_messages == 3 + 1 and set(redo.offsets) == {("t", P)}
    assert store.commit(redo)
    summaries = store.model_summaries()
    assert summaries[("a", "1")]["events"] == 12  # 3 messages x 4 events, once
    assert summaries[("m", "1")]["events"] == 8   # offsets 1 and 2: offset 0 counts as the other writer's


def test_a_part_with_writes_but_no_offset_of_its_partition_is_refused(store):
    """Nothing guards such a part (its partition may be another worker's now): the store writes none of it."""
    store, _ = store
    other = next(f"o{i}" for i in range(50) if partition_for(f"o{i}", PARTITIONS) != P)
    tp = ("t", partition_for(other, PARTITIONS))
    unguarded = Commit({tp: (-1, 0)}, {("m", "1"): b'{"v": 1}'}, {("m", "1"): 1},
                       writes=[CountLabels("m", unmatched=1)])
    assert not store.commit(unguarded)
    assert store.load([("m", "1")])[("m", "1")] is None and store.label_counts() == {}
    assert not store.commit(Commit(writes=[CountLabels("m", unmatched=1)]))  # no offset at all
    assert store.label_counts() == {}
    assert store.commit(Commit())  # nothing to write: nothing to guard


def _label_message(model: str, offset: int, event_id: str) -> IncomingMessage:
    value = encode_envelope(model, [{"event_id": event_id, "label": 1, "timestamp": time.time()}], kind="label")
    return IncomingMessage("lab", partition_for(model, PARTITIONS), offset, value, model.encode())


def test_the_idle_label_sweep_settles_labels_only_of_partitions_the_batch_has_fresh_messages_of(store):
    """Worker A's late batch holds only skipped messages of partition pb (worker B, its new owner, applied them):
    A's sweep must not settle b's waiting label in pb, which B settles; else it is counted twice."""
    store, _ = store
    names = [f"model{i}" for i in range(60)]
    b = next(n for n in names if partition_for(n, PARTITIONS) != P)
    pb = partition_for(b, PARTITIONS)
    c = next(n for n in names if n != b and partition_for(n, PARTITIONS) == pb)
    settings = Settings(topic_partitions=PARTITIONS, label_wait_s=0.0)
    worker_a = BatchProcessor(settings, store)
    assert store.commit(worker_a.process([_label_message(b, 0, "L")]))  # A owned pb: L waits
    assert store.pending_labels(b) == 1
    time.sleep(0.01)  # L is due
    worker_b = BatchProcessor(settings, store)  # pb's new owner
    assert store.commit(worker_b.process([_label_message(c, 1, "C")]))
    event = {"event_id": "e", "features": {"x": 1.0}, "prediction": 1, "score": 0.5, "timestamp": time.time()}
    late = worker_a.process([IncomingMessage("inf", P, 0, encode_envelope("m", [event], "1"), b"m"),
                             _label_message(c, 1, "C")])  # pb's offset 1 is skipped
    assert set(late.offsets) == {("inf", P)}
    assert not any(getattr(w, "model", None) == b for w in late.writes)  # b is not swept by A
    assert store.commit(worker_b.process([_label_message(b, 2, "L2")]))  # B settles L, L2 waits
    assert store.commit(late)
    counts = store.label_counts()
    assert counts.get(f"{b}:unmatched") == 1, counts
    assert store.pending_labels(b) == 1, counts


def test_a_message_on_another_partition_than_its_models_is_dead_lettered(store):
    store, _ = store
    elsewhere = (P + 1) % PARTITIONS
    event = {"event_id": "e", "features": {"x": 1.0}, "prediction": 1, "score": 0.5, "timestamp": 1.0}
    outcome = BatchProcessor(Settings(topic_partitions=PARTITIONS), store).process(
        [IncomingMessage("t", elsewhere, 0, encode_envelope("m", [event], "1"), b"m")])
    assert [(d["reason_code"], d["model"]) for d in outcome.dead_letters] == [("wrong_partition", "m")]
    assert "murmur2" in outcome.dead_letters[0]["reason"] and outcome.events == 0
    assert store.commit(outcome)
    assert store.offsets([("t", elsewhere)]) == {("t", elsewhere): 0} and store.models() == {}


def test_a_batch_writes_only_the_model_versions_it_touched(store):
    store, _ = store
    untouched = b'{"left": "as it was"}'
    assert store.commit(Commit({("t", P): (-1, 0)}, {("m", "0"): untouched}, {("m", "0"): 7}))
    event = {"event_id": "e", "features": {"x": 1.0}, "prediction": 1, "score": 0.5, "timestamp": 1.0}
    outcome = BatchProcessor(Settings(topic_partitions=PARTITIONS), store).process(
        [IncomingMessage("t", P, 1, encode_envelope("m", [event], "1"), b"m")])
    assert set(outcome.states) == {("m", "1")}
    assert store.commit(outcome)
    assert store.load([("m", "0")])[("m", "0")] == {"left": "as it was"}
    assert store.model_summaries()[("m", "0")]["events"] == 7


@pytest.mark.parametrize("error", [redis.exceptions.ClusterDownError("CLUSTERDOWN"),
                                   redis.exceptions.MasterDownError("MASTERDOWN"),
                                   redis.exceptions.TryAgainError("TRYAGAIN"),
                                   redis.exceptions.MovedError("3999 127.0.0.1:7001"),
                                   redis.exceptions.AskError("3999 127.0.0.1:7001"),
                                   redis.exceptions.SlotNotCoveredError("slot 3999 is not covered"),
                                   redis.exceptions.RedisClusterException("no node answers")])
def test_cluster_errors_are_redis_unavailable_for_the_retry_path_never_data_errors(error):
    from stream_processors.errors import ServiceUnavailable

    store = RedisStateStore("redis://127.0.0.1:1/0", "app", PARTITIONS)  # never connects: only _call is used

    def failing():
        raise error

    with pytest.raises(ServiceUnavailable):
        store._call(failing)


def test_one_models_label_counts_and_quarantine_are_read_from_its_own_partition(store):
    store, _ = store
    tp = ("inference", P)
    assert store.model_label_counts("m") == {"joined": 0, "pending": 0, "unmatched": 0}
    assert store.quarantine_of("m", "1") is None
    assert store.commit(Commit({tp: (-1, 0)}, writes=[CountLabels("m", joined=3, pending=2, unmatched=1)],
                               quarantined=[Quarantine("state", "m", "1", b"{x", "ValueError")]))
    assert store.model_label_counts("m") == {"joined": 3, "pending": 2, "unmatched": 1}
    assert store.quarantine_of("m", "1") == store.quarantined()[("m", "1")]
    assert store.quarantine_of("m", "2") is None and store.model_label_counts("n")["joined"] == 0


def _app_keys(store: RedisStateStore) -> list:
    prefix = store.keys().prefix
    return sorted({*store.client.scan_iter(match=f"{prefix}:*"), *store.client.scan_iter(match=f"{{{prefix}:p*")})


def _snapshot(store):
    """Everything the store holds for its app, to roll back to (what a failover to a lagging replica does)."""
    if isinstance(store, MemoryStateStore):
        return copy.deepcopy({k: v for k, v in vars(store).items() if k != "_clock"})
    return {key: store.client.dump(key) for key in _app_keys(store)}


def _roll_back(store, snapshot) -> None:
    if isinstance(store, MemoryStateStore):
        vars(store).update(copy.deepcopy(snapshot))
        return
    for key in _app_keys(store):
        store.client.delete(key)
    for key, dumped in snapshot.items():
        store.client.restore(key, 0, dumped)


def _inference(offset: int, n: int = 3, model: str = "m", partition: int = P) -> IncomingMessage:
    events = [{"event_id": f"e{offset}-{i}", "features": {"x": float(offset * n + i)}, "prediction": 1,
               "score": 0.5, "timestamp": 1.0} for i in range(n)]
    return IncomingMessage("inf", partition, offset, encode_envelope(model, events, "1"), model.encode())


@pytest.mark.parametrize("lost", ["inference", "labels"])
def test_redis_losing_writes_the_worker_saw_saved_is_refused_not_skipped_past(store, lost):
    """After a rollback the worker's consumer is past Redis's offsets: applying its next messages would skip the
    lost ones. The batch refuses (``StateRolledBack``), naming the offsets; a loss of the label topic's writes
    shows in a batch of inference messages alone, since both write the model's state."""
    store, _ = store
    worker = BatchProcessor(Settings(topic_partitions=PARTITIONS), store)

    def commit(messages):
        outcome = worker.process(messages)
        assert store.commit(outcome)
        worker.committed(outcome.offsets)

    commit([_inference(0), _label_message("m", 0, "e0-0")])
    before = _snapshot(store)
    commit([_inference(1)] if lost == "inference" else [_label_message("m", 1, "e0-1")])
    _roll_back(store, before)
    with pytest.raises(StateRolledBack) as raised:
        worker.process([_inference(2)])
    which = "inf" if lost == "inference" else "lab"
    assert f"{which}:{P} saved up to offset 1, Redis now holds 0" in str(raised.value)
    # a worker that never saw the lost writes (the restart) reads again from Redis's offsets, and Kafka delivers
    # them again: the state is the uninterrupted run's
    restarted = BatchProcessor(Settings(topic_partitions=PARTITIONS), store)
    redone = restarted.process([_inference(1)] if lost == "inference" else [_label_message("m", 1, "e0-1")])
    assert store.commit(redone)


def test_offsets_moved_forward_by_another_worker_are_not_a_rollback(store):
    store, _ = store
    a = BatchProcessor(Settings(topic_partitions=PARTITIONS), store)
    outcome = a.process([_inference(0)])
    assert store.commit(outcome)
    a.committed(outcome.offsets)
    assert store.commit(BatchProcessor(Settings(topic_partitions=PARTITIONS), store).process([_inference(1)]))
    assert a.process([_inference(1), _inference(2)]).offsets == {("inf", P): (1, 2)}


def test_one_models_versions_are_read_from_its_own_registry_entries_whatever_its_name(store):
    """``status --model M`` asks for M's versions only; names that are glob patterns, or that begin another
    model's name, match only themselves."""
    store, _ = store
    saved = [("a", "1"), ("a", "2"), ("a*", "1"), ("ab", "1"), ("a[1]", "3"), ("a\\", "4"), ("a?", "5"),
             ("é:x", "6")]
    for i, (model, version) in enumerate(saved):
        tp = (f"t{i}", partition_for(model, PARTITIONS))
        assert store.commit(Commit({tp: (-1, 0)}, {(model, version): b"{}"}, {(model, version): 1}))
    for model in {m for m, _v in saved}:
        assert set(store.versions_of(model)) == {v for m, v in saved if m == model}, model
    assert store.versions_of("a")["2"] == store.models()[("a", "2")]
    assert store.versions_of("b") == {} and store.versions_of("") == {}


def test_the_registry_keeps_each_versions_decision_and_is_read_by_partition(store):
    """What a worker exports for its models before their next event: count, last update and decision, read from
    the registries of its own partitions only."""
    store, _ = store
    names = [f"r{i}" for i in range(40)]
    chosen = {}
    for name in names:
        chosen.setdefault(partition_for(name, PARTITIONS), name)
    assert len(chosen) == PARTITIONS
    for n, model in chosen.items():
        outcome = BatchProcessor(Settings(topic_partitions=PARTITIONS), store).process(
            [_inference(0, model=model, partition=n)])
        assert outcome.decisions == {(model, "1"): "continue"}
        assert store.commit(outcome)
    first, second = chosen[0], chosen[1]
    assert store.summaries_of({0}) == {(first, "1"): {"events": 3, "updated": store.models()[(first, "1")],
                                                      "decision": "continue"}}
    assert set(store.summaries_of({0, 1})) == {(first, "1"), (second, "1")}
    assert store.summaries_of({0, 1}) == {k: v for k, v in store.model_summaries().items() if k[0] != chosen[2]}
    some = store.summaries_of({0, 1, 2}, limit=2)  # a worker reads no more than it can export
    assert len(some) == 2 and all(store.model_summaries()[k] == v for k, v in some.items())


def test_after_an_assignment_the_rollback_check_starts_from_what_redis_held(store):
    """Redis lost a partition and another worker rebuilt it from the earliest offset; when the partition comes
    back to the first worker, its consumer is sought to the offset after Redis's (``resumed_from``): its earlier,
    higher offsets must not make it refuse the batch (and exit) when nothing can be skipped."""
    store, _ = store
    empty = _snapshot(store)
    a = BatchProcessor(Settings(topic_partitions=PARTITIONS), store)
    for offset in range(3):
        outcome = a.process([_inference(offset)])
        assert store.commit(outcome)
        a.committed(outcome.offsets)
    _roll_back(store, empty)  # the state is lost, and rebuilt by the partition's owner meanwhile
    assert store.commit(BatchProcessor(Settings(topic_partitions=PARTITIONS), store).process([_inference(0)]))
    a.rebalanced()
    a.resumed_from(store.offsets([("inf", P)]))  # what the seek at the assignment does
    assert a.process([_inference(1)]).offsets == {("inf", P): (0, 1)}


@pytest.mark.parametrize("store", [pytest.param("redis", marks=pytest.mark.integration),
                                   pytest.param("cluster", marks=pytest.mark.integration)], indirect=True)
def test_a_commit_that_fails_in_its_script_writes_nothing(store, monkeypatch):
    """Redis keeps the writes a script made before it failed: everything the commit script can fail on (decoding
    the kept predictions) is done before its first write, so a failed commit leaves offsets and states as they
    were and its retry applies the batch again."""
    store, _ = store
    import stream_processors.state.redis_store as redis_store

    tp = ("inference", P)
    assert store.commit(Commit({tp: (-1, 10)}, {("m", "1"): b'{"v": 1}'}, {("m", "1"): 1}))
    monkeypatch.setattr(redis_store, "_kept", lambda write: b"[not json")
    hour = int(time.time() // 3600)
    kept = KeepPredictions("m", hour, 3600, ("e",), (("1", 1, None, 1.0),))
    failing = Commit({tp: (10, 20)}, {("m", "1"): b'{"v": 2}'}, {("m", "1"): 2}, writes=[CountLabels("m", joined=1), kept])
    with pytest.raises(ServiceUnavailable):
        store.commit(failing)
    assert store.offsets([tp]) == {tp: 10}
    assert store.load([("m", "1")])[("m", "1")] == {"v": 1}
    assert store.label_counts() == {}
    assert _bucket(store, "m", hour) == {}


@pytest.mark.integration
@pytest.mark.parametrize("store", ["redis", "cluster"], indirect=True)
def test_a_damaged_pending_label_count_is_set_again_from_the_labels_that_wait(store, caplog):
    """Driftline only adds to a model's count of waiting labels; a value damaged from outside used to fail the
    join at every batch (its labels dead-lettered, then the worker stopped), and HINCRBY would fail the commit
    script after the offsets were written. The count is set again from the waiting labels themselves."""
    store, _ = store
    worker = BatchProcessor(Settings(topic_partitions=PARTITIONS, label_wait_s=3600.0), store)
    offsets = {"inf": 0, "lab": 0}

    def commit(messages):
        outcome = worker.process(messages)
        assert store.commit(outcome)
        worker.committed(outcome.offsets)
        return outcome

    def label(event_id: str) -> IncomingMessage:
        offsets["lab"] += 1
        return _label_message("m", offsets["lab"], event_id)

    commit([label("early-a"), label("early-b")])  # no prediction yet: both wait
    key, field = store.keys().for_model("m").label_counts, "m:pending"
    assert store.pending_labels("m") == 2
    for i, damage in enumerate([b"2.0", b"banana", b" 2", b"99999999999999999999", b"", b"-0",
                                b"9223372036854775807", b"-9223372036854775808", b"1000000000000000000"]):
        store.client.hset(key, field, damage)
        offsets["inf"] += 1
        with caplog.at_level("ERROR"):
            outcome = commit([_inference(offsets["inf"]), label(f"e{offsets['inf']}-0"), label(f"late-{i}")])
        assert outcome.dead_letters == [] and outcome.labels == 2, (damage, outcome.dead_letters)
        assert store.model_label_counts("m")["joined"] == i + 1  # each batch's label of its own prediction
        waiting = store.client.zcard(store.keys().for_model("m").waiting("m"))
        assert waiting == 3 + i  # the two early labels and each batch's late one
        assert store.client.hget(key, field) == str(waiting).encode() and store.pending_labels("m") == waiting
        assert f"count of labels waiting for model 'm' was damaged ({len(damage)} bytes, not a count)" in caplog.text
        caplog.clear()
    # a count repaired meanwhile (by the partition's new owner) is left as it is by a stale worker's repair
    store.client.hset(key, field, b"7")
    assert store._recount_pending(store.keys().for_model("m"), "m") == 7 and store.client.hget(key, field) == b"7"


@pytest.mark.integration
@pytest.mark.parametrize("store", ["redis", "cluster"], indirect=True)
def test_damaged_joined_and_unmatched_counts_are_set_by_the_commit_before_its_first_write(store, caplog):
    """HINCRBY on a damaged count fails, and Redis keeps what a failed script wrote before: the offsets would move
    without the rest of the batch. The script checks the counts first and sets a damaged one to the change."""
    store, _ = store
    key = store.keys().for_model("m").label_counts
    store.client.hset(key, mapping={"m:joined": b"banana", "m:unmatched": b"9223372036854775807",
                                    "m:pending": b"4"})
    with caplog.at_level("ERROR"):
        assert store.commit(Commit({("lab", P): (-1, 0)}, writes=[
            CountLabels("m", pending=1, unmatched=2, joined=3), CountLabels("m", joined=10)]))
    assert store.client.hgetall(key) == {b"m:joined": b"13", b"m:unmatched": b"2", b"m:pending": b"5"}
    assert "label counts 'm:unmatched', 'm:joined' were damaged" in caplog.text
    assert store.offsets([("lab", P)]) == {("lab", P): 0}
    caplog.clear()
    assert store.commit(Commit({("lab", P): (0, 1)}, writes=[CountLabels("m", joined=1)]))  # sound: added to
    assert store.client.hget(key, "m:joined") == b"14" and "damaged" not in caplog.text
    assert store.model_label_counts("m") == {"joined": 14, "pending": 5, "unmatched": 2}
    # a waiting count damaged between the join's read and its commit: the batch's change alone is not the count
    # (it would be kept as one); it is left for the next read to set from the labels that wait
    assert store.commit(Commit({("lab", P): (1, 2)}, writes=[
        AwaitLabel("m", "w1", 1, 5.0, deadline=1e12, ttl_s=3600), AwaitLabel("m", "w2", 1, 5.0, deadline=1e12,
                                                                              ttl_s=3600), CountLabels("m", pending=2)]))
    store.client.hset(key, "m:pending", b"junk")
    assert store.commit(Commit({("lab", P): (2, 3)}, writes=[ForgetLabel("m", "w1"), CountLabels("m", pending=-1),
                                                             CountLabels("m", pending=0, joined=1),
                                                             CountLabels("m", pending=1)]))  # each left alone
    assert store.client.hget(key, "m:pending") == b"junk" and "'m:pending' were damaged" in caplog.text
    assert store.pending_labels("m") == 1 == store.client.zcard(store.keys().for_model("m").waiting("m"))
    store.client.hset(key, "m:unmatched", b"x")
    assert store.model_label_counts("m")["unmatched"] is None  # `driftline status` shows it, not a traceback


@pytest.mark.integration
@pytest.mark.parametrize("store", ["redis", "cluster"], indirect=True)
def test_a_key_given_another_type_from_outside_refuses_the_whole_commit_before_its_first_write(store):
    """A command on a key of another type fails the script, and Redis keeps what a failed script wrote before:
    the offsets and states moved while the batch's kept predictions were lost, and the worker's retry then took
    the moved offsets for another worker's commit. The script checks every key's type before its first write and
    refuses the commit, naming the keys; once they are moved aside, the same commit saves all of it."""
    store, _ = store
    # bytes >= 0x80 and a backslash, shown as \xNN; in m's partition, whose offsets guard the batch
    model = next(name for name in (f"é\\模型{i}" for i in range(100)) if partition_for(name, PARTITIONS) == P)
    keys = store.keys().for_model("m")
    hour = int(time.time() // 3600)

    def batch(offset: int) -> Commit:
        return Commit({("lab", P): (offset - 1, offset)}, {("m", "1"): b'{"v": %d}' % offset}, {("m", "1"): offset},
                      writes=[KeepPredictions("m", hour, 3600, (f"e{offset}",), (("1", 1, 0.5, 10.0),)),
                              KeepPredictions(model, hour, 3600, ("x",), (("1", 1, 0.5, 10.0),)),
                              AwaitLabel("m", f"w{offset}", 1, 5.0, deadline=1e12, ttl_s=3600),
                              CountLabels("m", pending=1)])

    assert store.commit(batch(0))
    victims = {keys.predictions("m", hour): "hash", keys.waiting("m"): "zset", keys.label_counts: "hash",
               keys.models: "hash", keys.predictions(model, hour): "hash", keys.offsets: "hash"}
    for offset, (victim, kind) in enumerate(victims.items(), start=1):
        before = {k: (store.client.type(k), store.client.dump(k)) for k in store.client.scan_iter(
            match=f"{{driftline:{store._app_id}:p{P}}}*")}
        store.client.rename(victim, victim + ":aside")
        store.client.set(victim, b"someone's string")
        with pytest.raises(ServiceUnavailable) as refused:
            store.commit(batch(offset))
        text = str(refused.value)
        assert f"{_escaped(victim)} holds a string, not a {kind}" in text, text
        assert "nothing of the batch was written" in text and text.isascii()
        store.client.delete(victim)
        store.client.rename(victim + ":aside", victim)
        after = {k: (store.client.type(k), store.client.dump(k)) for k in store.client.scan_iter(
            match=f"{{driftline:{store._app_id}:p{P}}}*")}
        assert after == before, victim  # not a byte written
        assert store.commit(batch(offset))  # the retry, the key moved aside: all of it saved
        assert store.offsets([("lab", P)]) == {("lab", P): offset}
        assert store.load([("m", "1")])[("m", "1")] == {"v": offset}
        assert f"e{offset}".encode() in _bucket(store, "m", hour)
        assert store.pending_labels("m") == offset + 1


def _escaped(key: str) -> str:
    """A key as the commit script names it: printable ASCII as it is, other bytes and the backslash as \\xNN."""
    return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02x}" for b in key.encode())


@pytest.mark.integration
@pytest.mark.parametrize("store", ["redis", "cluster"], indirect=True)
def test_every_key_of_another_type_is_named_at_once_and_a_long_name_says_it_was_cut(store):
    """The offsets of another type do not hide the rest: one refusal names every such key; a name cut to 200 bytes
    says how much is left out, so that no one renames a key that does not exist."""
    store, _ = store
    long_model = "x" * 300
    hour = int(time.time() // 3600)
    keys = store.keys().for_model(long_model)
    offsets_partition = store.partition_of(long_model)
    victims = [keys.offsets, keys.models, keys.predictions(long_model, hour)]
    for victim in victims:
        store.client.set(victim, b"junk")
    with pytest.raises(ServiceUnavailable) as refused:
        store.commit(Commit({("lab", offsets_partition): (-1, 0)}, {(long_model, "1"): b"{}"},
                            {(long_model, "1"): 1},
                            writes=[KeepPredictions(long_model, hour, 3600, ("e",), (("1", 1, None, 1.0),))]))
    text = str(refused.value)
    assert text.count("holds a string") == 3, text
    for victim in victims[:2]:
        assert f"{victim} holds a string, not a hash" in text
    cut = victims[2].encode()
    assert f"{cut[:200].decode()}...({len(cut) - 200} more bytes) holds a string, not a hash" in text
    for victim in victims:
        assert store.client.get(victim) == b"junk"
        store.client.delete(victim)


@pytest.mark.integration
@pytest.mark.parametrize("store", ["redis", "cluster"], indirect=True)
def test_a_read_of_a_key_of_another_type_names_the_key(store):
    """The label join reads the label counts, the waiting labels and the kept predictions before the commit: a
    key of another type fails that read first, and its error names the key as the commit's does."""
    store, _ = store
    keys = store.keys().for_model("m")
    hour = int(time.time() // 3600)
    reads = [(keys.label_counts, lambda: store.pending_labels_of(["m"])),
             (keys.waiting("m"), lambda: store.due_labels("m", time.time(), 10)),
             (keys.predictions("m", hour), lambda: store.kept_predictions("m", [hour], ["e1"])),
             (keys.label_counts, lambda: store.model_label_counts("m"))]
    for victim, read in reads:
        store.client.set(victim, b"junk")
        with pytest.raises(ServiceUnavailable) as refused:
            read()
        assert f"Redis key {victim} holds another type than Driftline keeps there" in str(refused.value)
        store.client.delete(victim)
        read()  # the key gone: read as empty


def test_an_event_has_one_label_a_second_one_is_dead_lettered_not_counted_again(store):
    """A label producer's retry sends a label twice. Before, each copy joined the kept prediction again (the
    event counted twice in the performance windows and the joined count), and a copy of a waiting label added
    to the waiting count without adding to the waiting set, which then never came back to zero. Now the first
    label of an event counts, in every order, across restarts and predictions sent again: later ones are dead
    letters, one per message with their count."""
    store, advance = store
    settings = Settings(topic_partitions=PARTITIONS, label_wait_s=600.0)
    offsets = {"inf": 0, "lab": 0}

    def label(*event_ids: str) -> IncomingMessage:
        offsets["lab"] += 1
        value = encode_envelope("m", [{"event_id": i, "label": 1, "timestamp": time.time()} for i in event_ids],
                                kind="label")
        return IncomingMessage("lab", P, offsets["lab"], value, b"m")

    def inference(*event_ids: str) -> IncomingMessage:
        offsets["inf"] += 1
        events = [{"event_id": i, "features": {"x": 1.0}, "prediction": 1, "score": 0.5, "timestamp": 1.0}
                  for i in event_ids]
        return IncomingMessage("inf", P, offsets["inf"], encode_envelope("m", events, "1"), b"m")

    worker = BatchProcessor(settings, store)
    waiting_set = store.keys().for_model("m").waiting("m") if not isinstance(store, MemoryStateStore) else None

    def batch(*messages: IncomingMessage) -> tuple[int, list[int]]:
        """(labels applied, the count of each duplicate_label dead letter)"""
        outcome = worker.process(list(messages))
        assert store.commit(outcome)
        worker.committed(outcome.offsets)
        if waiting_set is not None:  # the count is the size of the set
            assert store.pending_labels("m") == store.client.zcard(waiting_set)
        assert {d["reason_code"] for d in outcome.dead_letters} <= {"duplicate_label"}
        return outcome.labels, [d["count"] for d in outcome.dead_letters]

    assert batch(label("a")) == (1, [])                          # waits for its prediction
    assert batch(label("a")) == (0, [1])                         # a copy of a waiting label
    assert store.pending_labels("m") == 1
    assert batch(inference("a", "b", "c")) == (0, [])            # "a" joins its waiting label
    assert batch(label("b", "b")) == (1, [1])                    # twice in one batch
    assert batch(label("b")) == (0, [1])                         # joined before
    assert batch(label("a")) == (0, [1])                         # joined when its prediction came
    assert batch(inference("d"), label("d", "c"), label("d")) == (2, [1])  # prediction and labels together
    assert batch(inference("b")) == (0, [])                      # a prediction sent again ...
    assert batch(label("b")) == (0, [1])                         # ... does not make its label count again
    assert batch(inference("c"), label("c")) == (0, [1])         # nor in the same batch
    worker = BatchProcessor(settings, store)                     # a restarted worker: what Redis holds
    assert batch(label("c", "d", "e"), label("b", "c")) == (1, [2, 2])  # one dead letter per message
    assert store.pending_labels("m") == 1                        # "e" waits
    state = store.load([("m", "1")])[("m", "1")]
    assert state["performance"]["labels"] == 4                   # a, b, c, d: once each
    if waiting_set is not None:
        assert store.model_label_counts("m") == {"joined": 4, "pending": 1, "unmatched": 0}


@pytest.mark.integration
@pytest.mark.parametrize("store", ["redis", "cluster"], indirect=True)
def test_a_label_whose_earlier_one_outlived_its_own_key_waits_in_its_place_and_the_count_follows_the_set(store):
    """A quiet model's waiting-set entries can outlive their label records (the set's expiry is refreshed by every
    label): such an entry can join nothing, so a new label of its event takes its place rather than being a copy
    of it, and its wait ends as one unmatched label, not two."""
    store, advance = store
    worker = BatchProcessor(Settings(topic_partitions=PARTITIONS, label_wait_s=1.0), store)
    waiting_set = store.keys().for_model("m").waiting("m")

    def batch(offset: int, event_id: str) -> tuple[int, list[str]]:
        outcome = worker.process([_label_message("m", offset, event_id)])
        assert store.commit(outcome)
        worker.committed(outcome.offsets)
        assert store.pending_labels("m") == store.client.zcard(waiting_set)
        return outcome.labels, [d["reason_code"] for d in outcome.dead_letters]

    assert batch(1, "e") == (1, [])
    store.client.delete(store.keys().for_model("m").waiting_label("m", "e"))
    assert batch(2, "e") == (1, [])                              # waits in the place of the expired one
    assert store.waiting_labels("m", ["e"])[0] is not None and store.pending_labels("m") == 1
    advance(1.5)
    assert batch(3, "f") == (1, [])                              # the sweep: "e" unmatched once, "f" waits
    assert store.model_label_counts("m") == {"joined": 0, "pending": 1, "unmatched": 1}


def test_joined_event_ids_are_remembered_until_they_are_older_than_the_kept_predictions(store):
    """Thousands of ids in one write; each write forgets those that joined before its ``forget_before``; a read
    ignores those joined before ``since`` that no write forgot yet."""
    store, _ = store
    many = tuple(f"e{i}" for i in range(10_000))
    assert store.commit(Commit({("lab", P): (-1, 0)}, writes=[MarkJoined("m", 100.0, 0.0, 3600, many)]))
    assert store.commit(Commit({("lab", P): (0, 1)}, writes=[
        AwaitLabel("m", "w", 1, 5.0, deadline=1e12, ttl_s=3600), CountLabels("m", pending=1)]))

    def marks(asked: dict, since: float) -> dict:
        return {m: (found.joined, found.waiting) for m, found in store.label_marks_of(asked, since).items()}

    assert marks({"m": ["e0", "e9999", "w", "x"]}, 50.0) == {"m": ([True, True, False, False],
                                                                   [False, False, True, False])}
    assert marks({"m": ["e0"]}, 150.0) == {"m": ([False], [False])}  # joined before since
    assert store.commit(Commit({("lab", P): (1, 2)}, writes=[MarkJoined("m", 200.0, 150.0, 3600, ("late",))]))
    assert marks({"m": ["e0", "late"], "other": ["e0"]}, 0.0) == \
        {"m": ([False, True], [False, False]), "other": ([False], [False])}  # the write forgot those before 150
    assert marks({"m": []}, 0.0) == {"m": ([], [])} and marks({}, 0.0) == {}


def test_with_predictions_not_kept_a_prediction_sent_again_meets_only_the_first_label(store):
    """``keep_predictions=False`` keeps no prediction, but the joined event ids all the same: a label joins a
    prediction of its own batch only, and a copy of it that comes with the prediction sent again is a duplicate."""
    store, _ = store
    worker = BatchProcessor(Settings(topic_partitions=PARTITIONS, keep_predictions=False), store)
    events = [{"event_id": "e", "features": {"x": 1.0}, "prediction": 1, "score": 0.5, "timestamp": 1.0}]
    for offset in range(2):
        prediction = IncomingMessage("inf", P, offset, encode_envelope("m", events, "1"), b"m")
        outcome = worker.process([prediction, _label_message("m", offset, "e")])
        assert store.commit(outcome)
        worker.committed(outcome.offsets)
        assert (outcome.labels, [d["reason_code"] for d in outcome.dead_letters]) == \
            ((1, []) if offset == 0 else (0, ["duplicate_label"]))
    assert store.load([("m", "1")])[("m", "1")]["performance"]["labels"] == 1


def test_a_waiting_label_whose_event_joined_meanwhile_is_dropped_at_the_end_of_its_wait(store, caplog):
    """A label that waits while another label of its event joined (written so by a worker of another version, or
    around a race) does not join too when its wait ends: it is dropped, with a warning."""
    store, _ = store
    now = time.time()
    assert store.commit(Commit({("lab", P): (-1, 0)}, writes=[
        KeepPredictions("m", int(now // 3600), 3600, ("e",), (("1", 1, 0.5, 1.0),)),
        AwaitLabel("m", "e", 1, 5.0, deadline=now - 1, ttl_s=3600), CountLabels("m", pending=1),
        MarkJoined("m", now, 0.0, 3600, ("e",))]))
    worker = BatchProcessor(Settings(topic_partitions=PARTITIONS), store)
    with caplog.at_level("WARNING"):
        outcome = worker.process([_label_message("m", 1, "other")])  # the model's batch sweeps its due labels
    assert store.commit(outcome)
    assert "a waiting label of event e of model m was dropped at the end of its wait" in caplog.text
    assert outcome.unmatched_labels == 0 and not outcome.dead_letters and store.load([("m", "1")])[("m", "1")] is None
    assert store.pending_labels("m") == 1  # "other" waits; "e" is gone


def test_a_count_of_waiting_labels_left_behind_by_an_expired_set_is_set_to_the_set(store, caplog):
    """A quiet model's waiting labels expire (the set, the wait and an hour after its last label) before any batch
    of the model sweeps them: the count stayed at what it was for ever. The next read sets it to what the set
    holds."""
    store, advance = store
    worker = BatchProcessor(Settings(topic_partitions=PARTITIONS, label_wait_s=1.0), store)
    outcome = worker.process([_label_message("m", 1, "a"), _label_message("m", 2, "b")])
    assert store.commit(outcome)
    worker.committed(outcome.offsets)
    assert store.pending_labels("m") == 2
    if isinstance(store, MemoryStateStore):
        advance(3602)  # the set's TTL: the wait and an hour
    else:  # as if the set and its labels expired
        keys = store.keys().for_model("m")
        store.client.delete(keys.waiting("m"), keys.waiting_label("m", "a"), keys.waiting_label("m", "b"))
    with caplog.at_level("WARNING"):
        outcome = worker.process([_label_message("m", 3, "a")])  # not a copy: the first one is gone
    assert store.commit(outcome)
    assert outcome.labels == 1 and not outcome.dead_letters
    assert store.pending_labels("m") == 1
    if not isinstance(store, MemoryStateStore):
        assert store.client.zcard(store.keys().for_model("m").waiting("m")) == 1
        assert "the count of labels waiting for model 'm' was 2 while 0 labels wait" in caplog.text


@pytest.mark.parametrize("record", ["expired", "damaged"])
def test_a_label_whose_earlier_copy_expired_in_the_waiting_set_is_the_first_and_joins(store, record):
    """An entry of the waiting set whose label record expired (a backlog past the sweep limit keeps the set alive
    longer than its labels) or is damaged can join nothing: a new label of that event is not a copy of it. The
    entry is forgotten and the new label joins its prediction, counted once and never unmatched."""
    store, advance = store
    worker = BatchProcessor(Settings(topic_partitions=PARTITIONS, label_wait_s=600.0), store)

    def batch(*messages: IncomingMessage):
        outcome = worker.process(list(messages))
        assert store.commit(outcome)
        worker.committed(outcome.offsets)
        return outcome

    batch(_label_message("m", 1, "e"))
    if isinstance(store, MemoryStateStore):
        if record == "expired":
            store._labels.pop(("m", "e"))
        else:
            store._labels[("m", "e")] = (b"\xff{damaged", store._labels[("m", "e")][1])
    elif record == "expired":
        store.client.delete(store.keys().for_model("m").waiting_label("m", "e"))
    else:
        store.client.set(store.keys().for_model("m").waiting_label("m", "e"), b"\xff{damaged")
    events = [{"event_id": "e", "features": {"x": 1.0}, "prediction": 1, "score": 0.5, "timestamp": 1.0}]
    outcome = batch(IncomingMessage("inf", P, 1, encode_envelope("m", events, "1"), b"m"), _label_message("m", 2, "e"))
    assert (outcome.labels, outcome.dead_letters, outcome.unmatched_labels) == (1, [], 0)
    assert store.pending_labels("m") == 0 and store.due_labels("m", 1e12, 10) == []
    assert store.load([("m", "1")])[("m", "1")]["performance"]["labels"] == 1


@pytest.mark.integration
@pytest.mark.parametrize("store", ["redis", "cluster"], indirect=True)
def test_a_label_with_a_shorter_wait_does_not_shorten_the_life_of_the_labels_waiting_before_it(store):
    """Every waiting label refreshes the expiry of its model's waiting set: one written after the wait was lowered
    (say from a day to a minute) cut the set's life below the older labels' records, which then were lost."""
    store, _ = store
    waiting_set = store.keys().for_model("m").waiting("m")
    assert store.commit(Commit({("lab", P): (-1, 0)}, writes=[
        AwaitLabel("m", "old", 1, 5.0, deadline=1e12, ttl_s=90_000), CountLabels("m", pending=1)]))
    assert store.commit(Commit({("lab", P): (0, 1)}, writes=[
        AwaitLabel("m", "new", 1, 5.0, deadline=1e12, ttl_s=120), CountLabels("m", pending=1)]))
    assert store.client.ttl(waiting_set) > 89_000
    assert store.commit(Commit({("lab", P): (1, 2)}, writes=[
        AwaitLabel("m", "newer", 1, 5.0, deadline=1e12, ttl_s=100_000), CountLabels("m", pending=1)]))
    assert store.client.ttl(waiting_set) > 99_000  # a longer one lengthens it


def test_an_emptied_waiting_set_takes_the_expiry_of_its_next_label(store):
    """Redis deletes a set when its last member goes, and its expiry with it: the next label's shorter wait sets a
    new one. The memory store kept the old expiry."""
    store, advance = store
    assert store.commit(Commit({("lab", P): (-1, 0)}, writes=[
        AwaitLabel("m", "old", 1, 5.0, deadline=1e12, ttl_s=90_000), CountLabels("m", pending=1)]))
    assert store.commit(Commit({("lab", P): (0, 1)}, writes=[ForgetLabel("m", "old"), CountLabels("m", pending=-1)]))
    assert store.commit(Commit({("lab", P): (1, 2)}, writes=[
        AwaitLabel("m", "new", 1, 5.0, deadline=1e12, ttl_s=2), CountLabels("m", pending=1)]))
    assert store.label_marks_of({"m": ["new"]}, 0.0)["m"].waiting == [True]
    advance(3)
    assert store.label_marks_of({"m": ["new"]}, 0.0)["m"].waiting == [False]
