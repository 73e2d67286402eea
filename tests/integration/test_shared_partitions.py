"""Two workers share the partitions; when one dies the other takes over its models, exactly."""

import signal
import threading
import time

import numpy as np
import pytest

from producers.example_data import drifting_credit_data
from producers.partitioning import partition_for
from producers.replay import plan_columns, replay, rows_to_events

from .conftest import BACKENDS, describe, wait_for_log, wait_until_applied

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("redis_backend", BACKENDS, indirect=True)]

MODELS = [f"model-{i}" for i in range(6)]


def test_two_workers_then_one(settings, worker_factory):
    # whichever partitions b is given, models live on them
    assert {partition_for(m, settings.topic_partitions) for m in MODELS} == set(range(settings.topic_partitions))
    frames = {m: drifting_credit_data(n=6000, seed=i) for i, m in enumerate(MODELS)}
    events = {m: rows_to_events(frame, plan_columns(frame), m)[0] for m, frame in frames.items()}
    a = worker_factory(settings, "a").start()
    wait_for_log("Worker ready", a)  # a owns every partition
    b = worker_factory(settings, "b").start()
    wait_for_log("partitions revoked", a)  # b joined: the partitions are shared (the models are on all four)

    def send(first: int, last: int) -> None:
        for model, evs in events.items():
            replay(settings.kafka.bootstrap, model, "1", evs[first:last], [], settings.inference_topic,
                   settings.label_topic, batch_size=100, rate=3000)

    rest, abort = threading.Event(), threading.Event()

    def send_all():
        send(0, 2000)
        rest.wait(120)  # the rest only once b is gone, so a takes over b's partitions mid-stream
        if not abort.is_set():
            send(2000, 6000)

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    try:
        wait_for_log("applied", a, b)  # both own partitions and work
        assert b.kill(signal.SIGKILL) == -signal.SIGKILL
        rest.set()
        sender.join()
    finally:  # a failed step does not leave the sender waiting
        abort.set()
        rest.set()
    wait_until_applied(settings, a, timeout=120)

    for model, frame in frames.items():
        status = describe(settings, model, "1")
        assert status["events"] == 6000, model
        income = frame["income"].to_numpy()
        assert status["features"]["income"]["count"] == income.size
        assert status["features"]["income"]["mean"] == pytest.approx(np.mean(income), rel=1e-9)
