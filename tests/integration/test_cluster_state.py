"""State on a real Redis Cluster under change: slots of the worker's partitions move to another master while a
producer and a worker run (nothing lost, nothing counted twice), and a worker refuses topics whose partition
counts differ."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from producers.example_data import drifting_credit_data
from producers.replay import plan_columns, replay, rows_to_events
from producers.topics import ensure_topics
from stream_processors.state.keys import AppKeys

from .conftest import BACKENDS, describe, read_topic, run_cli, wait_until_applied

pytestmark = pytest.mark.integration
MODELS = [f"model-{i}" for i in range(4)]
ROUND = 500


@pytest.mark.parametrize("redis_backend", ["cluster"], indirect=True)
def test_resharding_mid_stream_loses_nothing_and_counts_nothing_twice(settings, worker_factory, redis_cluster):
    keys = AppKeys(settings.app_id, settings.topic_partitions)
    tags = [keys.of(n).offsets for n in range(settings.topic_partitions)]
    client = redis_cluster.client()
    owner = {tag: client.get_node_from_key(tag).name for tag in tags}
    worker = worker_factory(settings).start()
    sent: dict[str, list[np.ndarray]] = {m: [] for m in MODELS}  # income of every event sent, per model
    resharded = threading.Event()

    def send_until_resharded():
        rounds = 0
        while rounds < 3 or not resharded.is_set():  # a round of each model before, during and after
            for i, model in enumerate(MODELS):
                frame = drifting_credit_data(n=ROUND, seed=1000 * rounds + i)
                events, _ = rows_to_events(frame, plan_columns(frame), model)
                for e in events:
                    e["event_id"] = f"{rounds}-{e['event_id']}"
                replay(settings.kafka.bootstrap, model, "1", events, [], settings.inference_topic,
                       settings.label_topic, batch_size=50, rate=4000)
                sent[model].append(frame["income"].to_numpy())
            rounds += 1

    sender = threading.Thread(target=send_until_resharded, daemon=True)
    sender.start()
    deadline = time.monotonic() + 60
    while "applied" not in worker.log():
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.1)
    # every slot of the master holding partition 0's tag moves away, keys included, while both run
    source = owner[tags[0]]
    masters = redis_cluster.masters()
    try:
        redis_cluster.reshard(next(m for m in masters if m.address == source).slots, source=source,
                              target=next(m for m in masters if m.address != source).address)
    finally:
        resharded.set()
    sender.join(timeout=120)
    assert not sender.is_alive()
    wait_until_applied(settings, worker, timeout=180)
    assert worker.alive(), worker.log()[-3000:]

    assert redis_cluster.client().get_node_from_key(tags[0]).name != source  # the state moved under the worker
    for model in MODELS:
        income = np.concatenate(sent[model])
        status = describe(settings, model, "1")
        assert status["events"] == income.size, model
        assert status["features"]["income"]["count"] == income.size
        assert status["features"]["income"]["mean"] == pytest.approx(np.mean(income), rel=1e-9)
    assert read_topic(settings, settings.dead_letter_topic) == []


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
