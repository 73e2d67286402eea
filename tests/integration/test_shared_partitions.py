"""Two workers share the partitions; when one dies the other takes over its models, exactly."""

import signal
import threading
import time

import numpy as np
import pytest

from producers.example_data import drifting_credit_data
from producers.replay import plan_columns, replay, rows_to_events

from .conftest import BACKENDS, describe, wait_until_applied

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("redis_backend", BACKENDS, indirect=True)]

MODELS = [f"model-{i}" for i in range(6)]


def test_two_workers_then_one(settings, worker_factory):
    frames = {m: drifting_credit_data(n=6000, seed=i) for i, m in enumerate(MODELS)}
    a = worker_factory(settings, "a").start()
    b = worker_factory(settings, "b").start()

    def send_all():
        for model, frame in frames.items():
            events, _ = rows_to_events(frame, plan_columns(frame), model)
            replay(settings.kafka.bootstrap, model, "1", events, [], settings.inference_topic,
                   settings.label_topic, batch_size=100, rate=3000)

    sender = threading.Thread(target=send_all)
    sender.start()
    deadline = time.monotonic() + 60
    while not ("applied" in a.log() and "applied" in b.log()):  # both own partitions and work
        assert time.monotonic() < deadline, a.log()[-2000:] + b.log()[-2000:]
        time.sleep(0.1)
    assert sender.is_alive()
    assert b.kill(signal.SIGKILL) == -signal.SIGKILL  # a takes over b's partitions mid-stream
    sender.join()
    wait_until_applied(settings, a, timeout=120)

    for model, frame in frames.items():
        status = describe(settings, model, "1")
        assert status["events"] == 6000, model
        income = frame["income"].to_numpy()
        assert status["features"]["income"]["count"] == income.size
        assert status["features"]["income"]["mean"] == pytest.approx(np.mean(income), rel=1e-9)
