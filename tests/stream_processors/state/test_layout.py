"""Moving keys to key layout 3 on real Redis and on a real Redis Cluster: state written by a worker of key
layout 2 (one Redis, no hash tags) is found under layout 3 after ``prepare``, and again after the topics'
partition count is raised; nothing is lost, expiries are kept, and offsets stay with their partition."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import orjson
import pytest

from producers.partitioning import partition_for
from stream_processors.config import RedisConnection, load_settings
from stream_processors.state import RedisStateStore, redis_client
from stream_processors.state.keys import AppKeys
from stream_processors.errors import ServiceUnavailable
from stream_processors.state import layout
from stream_processors.state.layout import prepare
from tests.integration.redis_cluster import redis_cluster  # noqa: F401 - the cluster case's own cluster
from tests.stream_processors.state.test_store_contract import Commit

pytestmark = pytest.mark.integration
MODELS = ["credit", "fraud:v2", "m0", "m1", "m2", "m3", "m4", "m5"]


@pytest.fixture(params=["redis", "cluster"])
def connection(request):
    connection = load_settings().redis
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        connection = RedisConnection(connection.url, cluster_nodes=",".join(cluster.nodes))
    return connection


def _layout_2(client, app: str, hour: int) -> None:
    """What a worker of key layout 2 left: keys spelt out here, not by keys.py."""
    prefix = f"driftline:{app}"
    for i, model in enumerate(MODELS):
        encoded = model.replace(":", "%3A")
        client.set(f"{prefix}:state:{encoded}:1", orjson.dumps({"model": model, "events": 10 + i}))
        client.hset(f"{prefix}:models", f"{encoded}\t1", orjson.dumps({"events": 10 + i, "updated": 1.0}))
        client.hset(f"{prefix}:pred:{encoded}:{hour}", "e1", orjson.dumps(["1", i, 0.5, 2.0]))
        client.expire(f"{prefix}:pred:{encoded}:{hour}", 3600)
        client.set(f"{prefix}:label:{encoded}:late", orjson.dumps({"l": 1, "t": 3.0}), ex=3600)
        client.zadd(f"{prefix}:waiting:{encoded}", {"late": 100.0 + i})
        client.hset(f"{prefix}:labels", mapping={f"{model}:pending": 1, f"{model}:joined": i})
    for p in range(4):
        client.hset(f"{prefix}:offsets", mapping={f"t:{p}": 100 + p, f"labels:{p}": 200 + p})
    client.set(f"{prefix}:quarantine:state:{'ab' * 32}", b"{damaged")
    client.hset(f"{prefix}:quarantined", "credit\t0", orjson.dumps({"record": "state", "error": "x",
                                                                     "sha256": "ab" * 32, "at": 1.0}))
    client.set(f"{prefix}:profile:credit:1", orjson.dumps({"model": "credit", "model_version": "1"}))


def _everything_is_found(connection, app: str, partitions: int, hour: int) -> None:
    store = RedisStateStore(connection, app, partitions)
    keys = [(m, "1") for m in MODELS]
    assert {k: v["events"] for k, v in store.load(keys).items()} == {k: 10 + i for i, k in enumerate(keys)}
    assert {k: v["events"] for k, v in store.model_summaries().items()} == {k: 10 + i for i, k in enumerate(keys)}
    assert store.existing(keys) == set(keys)
    for i, model in enumerate(MODELS):
        assert store.kept_predictions(model, [hour], ["e1"]) == [["1", i, 0.5, 2.0]]
        assert store.waiting_labels(model, ["late"]) == [{"l": 1, "t": 3.0}]
        assert store.due_labels(model, 1e9, 10) == ["late"]
        assert store.pending_labels(model) == 1
        assert 0 < store.client.ttl(store.keys().predictions(model, hour)) <= 3600  # the expiry came along
    assert store.label_counts() == {**{f"{m}:pending": 1 for m in MODELS}, **{f"{m}:joined": i for i, m in
                                                                                   enumerate(MODELS)}}
    assert store.offsets([("t", p) for p in range(4)] + [("labels", 3)]) == \
        {**{("t", p): 100 + p for p in range(4)}, ("labels", 3): 203}
    assert store.quarantined()[("credit", "0")]["sha256"] == "ab" * 32
    assert store.quarantined_record("state", "ab" * 32, "credit") == b"{damaged"
    assert store.profiles([("credit", "1")])[("credit", "1")]["model"] == "credit"
    # no key of layout 2 is left but the profile, and none of another tag
    client = store.client
    left = {k.decode() for k in client.scan_iter(match=f"driftline:{app}:*")}
    assert left == {f"driftline:{app}:profile:credit:1", f"driftline:{app}:layout"}
    tags = {k.decode().partition("}")[0] + "}" for k in client.scan_iter(match=f"{{driftline:{app}:p*")}
    assert tags <= {f"{{driftline:{app}:p{n}}}" for n in range(partitions)}


def test_layout_2_state_is_moved_on_start_and_again_when_partitions_are_raised(connection):
    app = f"layout-{uuid.uuid4().hex[:8]}"
    client = redis_client(connection)
    hour = int(time.time() // 3600)
    _layout_2(client, app, hour)
    assert partition_for("m0", 4) != partition_for("m0", 7) or partition_for("m1", 4) != partition_for("m1", 7)
    try:
        first = RedisStateStore(connection, app, 4)
        assert first.prepare() > 0
        _everything_is_found(connection, app, 4, hour)
        for model in MODELS:  # joined event ids: a key kind layout 2 did not have
            client.zadd(first.keys().joined(model), {"e1": 2.0})
            client.expire(first.keys().joined(model), 3600)
        assert first.prepare() == 0  # recorded: one GET
        assert RedisStateStore(connection, app).keys().partitions == 4  # readers learn the count from Redis
        assert RedisStateStore(connection, app, 7).prepare() > 0  # the topics now have 7 partitions
        _everything_is_found(connection, app, 7, hour)
        raised = RedisStateStore(connection, app, 7)
        found = raised.label_marks_of({model: ["e1", "e2"] for model in MODELS}, 1.0)
        assert {model: marks.joined for model, marks in found.items()} == {model: [True, False] for model in MODELS}
        assert raised.label_marks_of({MODELS[0]: ["e1"]}, 3.0)[MODELS[0]].joined == [False]  # joined before that
        for model in MODELS:
            assert 0 < client.ttl(raised.keys().joined(model)) <= 3600
        assert orjson.loads(client.get(f"driftline:{app}:layout")) == {"layout": 3, "partitions": 7}
    finally:
        for pattern in (f"driftline:{app}:*", f"{{driftline:{app}:p*"):
            for key in list(client.scan_iter(match=pattern)):
                client.delete(key)


def test_a_move_that_stopped_half_way_is_finished_by_the_next_worker(connection):
    app = f"layout-{uuid.uuid4().hex[:8]}"
    client = redis_client(connection)
    hour = int(time.time() // 3600)
    _layout_2(client, app, hour)
    keys = AppKeys(app, 4)
    try:
        # a worker died after copying some keys and setting some fields, before deleting their old copies
        for model in MODELS[:3]:
            client.set(keys.state(model, "1"), client.get(f"driftline:{app}:state:{model.replace(':', '%3A')}:1"))
            client.hset(keys.for_model(model).label_counts,
                        f"{model}:pending", 1)
        client.set(keys.relocating, "4", ex=1)  # its lock, which expires
        with pytest.raises(ServiceUnavailable, match="moving the keys"):
            prepare(client, keys, wait_s=0)
        time.sleep(1.2)
        assert RedisStateStore(connection, app, 4).prepare() > 0
        _everything_is_found(connection, app, 4, hour)
    finally:
        for pattern in (f"driftline:{app}:*", f"{{driftline:{app}:p*"):
            for key in list(client.scan_iter(match=pattern)):
                client.delete(key)


def test_a_stray_layout_2_key_neither_rewinds_an_offset_nor_overwrites_newer_state_at_a_partition_raise(connection):
    """Layout-2 keys written after the move (by a layout-2 worker left running) are older than what is under
    layout 3: the raise keeps the layout-3 state, summary and the higher offset, and drops the stray keys."""
    app = f"layout-{uuid.uuid4().hex[:8]}"
    client = redis_client(connection)
    prefix = f"driftline:{app}"
    tp = ("inf", partition_for("credit", 2))

    def layout_2(events: int, offset: int) -> None:
        client.set(f"{prefix}:state:credit:1", orjson.dumps({"events": events}))
        client.hset(f"{prefix}:models", "credit\t1", orjson.dumps({"events": events, "updated": 1.0}))
        client.hset(f"{prefix}:offsets", f"inf:{tp[1]}", offset)

    try:
        layout_2(10, 9)
        store = RedisStateStore(connection, app, 2)
        assert store.prepare() > 0
        assert store.commit(Commit({tp: (9, 49)}, {("credit", "1"): orjson.dumps({"events": 50})},
                                   {("credit", "1"): 50}))
        layout_2(2, 11)  # the stray writes
        raised = RedisStateStore(connection, app, 4)
        raised.prepare()
        assert raised.load([("credit", "1")]) == {("credit", "1"): {"events": 50}}
        assert raised.offsets([tp]) == {tp: 49}
        assert raised.model_summaries()[("credit", "1")]["events"] == 50
        assert client.get(f"{prefix}:state:credit:1") is None and not client.exists(f"{prefix}:offsets")
    finally:
        for pattern in (f"driftline:{app}:*", f"{{driftline:{app}:p*"):
            for key in list(client.scan_iter(match=pattern)):
                client.delete(key)


def _cleanup(client, app: str) -> None:
    for pattern in (f"driftline:{app}:*", f"{{driftline:{app}:p*"):
        for key in list(client.scan_iter(match=pattern)):
            client.delete(key)


@pytest.fixture
def slow_move(monkeypatch):
    """Moves that take 0.1 s a key, and a lock of 1 s refreshed every 0.2 s: a move outlasts its lock's TTL."""
    monkeypatch.setattr(layout, "LOCK_TTL_S", 1)
    monkeypatch.setattr(layout, "REFRESH_S", 0.2)
    move = layout._move_key

    def slow(client, source, target):
        time.sleep(0.1)
        return move(client, source, target)

    monkeypatch.setattr(layout, "_move_key", slow)


@pytest.fixture
def layout_2_app(connection):
    """(client, app, keys for 4 partitions, the hour of its kept predictions) of an app whose keys a layout-2
    worker left; removed afterwards."""
    app = f"layout-{uuid.uuid4().hex[:8]}"
    client = redis_client(connection)
    hour = int(time.time() // 3600)  # not read again later: a test may run across the turn of an hour
    _layout_2(client, app, hour)
    yield client, app, AppKeys(app, 4), hour
    _cleanup(client, app)


def _mover(connection, app: str, failures: list) -> threading.Thread:
    def run():
        try:
            RedisStateStore(connection, app, 4).prepare()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _lock_taken(client, keys: AppKeys) -> bytes:
    deadline = time.time() + 10
    while (token := client.get(keys.relocating)) is None and time.time() < deadline:
        time.sleep(0.01)
    assert token is not None
    return token


def test_a_move_longer_than_its_locks_ttl_keeps_the_lock_and_others_wait(connection, layout_2_app, slow_move,
                                                                          caplog):
    client, app, keys, hour = layout_2_app
    failures: list = []
    thread = _mover(connection, app, failures)
    token = _lock_taken(client, keys)
    started = time.time()
    while thread.is_alive():
        assert client.get(keys.relocating) in (token, None) and client.pttl(keys.relocating) <= 1000
        with pytest.raises(ServiceUnavailable, match="moving the keys"):
            prepare(client, keys, wait_s=0)
        time.sleep(0.2)
    assert time.time() - started > 2  # the move outlasted the 1 s TTL: refreshed, not taken over
    assert failures == [] and client.get(keys.relocating) is None
    assert orjson.loads(client.get(keys.layout)) == {"layout": 3, "partitions": 4}
    assert any("waiting for another worker to move the keys" in r.getMessage() and keys.relocating in
               r.getMessage() for r in caplog.records)


def test_a_mover_whose_lock_was_taken_stops_and_leaves_the_other_movers_lock(connection, layout_2_app, slow_move):
    client, app, keys, hour = layout_2_app
    failures: list = []
    thread = _mover(connection, app, failures)
    _lock_taken(client, keys)
    client.set(keys.relocating, "4:another-mover", ex=30)  # its lock expired and another mover took it
    thread.join(timeout=30)
    assert len(failures) == 1 and isinstance(failures[0], ServiceUnavailable), failures
    assert client.get(keys.relocating) == b"4:another-mover" and client.get(keys.layout) is None


def test_a_killed_movers_lock_expires_within_seconds(connection, layout_2_app):
    client, app, keys, hour = layout_2_app
    code = ("import time\n"
            "from stream_processors.config import RedisConnection\n"
            "from stream_processors.state import RedisStateStore, layout\n"
            "move = layout._move_key\n"
            "layout._move_key = lambda *a: (time.sleep(1), move(*a))[1]\n"
            f"RedisStateStore(RedisConnection({connection.url!r}, password_file={connection.password_file!r}, "
            f"ssl_cafile={connection.ssl_cafile!r}, cluster_nodes={connection.cluster_nodes!r}), {app!r}, 4)"
            ".prepare()\n")
    mover = subprocess.Popen([sys.executable, "-c", code])
    try:
        _lock_taken(client, keys)
        mover.kill()  # SIGKILL mid-move
        mover.wait(timeout=30)
        assert 0 < client.ttl(keys.relocating) <= layout.LOCK_TTL_S <= 15
        started = time.monotonic()
        assert RedisStateStore(connection, app, 4).prepare() > 0  # the next start waits out the TTL only
        assert time.monotonic() - started < layout.LOCK_TTL_S + 5
        _everything_is_found(connection, app, 4, hour)
    finally:
        if mover.poll() is None:
            mover.kill()


def test_status_says_layout_2_keys_await_a_worker_start_until_one_moves_them(connection, layout_2_app):
    from io import StringIO

    from stream_processors.cli.status import model_page, model_status, print_page
    from stream_processors.config import Settings
    from stream_processors.errors import UnknownModel

    client, app, keys, hour = layout_2_app
    client.delete(f"driftline:{app}:models")  # as status on layout 2 reads it: no model under layout 3
    settings = Settings(app_id=app, redis=connection)
    out = StringIO()
    print_page(model_page(settings), out)
    assert "await a worker start to move them to layout 3" in out.getvalue(), out.getvalue()
    with pytest.raises(UnknownModel, match="await a worker start"):
        model_status(settings, "credit", "1")
    RedisStateStore(connection, app, 4).prepare()
    assert not RedisStateStore(connection, app).awaiting_move()  # the layout is recorded: one GET, no EXISTS


def test_status_on_an_app_without_any_key_says_no_model_has_been_seen(connection):
    from io import StringIO

    from stream_processors.cli.status import model_page, print_page
    from stream_processors.config import Settings

    out = StringIO()
    print_page(model_page(Settings(app_id=f"layout-{uuid.uuid4().hex[:8]}", redis=connection)), out)
    assert out.getvalue() == "no model has been seen yet\n"
