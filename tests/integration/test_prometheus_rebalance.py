"""Two workers' /metrics after a rebalance: each exports the models of the partitions it owns, none twice; a worker
that takes partitions (or restarts) exports their models as saved before their next event."""

import signal
import time
import urllib.error
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
    return _gauges(port, "driftline_model_events")


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
    # b exports the models of its partitions as saved, before any of them has a new event
    shown = _wait_for_every_model(ports)
    assert all(v == PER_SEND for worker in shown.values() for v in worker.values()), shown
    _send(settings, 1000)
    wait_until_applied(settings, timeout=120)
    shown = _wait_for_every_model(ports, 2 * PER_SEND)
    # each worker's models are those of its own partitions, and the counts are the models' whole histories
    assert not {partitions[m] for m in shown["a"]} & {partitions[m] for m in shown["b"]}, shown


def _wait_for_every_model(ports: dict[str, int], events: int | None = None) -> dict[str, dict[str, float]]:
    """The workers' model event gauges once every model is exported by one of them (with ``events`` each)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            shown = {name: _model_events(port) for name, port in ports.items()}
        except urllib.error.URLError:  # a worker just started, not serving /metrics yet
            shown = {}
        every = {m: v for worker in shown.values() for m, v in worker.items()}
        if set(every) == set(MODELS) and (events is None or set(every.values()) == {events}):
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    assert sum(len(worker) for worker in shown.values()) == len(MODELS), shown  # no model exported twice
    return shown


def test_a_restarted_worker_exports_models_without_traffic_as_saved(settings, worker_factory):
    port = free_port()
    s = settings.replace(metrics_port=port, metrics_host="127.0.0.1")
    first = worker_factory(s, "first").start()
    _send(settings, 0)
    wait_until_applied(settings, first)
    before = _wait_for_every_model({"first": port}, PER_SEND)["first"]
    decisions = _gauges(port, "driftline_model_decision")
    assert set(decisions) == set(MODELS)
    assert first.kill(signal.SIGTERM) == 0
    worker_factory(s, "restarted").start()  # no event comes: what it exports is what Redis holds
    assert _wait_for_every_model({"restarted": port}, PER_SEND)["restarted"] == before
    assert _gauges(port, "driftline_model_decision") == decisions
    assert set(_gauges(port, "driftline_model_last_update_timestamp_seconds")) == set(MODELS)


def _gauges(port: int, name: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {line.split('model="')[1].split('"')[0]: float(line.split()[-1]) for line in text.splitlines()
            if line.startswith(name + "{")}
