"""State on a real Redis Cluster under change, while a producer and a worker run: every slot of the master
holding a partition's state moves to another master, or that master is killed and its replica takes over;
nothing is lost and nothing counted twice (exact counts against what was sent). Also: a worker refuses topics
whose partition counts differ; profile and the triggers ledger work on a cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from confluent_kafka.admin import NewPartitions

from producers.example_data import drifting_credit_data
from producers.kafka import admin_client
from producers.partitioning import partition_for
from producers.replay import plan_columns, replay, rows_to_events
from producers.topics import ensure_topics
from stream_processors.faust_app.app import AGENT_FAILED_EXIT
from stream_processors.state import RedisStateStore, redis_client
from stream_processors.state.keys import AppKeys

from .conftest import (BACKENDS, WorkerProcess, describe, read_topic, restore_the_app, run_cli, snapshot_of_the_app,
                       wait_until_applied)

pytestmark = pytest.mark.integration
MODELS = [f"model-{i}" for i in range(4)]
ROUND = 500


class Stream:
    """A producer sending rounds of events of every model until told the change is over (three rounds at least),
    keeping each model's incomes to check the worker's statistics against."""

    def __init__(self, settings, first_round: int = 0) -> None:
        self.settings = settings
        self.first_round = first_round
        self.sent: dict[str, list[np.ndarray]] = {m: [] for m in MODELS}
        self.changed = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        s = self.settings
        rounds = self.first_round
        # a round of each model before, during and after the change
        while rounds < self.first_round + 3 or not self.changed.is_set():
            for i, model in enumerate(MODELS):
                frame = drifting_credit_data(n=ROUND, seed=1000 * rounds + i)
                events, _ = rows_to_events(frame, plan_columns(frame), model)
                for e in events:
                    e["event_id"] = f"{rounds}-{e['event_id']}"
                replay(s.kafka.bootstrap, model, "1", events, [], s.inference_topic, s.label_topic, batch_size=50,
                       rate=4000)
                self.sent[model].append(frame["income"].to_numpy())
            rounds += 1

    def run_around(self, worker, change, restart=None) -> None:
        """Start sending, wait for the worker's first batch, make the change (which may hand back the worker that
        replaced this one), let the stream end and be applied. ``restart`` (a supervisor's part): a worker that
        exits because Redis lost writes it had saved (``StateRolledBack``) is replaced by ``restart()``."""
        self.thread.start()
        deadline = time.monotonic() + 60
        while "applied" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.1)
        try:
            replaced = change()
            worker = replaced if isinstance(replaced, WorkerProcess) else worker
        finally:
            self.changed.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive()
        while True:
            try:
                wait_until_applied(self.settings, worker, timeout=180)
                break
            except AssertionError:
                if restart is None or worker.alive() or not _exited_on_rollback(worker):
                    raise
                worker = restart()
        assert worker.alive(), worker.log()[-3000:]

    def check_exact(self) -> None:
        for model in MODELS:
            income = np.concatenate(self.sent[model])
            status = describe(self.settings, model, "1")
            assert status["events"] == income.size, model
            assert status["features"]["income"]["count"] == income.size
            assert status["features"]["income"]["mean"] == pytest.approx(np.mean(income), rel=1e-9)
        assert read_topic(self.settings, self.settings.dead_letter_topic) == []


def _exited_on_rollback(worker) -> bool:
    return worker.proc.returncode == AGENT_FAILED_EXIT and "Redis lost state this worker had saved" in worker.log()


def _partition_0_master(settings, cluster) -> tuple[str, str]:
    """(the key of partition 0's offsets, the address of the master holding it)."""
    key = AppKeys(settings.app_id, settings.topic_partitions).of(0).offsets
    return key, cluster.client().get_node_from_key(key).name


@pytest.mark.parametrize("redis_backend", ["cluster"], indirect=True)
def test_resharding_mid_stream_loses_nothing_and_counts_nothing_twice(settings, worker_factory, redis_cluster):
    key, source = _partition_0_master(settings, redis_cluster)
    masters = redis_cluster.masters()

    def move_every_slot_of_that_master():
        redis_cluster.reshard(next(m for m in masters if m.address == source).slots, source=source,
                              target=next(m for m in masters if m.address != source).address)

    stream = Stream(settings)
    stream.run_around(worker_factory(settings).start(), move_every_slot_of_that_master)
    assert redis_cluster.client().get_node_from_key(key).name != source  # the state moved under the worker
    stream.check_exact()


@pytest.mark.parametrize("redis_backend", ["cluster_with_replicas"], indirect=True)
def test_a_master_failing_over_mid_stream_is_retried_through(settings, worker_factory, redis_cluster_with_replicas):
    cluster = redis_cluster_with_replicas
    key, master = _partition_0_master(settings, cluster)
    stream = Stream(settings)
    worker = worker_factory(settings).start()
    # a replica promoted before it had the last writes makes the worker exit (and its supervisor restart it)
    stream.run_around(worker, lambda: cluster.kill_master(master),
                      restart=lambda: worker_factory(settings, "restarted").start())
    assert cluster.client().get_node_from_key(key).name != master
    stream.check_exact()


@pytest.mark.parametrize("redis_backend", ["single"], indirect=True)
def test_redis_losing_saved_writes_restarts_the_worker_which_then_loses_nothing(settings, worker_factory):
    """What a failover to a replica without the last writes does, made certain: while the stream runs, every key of
    the app goes back to a snapshot taken a few batches earlier. The worker, whose consumer is past those writes,
    exits (status 70) instead of skipping their messages; restarted, it reads them again: exact counts."""
    store = RedisStateStore(settings.redis, settings.app_id)
    tps = [(t, p) for t in (settings.inference_topic, settings.label_topic) for p in range(settings.topic_partitions)]
    first = worker_factory(settings).start()

    def lose_the_last_writes():
        snapshot = snapshot_of_the_app(settings)
        saved = store.offsets(tps)
        deadline = time.monotonic() + 60
        while sum(store.offsets(tps).values()) < sum(saved.values()) + 20:  # a few batches more
            assert time.monotonic() < deadline and first.alive(), first.log()[-3000:]
            time.sleep(0.02)
        restore_the_app(settings, snapshot)
        assert first.proc.wait(timeout=60) == AGENT_FAILED_EXIT, first.log()[-3000:]
        assert _exited_on_rollback(first)
        return worker_factory(settings, "restarted").start()

    stream = Stream(settings)
    stream.run_around(first, lose_the_last_writes)
    stream.check_exact()


@pytest.mark.parametrize("redis_backend", BACKENDS[:1], indirect=True)
def test_a_worker_refuses_topics_of_different_partition_counts(settings):
    labels = settings.label_topic + "-two"
    ensure_topics(settings.kafka, [labels], 2)
    refused = run_cli(settings.replace(label_topic=labels), "worker", timeout=120)
    assert refused.returncode != 0
    lines = [line for line in refused.stderr.splitlines() if "partition count" in line]
    assert len(lines) == 1 and f"{labels}: 2" in lines[0] and f"{settings.inference_topic}: " in lines[0], \
        refused.stderr[-2000:]


@pytest.mark.parametrize("redis_backend", ["cluster"], indirect=True)
def test_profile_and_the_triggers_ledger_work_on_the_cluster(settings, tmp_path):
    from redis.cluster import RedisCluster

    from stream_processors.state import RedisStateStore
    from stream_processors.state.trigger_ledger import TriggerLedger

    assert isinstance(settings.redis.client(), RedisCluster)
    data = tmp_path / "train.csv"
    drifting_credit_data(n=2000, seed=5).to_csv(data, index=False)
    done = run_cli(settings, "profile", "--model", "credit", "--model-version", "1", "--data", str(data))
    assert done.returncode == 0, done.stderr[-2000:]
    profile = RedisStateStore(settings.redis, settings.app_id).profiles([("credit", "1")])[("credit", "1")]
    assert profile["model"] == "credit" and profile["model_version"] == "1"
    ledger = TriggerLedger(settings.redis, settings.app_id, settings.control_topic)
    assert not ledger.is_done("t1")
    ledger.mark_done("t1")
    ledger.park("0:5")
    assert ledger.is_done("t1") and ledger.is_parked("0:5") and not ledger.is_parked("0:6")



def test_raising_the_partition_count_moves_each_models_state_to_its_new_partition(settings, worker_factory):
    s = settings.replace(inference_topic=settings.inference_topic + "-p", label_topic=settings.label_topic + "-p",
                         topic_partitions=2)
    ensure_topics(s.kafka, [s.inference_topic, s.label_topic], 2)
    assert any(partition_for(m, 2) != partition_for(m, 4) for m in MODELS)  # some models do move
    before = Stream(s)
    before.changed.set()
    worker = worker_factory(s, "before").start()
    before.run_around(worker, lambda: None)
    assert worker.kill(signal.SIGTERM) is not None
    # the documented step: workers stopped, both topics raised, workers started again
    admin = admin_client(s.kafka)  # kept alive until its futures are done
    for future in admin.create_partitions([NewPartitions(t, 4) for t in (s.inference_topic, s.label_topic)]).values():
        future.result(30)
    after = Stream(s.replace(topic_partitions=4), first_round=10)
    after.sent = before.sent  # the counts go on from what was sent before the raise
    after.changed.set()
    after.run_around(worker_factory(s, "after").start(), lambda: None)
    after.check_exact()
    keys = AppKeys(s.app_id, 4)
    client = redis_client(s.redis)
    for model in MODELS:
        assert client.exists(keys.state(model, "1")) and not client.exists(AppKeys(s.app_id, 2).state(model, "1")) \
            or partition_for(model, 2) == partition_for(model, 4)


def test_a_cluster_refusing_the_credentials_is_the_one_line_error_without_the_password(redis_cluster):
    env = {**os.environ, **redis_cluster.env, "DRIFTLINE_REDIS_URL": "redis://bob:S3cretPassw0rd@localhost/0"}
    done = subprocess.run([sys.executable, "-m", "stream_processors.cli", "status", "--app-id", "cluster-auth"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and "S3cretPassw0rd" not in done.stderr + done.stdout
    assert done.stderr.startswith("driftline: error: Redis at cluster ") and done.stderr.count("\n") == 1, \
        done.stderr[-400:]
    assert "refused the credentials" in done.stderr
