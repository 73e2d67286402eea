"""The cache of live model states across batches: used, guarded by offsets, and never a bit of difference."""

import dataclasses
import uuid

import numpy as np
import pytest

from producers.events import encode_envelope
from producers.example_data import drifting_credit_data
from producers.replay import plan_columns, rows_to_events
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings, load_settings
from stream_processors.errors import StateRolledBack
from stream_processors.faust_app.app import commit_in_parts
from stream_processors.state import MemoryStateStore
from stream_processors.state_cache import StateCache

SETTINGS = Settings()
UNCACHED = dataclasses.replace(SETTINGS, state_cache_versions=0)
INFERENCE, LABELS = SETTINGS.inference_topic, SETTINGS.label_topic


# -- the cache alone -----------------------------------------------------------------------------------------
def test_a_taken_entry_is_the_callers_until_it_is_put_back():
    cache = StateCache(4)
    cache.put(0, {("i", 0): 3, ("l", 0): -1}, {("m", "1"): ("s1", b"1"), ("n", "1"): ("s2", b"2")})
    cache.check({("i", 0): 3, ("l", 0): -1}, {0})
    entry = cache.take(("m", "1"))
    assert (entry.state, entry.saved, entry.partition) == ("s1", b"1", 0)
    assert cache.take(("m", "1")) is None and len(cache) == 1
    cache.put(0, {("i", 0): 4, ("l", 0): -1}, {("m", "1"): ("s1", b"1b")})
    cache.check({("i", 0): 4, ("l", 0): -1}, {0})
    assert cache.take(("n", "1")).saved == b"2"  # untouched by the commit of m: still what Redis holds
    assert cache.take(("m", "1")).saved == b"1b"


@pytest.mark.parametrize("stored", [{("i", 0): 4, ("l", 0): -1},   # another worker moved the partition on
                                    {("i", 0): 2, ("l", 0): -1},   # a failover lost the last commit
                                    {("i", 0): 3, ("l", 0): 0}])   # another worker wrote labels only
def test_any_change_of_a_partitions_offsets_drops_its_entries(stored):
    cache = StateCache(4)
    cache.put(0, {("i", 0): 3, ("l", 0): -1}, {("m", "1"): ("s", b"")})
    cache.put(1, {("i", 1): 9}, {("p", "1"): ("s", b"")})
    assert cache.watched({0}) == {("i", 0), ("l", 0)}
    cache.check(stored, {0})
    assert cache.take(("m", "1")) is None and len(cache) == 1
    assert cache.take(("p", "1")) is None  # partition 1 was not checked for this batch: not usable in it
    cache.check({("i", 1): 9}, {1})
    assert cache.take(("p", "1")) is not None


def test_the_least_recently_used_version_goes_past_the_capacity():
    cache = StateCache(2)
    offsets = {("i", 0): 0}
    for key in [("a", "1"), ("b", "1"), ("a", "1"), ("c", "1")]:
        cache.put(0, offsets, {key: ("s", b"")})
    cache.check(offsets, {0})
    assert [k for k in [("a", "1"), ("b", "1"), ("c", "1")] if cache.take(k)] == [("a", "1"), ("c", "1")]
    nothing = StateCache(0)
    nothing.put(0, offsets, {("a", "1"): ("s", b"")})
    assert len(nothing) == 0
    with pytest.raises(ValueError):
        StateCache(-1)


# -- in the batch processor ----------------------------------------------------------------------------------
class CountingStore(MemoryStateStore):
    """The in-memory store, counting the versions each ``load`` reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loaded: list[tuple[str, str]] = []

    def load(self, models):
        self.loaded += models
        return super().load(models)


def _batch(processor, store, messages):
    """What the worker does with a batch: process, commit, and tell the processor what was saved."""
    outcome = processor.process(messages)
    assert store.commit(outcome)
    processor.committed(outcome.offsets)
    return outcome


def _credit(n=2400, seed=3, model="credit", partition=0, per_message=100, offset=0):
    """Inference envelopes of ``model`` version 1, and label envelopes of the same events."""
    frame = drifting_credit_data(n=n, seed=seed)
    events, labels = rows_to_events(frame, plan_columns(frame), model)
    inference = [IncomingMessage(INFERENCE, partition, offset + i, encode_envelope(model, events[j:j + per_message],
                                                                                     "1"))
                 for i, j in enumerate(range(0, len(events), per_message))]
    label = [IncomingMessage(LABELS, partition, offset + i, encode_envelope(model, labels[j:j + per_message],
                                                                              kind="label"))
             for i, j in enumerate(range(0, len(labels), per_message))]
    return inference, label


def test_a_version_saved_last_batch_is_not_read_back():
    store = CountingStore()
    processor = BatchProcessor(SETTINGS, store)
    inference, _ = _credit()
    for start in range(0, 12, 3):
        _batch(processor, store, inference[start:start + 3])
    assert store.loaded == [("credit", "1")]  # the first batch's only
    uncached = CountingStore()
    processor = BatchProcessor(UNCACHED, uncached)
    for start in range(0, 12, 3):
        _batch(processor, uncached, inference[start:start + 3])
    assert uncached.loaded == [("credit", "1")] * 4
    assert store.load([("credit", "1")]) == uncached.load([("credit", "1")])


def _schedule():
    """Batches of two models in two partitions (credit: 0, loans: 1), with labels two envelopes late, one
    model drifting in episodes (findings: runs rebuilt from the state at the start of the batch)."""
    credit, credit_labels = _credit(n=3000, seed=4)
    frame = drifting_credit_data(n=4000, shift_at=4000, seed=9)
    for name in ("income", "age"):
        values = frame[name].to_numpy(dtype=float, copy=True)
        values[1500:2300] += 2.0 * np.nanstd(values)
        frame[name] = values
    events, labels = rows_to_events(frame, plan_columns(frame), "loans")
    sizes, loans, start = [1, 1, 7, 40, 3, 90, 12], [], 0
    while start < len(events):
        size = sizes[len(loans) % len(sizes)]
        loans.append(IncomingMessage(INFERENCE, 1, len(loans), encode_envelope("loans", events[start:start + size],
                                                                                 "1")))
        start += size
    loans_labels = [IncomingMessage(LABELS, 1, i, encode_envelope("loans", labels[j:j + 200], kind="label"))
                    for i, j in enumerate(range(0, len(labels), 200))]
    messages = []
    for i in range(max(len(credit), len(loans))):
        messages += credit[i:i + 1] + loans[i:i + 1]
        if i >= 2:
            messages += credit_labels[i - 2:i - 1]
        if i % 10 == 5:
            messages += loans_labels[i // 10:i // 10 + 1]
    return [messages[i:i + 5] for i in range(0, len(messages), 5)]


def _profile():
    from stream_processors.profile_registry import profile_from_table
    train = drifting_credit_data(n=5000, shift_at=5000, seed=8)
    return profile_from_table(train, plan_columns(train), "credit", "1", SETTINGS).to_dict()


def test_the_same_bytes_and_alerts_with_and_without_the_cache():
    """Envelopes and labels of two models in two partitions, findings, a profile registered midway (adopted by a
    cached state that ran without one): every batch saves the same bytes and alerts as without the cache."""
    batches, profile = _schedule(), _profile()
    runs = []
    for settings in (SETTINGS, UNCACHED):
        store = CountingStore(partitions=2)
        processor = BatchProcessor(settings, store)
        saved, alerts = [], []
        for i, batch in enumerate(batches):
            if i == len(batches) // 3:
                store.put_profile(profile)
            outcome = _batch(processor, store, batch)
            saved.append(outcome.states)
            alerts.append([a["id"] for a in outcome.alerts])
        runs.append((saved, alerts, store))
    (saved, alerts, cached), (saved_u, alerts_u, uncached) = runs
    assert sum(map(len, alerts)) > 0, "the stream must bring findings"
    assert len(cached.loaded) == 2 and len(uncached.loaded) > len(batches)
    for i, (a, b) in enumerate(zip(saved, saved_u)):
        assert a == b, i
    assert alerts == alerts_u
    keys = [("credit", "1"), ("loans", "1")]
    assert cached.load(keys) == uncached.load(keys)
    assert cached.load(keys)[("credit", "1")]["scenario"] == "reference"
    assert cached.label_counts() == uncached.label_counts() and cached.label_counts()["credit:joined"] > 0


def test_a_batch_whose_commit_failed_or_lost_reloads_from_the_store():
    store = CountingStore()
    processor = BatchProcessor(SETTINGS, store)
    inference, _ = _credit()
    _batch(processor, store, inference[:2])
    processor.process(inference[2:4])  # not saved (Redis unavailable, a publish that failed): retried
    _batch(processor, store, inference[2:4])
    assert store.loaded == [("credit", "1")] * 2
    # a commit that loses its compare-and-set: another worker saved the partition meanwhile; redone
    lost = processor.process(inference[4:6])
    other = BatchProcessor(UNCACHED, store)
    _batch(other, store, inference[4:5])
    assert not store.commit(lost)
    _batch(processor, store, inference[4:6])
    _batch(processor, store, inference[6:8])
    assert store.loaded == [("credit", "1")] * 4  # the other's, and the redo's
    reference = MemoryStateStore()
    _batch(BatchProcessor(UNCACHED, reference), reference, inference[:8])
    assert store.load([("credit", "1")]) == reference.load([("credit", "1")])


def test_another_writer_on_the_partitions_label_topic_drops_its_entries():
    """The label topic's offset moved by someone else (who wrote the version's performance): read back."""
    store = CountingStore()
    processor = BatchProcessor(SETTINGS, store)
    inference, labels = _credit()
    _batch(processor, store, inference[:3])
    _batch(BatchProcessor(UNCACHED, store), store, labels[:2])  # another worker, labels of partition 0 only
    _batch(processor, store, inference[3:6])
    assert store.loaded == [("credit", "1"), ("credit", "1"), ("credit", "1")]
    reference = MemoryStateStore()
    for batch in (inference[:3], labels[:2], inference[3:6]):
        _batch(BatchProcessor(UNCACHED, reference), reference, batch)
    assert store.load([("credit", "1")]) == reference.load([("credit", "1")])


def test_an_offset_that_went_back_drops_the_entries_or_stops_the_worker():
    store = CountingStore()
    processor = BatchProcessor(SETTINGS, store)
    inference, labels = _credit()
    other = BatchProcessor(UNCACHED, store)
    _batch(other, store, labels[:2])  # labels waiting for their predictions
    _batch(processor, store, inference[:3])
    _batch(processor, store, inference[3:5])
    assert store.loaded == [("credit", "1")]
    # a failover lost a label commit this worker did not make, but which its own commits checked (a partition's
    # commit checks both topics' offsets): what it cached and saved since may rest on it
    store._offsets[(LABELS, 0)] = 0
    with pytest.raises(StateRolledBack):
        processor.process(inference[5:7])
    restarted = BatchProcessor(SETTINGS, store)  # its restart reads what Redis holds
    _batch(restarted, store, inference[5:7])
    assert store.loaded == [("credit", "1")] * 2
    store._offsets[(INFERENCE, 0)] = 3  # and one it made: what it cached may be lost too
    with pytest.raises(StateRolledBack):
        restarted.process(inference[7:9])


def test_a_rebalance_clears_the_cache():
    store = CountingStore()
    processor = BatchProcessor(SETTINGS, store)
    inference, _ = _credit()
    _batch(processor, store, inference[:2])
    processor.rebalanced()
    _batch(processor, store, inference[2:4])
    assert store.loaded == [("credit", "1")] * 2
    # a batch that ran while partitions moved puts nothing back
    outcome = processor.process(inference[4:6])
    processor.rebalanced()
    assert store.commit(outcome)
    processor.committed(outcome.offsets)
    _batch(processor, store, inference[6:8])
    assert store.loaded == [("credit", "1")] * 3


def test_the_capacity_bounds_the_cached_versions():
    store = CountingStore()
    processor = BatchProcessor(dataclasses.replace(SETTINGS, state_cache_versions=1), store)
    a, _ = _credit(model="a")
    b, _ = _credit(model="b", seed=5, partition=1)
    for i in range(0, 6, 2):
        _batch(processor, store, a[i:i + 2])
        _batch(processor, store, b[i:i + 2])
    assert store.loaded == [("a", "1"), ("b", "1")] * 3  # each evicted by the other's batch
    for i in range(6, 10, 2):
        _batch(processor, store, a[i:i + 2])
    assert store.loaded.count(("a", "1")) == 4  # then, alone, it stays
    assert len(processor.state_cache) == 1


def test_after_a_partial_commit_only_the_saved_partitions_states_come_back():
    store = CountingStore(partitions=2)
    processor = BatchProcessor(SETTINGS, store)
    credit, _ = _credit(model="credit", partition=0)
    loans, _ = _credit(model="loans", partition=1, seed=6)
    outcome = processor.process(credit[:2] + loans[:2])
    _batch(BatchProcessor(UNCACHED, store), store, loans[:1])  # another worker saved partition 1 meanwhile
    parts: set[int] = set()
    assert not commit_in_parts(store, outcome, 2, parts)
    assert parts == {0}
    processor.committed({tp: o for tp, o in outcome.offsets.items() if tp[1] in parts})
    _batch(processor, store, credit[:4] + loans[:4])  # the redo, and more
    assert store.loaded.count(("credit", "1")) == 1 and store.loaded.count(("loans", "1")) == 3
    reference = MemoryStateStore(partitions=2)
    _batch(BatchProcessor(UNCACHED, reference), reference, credit[:4] + loans[:4])
    keys = [("credit", "1"), ("loans", "1")]
    assert store.load(keys) == reference.load(keys)


@pytest.mark.integration
def test_on_redis_the_same_bytes_with_fewer_reads():
    import redis

    from stream_processors.state import RedisStateStore
    from stream_processors.state.redis_store import redis_client

    connection = load_settings().redis
    try:
        redis_client(connection, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.fail(f"Redis is not reachable at {connection.redacted()}: run 'make stack-up'")
    batches = _schedule()[:40]
    results = []
    app_ids = []
    try:
        for settings in (SETTINGS, UNCACHED):
            app_id = f"cache-{uuid.uuid4().hex[:10]}"
            app_ids.append(app_id)
            store = RedisStateStore(connection, app_id, 2)
            store.prepare()
            loads = []
            real_load = store.load
            store.load = lambda keys, real_load=real_load, loads=loads: loads.extend(keys) or real_load(keys)
            processor = BatchProcessor(settings, store)
            saved = [_batch(processor, store, batch).states for batch in batches]
            results.append((saved, loads, real_load([("credit", "1"), ("loans", "1")])))
    finally:
        client = redis_client(connection)
        for app_id in app_ids:
            for pattern in (f"driftline:{app_id}:*", f"{{driftline:{app_id}:p*"):
                for key in client.scan_iter(match=pattern, count=1000):
                    client.delete(key)
    (saved, loads, final), (saved_u, loads_u, final_u) = results
    assert saved == saved_u and final == final_u
    assert len(loads) == 2 and len(loads_u) > len(batches)


def test_the_same_bytes_for_a_version_profiled_from_its_start():
    """A version with a reference profile from its first event, and a profiled column it lacks at first."""
    frame = drifting_credit_data(n=2000, seed=12)
    events, _ = rows_to_events(frame, plan_columns(frame), "credit")
    for event in events[:500]:
        del event["features"]["income"]
    messages = [IncomingMessage(INFERENCE, 0, i, encode_envelope("credit", events[j:j + 250], "1"))
                for i, j in enumerate(range(0, len(events), 250))]
    finals = []
    for settings in (SETTINGS, UNCACHED):
        store = CountingStore()
        store.put_profile(_profile())
        processor = BatchProcessor(settings, store)
        saved = [_batch(processor, store, messages[i:i + 2]).states for i in range(0, len(messages), 2)]
        finals.append((saved, store.loaded))
    assert finals[0][0] == finals[1][0]
    assert len(finals[0][1]) == 1 < len(finals[1][1])


def test_committed_bytes_that_do_not_load_are_quarantined_at_a_rebuild_not_raised():
    """A cached state's bytes were written by its commit, never read back. Should they not load (a defect in
    saving), the rebuild that needs them quarantines them, as a load would, and the version goes on."""
    import dataclasses as dc

    import orjson as oj

    from stream_processors.batch import BatchProcessor, IncomingMessage
    from stream_processors.config import Settings
    from stream_processors.state import MemoryStateStore
    from producers.events import encode_envelope

    store = MemoryStateStore()
    processor = BatchProcessor(Settings(), store)

    def message(offset, x):
        events = [{"event_id": f"e{offset}-{i}", "features": {"x": x + i}, "prediction": 1, "timestamp": 1.0}
                  for i in range(3)]
        return IncomingMessage("t", 0, offset, encode_envelope("m", events, "1"), b"m")

    outcome = processor.process([message(0, 1.0)])
    assert store.commit(outcome)
    processor.committed(outcome.offsets)
    entry = processor.state_cache._entries[("m", "1")]
    processor.state_cache._entries[("m", "1")] = dc.replace(entry, saved=oj.dumps({"format": "unreadable"}))
    outcome = processor.process([message(1, 1e16)])  # out of range: the version is rebuilt to leave it out
    assert [q.kind for q in outcome.quarantined] == ["state"]
    assert any(a["type"] == "state_quarantined" for a in outcome.alerts)
    assert [d["reason_code"] for d in outcome.dead_letters] == ["out_of_range"] * 3
    assert store.commit(outcome)


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.integration)])
def test_a_batch_of_one_topic_read_before_another_workers_commit_of_the_other_is_refused(backend, request):
    """Two workers briefly sharing a partition in a rebalance: W1's batch of predictions, read before W2 joined
    labels into the same state, must not overwrite what W2 saved (the label offset would say the labels were
    applied): a partition's commit checks both topics' offsets."""
    inference, labels = _credit()
    store = MemoryStateStore() if backend == "memory" else request.getfixturevalue("one_partition_redis")
    w1, w2 = BatchProcessor(UNCACHED, store), BatchProcessor(UNCACHED, store)
    assert store.commit(w1.process(inference[:3]))
    pending = w1.process(inference[3:5])
    assert store.commit(w2.process(labels[:2]))
    joined = store.load([("credit", "1")])[("credit", "1")]["performance"]["labels"]
    assert joined > 0
    assert not store.commit(pending)  # refused: W1 redoes the batch from the offsets now in Redis
    assert store.commit(w1.process(inference[3:5]))
    assert store.load([("credit", "1")])[("credit", "1")]["performance"]["labels"] == joined


@pytest.fixture
def one_partition_redis():
    from stream_processors.state import RedisStateStore
    from stream_processors.state.redis_store import redis_client

    connection = load_settings().redis
    app_id = f"guard-{uuid.uuid4().hex[:10]}"
    yield RedisStateStore(connection, app_id)
    client = redis_client(connection)
    for pattern in (f"driftline:{app_id}:*", f"{{driftline:{app_id}:p*"):
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
