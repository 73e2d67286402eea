"""Two workers' /metrics after a rebalance: each exports the models of the partitions it owns, none twice."""

import time
import urllib.request

import pytest

from producers.example_data import drifting_credit_data
from producers.partitioning import partition_for
from producers.replay import plan_columns, replay, rows_to_events

from .conftest import free_port, wait_until_applied

pytestmark = pytest.mark.integration

MODELS = [f"model-{i}" for i in range(8)]
PER_SEND = 600


def _model_events(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {line.split('model="')[1].split('"')[0]: float(line.split()[-1]) for line in text.splitlines()
            if line.startswith("driftline_model_events{")}


def _send(settings, seed: int) -> None:
    for i, model in enumerate(MODELS):
        frame = drifting_credit_data(n=PER_SEND, seed=seed + i)
        events, _ = rows_to_events(frame, plan_columns(frame), model)
        events = [{**e, "event_id": f"{seed}-{e['event_id']}"} for e in events]
        replay(settings.kafka.bootstrap, model, "1", events, [], settings.inference_topic, settings.label_topic,
               batch_size=100)


def test_a_rebalance_moves_each_models_gauges_to_its_new_owner(settings, worker_factory):
    ports = {"a": free_port(), "b": free_port()}
    a = worker_factory(settings.replace(metrics_port=ports["a"], metrics_host="127.0.0.1"), "a").start()
    _send(settings, 0)
    wait_until_applied(settings, a)
    deadline = time.monotonic() + 30
    while set(_model_events(ports["a"])) != set(MODELS):
        assert time.monotonic() < deadline, _model_events(ports["a"])
        time.sleep(0.2)
    partitions = {m: partition_for(m, settings.topic_partitions) for m in MODELS}
    assert len(set(partitions.values())) > 1  # the models are spread, so a second worker takes some

    b = worker_factory(settings.replace(metrics_port=ports["b"], metrics_host="127.0.0.1"), "b").start()
    deadline = time.monotonic() + 60
    while set(_model_events(ports["a"])) == set(MODELS):  # a drops the models of the partitions b took
        assert time.monotonic() < deadline, a.log()[-2000:] + b.log()[-2000:]
        time.sleep(0.2)
    _send(settings, 1000)
    wait_until_applied(settings, timeout=120)
    deadline = time.monotonic() + 30
    while True:
        shown = {name: _model_events(port) for name, port in ports.items()}
        if set(shown["a"]) | set(shown["b"]) == set(MODELS):
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    assert not set(shown["a"]) & set(shown["b"]), shown  # no model exported twice
    # each worker's models are those of its own partitions, and the counts are the models' whole histories
    assert not {partitions[m] for m in shown["a"]} & {partitions[m] for m in shown["b"]}, shown
    assert all(v == 2 * PER_SEND for worker in shown.values() for v in worker.values()), shown
