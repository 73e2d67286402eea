"""The faults of a production day, on real services: nothing lost, nothing counted twice, nobody stuck.

Tests that restart or hang a service run their own Kafka or Redis (deploy/stack.sh
in a directory and on ports of their own), so the shared services never blink.
Every test ends with exact counts and means checked against numpy.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import confluent_kafka
import numpy as np
import orjson
import pytest

from producers.events import encode_envelope, encode_event
from producers.topics import ensure_topics
from stream_processors.state import redis_client
from stream_processors.state import RedisStateStore
from stream_processors.state.keys import AppKeys

from .conftest import describe, read_topic, run_cli, wait_for_log, wait_until_applied

pytestmark = pytest.mark.integration

STACK = Path(__file__).resolve().parents[2] / "deploy" / "stack.sh"
MODELS = [f"m{i}" for i in range(4)]


def _free_port_pair() -> int:
    """A port whose next port is free too (Kafka's controller listens on port + 1)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        try:
            with socket.socket() as b:
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free pair of ports")


class PrivateStack:
    """Kafka and/or Redis of one test, started and stopped with deploy/stack.sh."""

    def __init__(self, directory: Path) -> None:
        self.env = {**os.environ, "DRIFTLINE_STACK_DIR": str(directory),
                    "DRIFTLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{_free_port_pair()}",
                    "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{_free_port_pair()}/0"}
        self.kafka_bootstrap = self.env["DRIFTLINE_KAFKA_BOOTSTRAP"]
        self.redis_url = self.env["DRIFTLINE_REDIS_URL"]

    def run(self, action: str, service: str) -> None:
        done = subprocess.run(["bash", str(STACK), action, service], env=self.env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr

    def stop(self) -> None:
        subprocess.run(["bash", str(STACK), "down"], env=self.env, capture_output=True, timeout=180)


_TRAFFIC: list[Traffic] = []


@pytest.fixture(autouse=True)
def _stop_traffic():
    yield
    while _TRAFFIC:
        _TRAFFIC.pop().stop()


@pytest.fixture
def private_stack(tmp_path):
    stacks: list[PrivateStack] = []

    def make() -> PrivateStack:
        stack = PrivateStack(tmp_path / f"stack{len(stacks)}")
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


class Traffic:
    """Events for a few models, sent in a thread at a steady pace; remembers every x it sent.

    With `hold_at` (a fraction, or several), the thread stops once that fraction is sent and waits for
    `release()`: a test that breaks a service in between knows events still come after the fault, however
    long the worker took to start.
    """

    def __init__(self, settings, n_per_model: int, rate: float, envelopes: bool = False,
                 hold_at: float | tuple[float, ...] = ()) -> None:
        self.settings = settings
        self.n = n_per_model
        self.rate = rate
        self.envelopes = envelopes
        self.sent: dict[str, list[float]] = {m: [] for m in MODELS}
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.progress = 0
        self.holds = sorted(int(f * n_per_model) for f in (hold_at if isinstance(hold_at, tuple) else [hold_at]))
        self._releases = threading.Semaphore(0)
        self._stopped = threading.Event()
        _TRAFFIC.append(self)

    def _send(self) -> None:
        producer = confluent_kafka.Producer({"bootstrap.servers": self.settings.kafka.bootstrap,
                                             "partitioner": "murmur2_random",
                                             "enable.idempotence": True, "linger.ms": 5})
        rng = np.random.default_rng(11)
        step = 20 if self.envelopes else 1
        started = time.monotonic()
        for i in range(0, self.n, step):
            for model in MODELS:
                xs = rng.normal(10.0, 2.0, step)
                events = [{"event_id": f"{model}-{i + k}", "timestamp": 1.7e9 + i + k,
                           "features": {"x": float(x), "c": "ab"[(i + k) % 2]}, "prediction": (i + k) % 2}
                          for k, x in enumerate(xs)]
                value = encode_envelope(model, events, "1") if self.envelopes else \
                    encode_event({"model": model, "model_version": "1", **events[0]})
                while True:
                    try:
                        producer.produce(self.settings.inference_topic, key=model.encode(), value=value)
                        break
                    except BufferError:
                        producer.poll(0.1)
                self.sent[model].extend(float(x) for x in xs)
            producer.poll(0)
            if self.holds and i + step >= self.holds[0]:
                self.holds.pop(0)
                assert producer.flush(120) == 0  # what came before the hold is in Kafka when wait_for returns
                self.progress = i + step
                held = time.monotonic()
                assert self._releases.acquire(timeout=300), "the test never released the traffic"
                if self._stopped.is_set():
                    return
                started += time.monotonic() - held  # the pace goes on from where it stopped
            self.progress = i + step
            behind = (i + step) / self.rate - (time.monotonic() - started)
            if behind > 0:
                time.sleep(behind)
        assert producer.flush(120) == 0

    def start(self) -> Traffic:
        self.thread.start()
        return self

    def wait_for(self, fraction: float) -> None:
        while self.progress < int(fraction * self.n):  # as the holds round
            assert self.thread.is_alive()
            time.sleep(0.05)

    def release(self) -> None:
        """Ends the current (or next) hold: the events follow at the same pace."""
        self._releases.release()

    def stop(self) -> None:
        """Ends a held thread at once (after a test, failed or not), so that it waits for nothing."""
        self._stopped.set()
        self._releases.release()

    def finish(self) -> None:
        self.thread.join(timeout=300)
        assert not self.thread.is_alive()

    def check(self, settings) -> None:
        """Exact counts, and the means and standard deviations numpy gets from what was sent."""
        for model, xs in self.sent.items():
            status = describe(settings, model, "1")
            assert status["events"] == len(xs) == self.n, model
            x = status["features"]["x"]
            assert x["count"] == len(xs)
            assert x["mean"] == pytest.approx(np.mean(xs), rel=1e-12)
            assert x["std"] == pytest.approx(np.std(xs, ddof=1), rel=1e-9)


def _topics(s) -> None:
    ensure_topics(s.kafka.bootstrap, [s.inference_topic, s.label_topic, s.control_topic, s.dead_letter_topic],
                  s.topic_partitions)


def _wait_until_working(s, worker, timeout: float = 60.0) -> None:
    """Until the worker has saved state: it is past its start-up and in the middle of the stream."""
    store = RedisStateStore(s.redis, s.app_id)
    deadline = time.monotonic() + timeout
    while not store.models():
        assert worker.alive(), worker.log()[-3000:]
        assert time.monotonic() < deadline, f"the worker saved nothing in {timeout}s:\n{worker.log()[-3000:]}"
        time.sleep(0.1)


def _worker_on_own(service: str, private_stack, settings, worker_factory, **traffic):
    """A worker on a Kafka or Redis of this test's own, with traffic flowing and state being saved."""
    stack = private_stack()
    stack.run("up", service)
    if service == "redis":
        s = settings.replace(redis_url=stack.redis_url)
    else:
        s = settings.replace(kafka_bootstrap=stack.kafka_bootstrap)
        _topics(s)
    worker = worker_factory(s).start()
    flow = Traffic(s, **traffic).start()
    _wait_until_working(s, worker)
    return stack, s, worker, flow


def test_redis_restart_mid_stream(settings, private_stack, worker_factory):
    stack, s, worker, traffic = _worker_on_own("redis", private_stack, settings, worker_factory,
                                                n_per_model=1500, rate=300, hold_at=0.3)
    traffic.wait_for(0.3)
    stack.run("down", "redis")  # SIGTERM: a clean shutdown, the AOF kept
    traffic.release()
    wait_for_log("retrying in", worker)
    time.sleep(2)
    stack.run("up", "redis")
    traffic.finish()
    wait_until_applied(s, worker, timeout=180)
    traffic.check(s)
    assert worker.alive()


def test_redis_that_hangs_longer_than_the_session_timeout(settings, private_stack, worker_factory):
    # session timeout 3 s (conftest)
    stack, s, worker, traffic = _worker_on_own("redis", private_stack, settings, worker_factory,
                                                n_per_model=1500, rate=300, hold_at=0.3)
    traffic.wait_for(0.3)
    traffic.release()  # events arrive while Redis sleeps
    started = time.monotonic()
    # Redis answers nobody meanwhile
    redis_client(stack.redis_url, socket_timeout=60).execute_command("DEBUG", "SLEEP", 12)
    assert time.monotonic() - started >= 11
    traffic.finish()
    wait_until_applied(s, worker, timeout=180)
    traffic.check(s)
    # the batch waited on its own thread; heartbeats went on, so the group never lost this worker
    assert "partitions revoked" not in worker.log()
    assert worker.alive()


def test_kafka_broker_restart_mid_stream(settings, private_stack, worker_factory):
    stack, s, worker, traffic = _worker_on_own("kafka", private_stack, settings, worker_factory,
                                                n_per_model=1200, rate=200, envelopes=False, hold_at=0.3)
    traffic.wait_for(0.3)
    stack.run("down", "kafka")
    traffic.release()  # the producer buffers what it sends meanwhile
    time.sleep(3)
    stack.run("up", "kafka")
    traffic.finish()
    wait_until_applied(s, worker, timeout=240)
    traffic.check(s)
    assert worker.alive()


def test_sigterm_while_kafka_is_down(settings, private_stack, worker_factory):
    stack, s, worker, traffic = _worker_on_own("kafka", private_stack, settings, worker_factory,
                                                n_per_model=200, rate=400)
    traffic.finish()
    wait_until_applied(s, worker)
    stack.run("down", "kafka")
    started = time.monotonic()
    assert worker.kill(signal.SIGTERM) == 0
    assert time.monotonic() - started < 40  # faust would wait for the broker for good; the worker does not
    stack.run("up", "kafka")
    worker.start()
    wait_until_applied(s, worker, timeout=120)
    traffic.check(s)


def test_joining_worker_frozen_owner_and_sigkill(settings, worker_factory):
    a = worker_factory(settings, "a").start()
    # each step below waits at a hold until the workers are where it needs them, so each has traffic to act on
    traffic = Traffic(settings, n_per_model=3000, rate=400, hold_at=(0.2, 0.4, 0.55, 0.7)).start()
    _wait_until_working(settings, a)
    traffic.wait_for(0.2)
    b = worker_factory(settings, "b").start()  # a second worker joins: the partitions are shared
    wait_for_log("partitions revoked", a)
    traffic.release()
    wait_for_log("applied", b)  # b owns partitions and works on them
    traffic.wait_for(0.4)
    traffic.release()
    time.sleep(0.5)
    a.proc.send_signal(signal.SIGSTOP)  # frozen with whatever batch it holds, past the session timeout
    time.sleep(3 * settings.session_timeout_s + 4)  # b takes a's partitions over and applies up to the 55% hold
    traffic.release()  # b is busy on them when
    a.proc.send_signal(signal.SIGCONT)  # the stale owner wakes: its late commit must not overwrite b's state
    traffic.wait_for(0.7)
    assert b.kill(signal.SIGKILL) == -signal.SIGKILL  # and a takes everything over again
    traffic.release()
    traffic.finish()
    wait_until_applied(settings, a, timeout=240)
    traffic.check(settings)
    assert a.alive()


def test_sigterm_while_a_batch_waits_to_retry(settings, private_stack, worker_factory):
    stack, s, worker, traffic = _worker_on_own("redis", private_stack, settings, worker_factory,
                                                n_per_model=800, rate=400, hold_at=0.3)
    traffic.wait_for(0.3)
    stack.run("down", "redis")
    traffic.release()  # the next batch finds Redis gone
    wait_for_log("retrying in", worker)
    started = time.monotonic()
    worker.kill(signal.SIGTERM)
    assert time.monotonic() - started < 30  # it does not wait for Redis to come back
    stack.run("up", "redis")
    traffic.finish()
    worker.start()  # the restarted worker resumes from the offsets in Redis, not Kafka's
    wait_until_applied(s, worker, timeout=180)
    traffic.check(s)


def test_damaged_state_and_profile_are_quarantined(settings, worker_factory):
    worker = worker_factory(settings).start()
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka.bootstrap,
                                         "partitioner": "murmur2_random"})

    def send(model, first, n):
        for i in range(first, first + n):
            producer.produce(settings.inference_topic, key=model.encode(), value=encode_event(
                {"model": model, "model_version": "1", "event_id": f"{model}-{i}", "timestamp": 1.7e9 + i,
                 "features": {"x": float(i % 13)}, "prediction": i % 2}))
        assert producer.flush(30) == 0

    send("m0", 0, 300)
    wait_until_applied(settings, worker)
    # the damage is found where a worker reads the record: at its start (a running worker uses the state it
    # saved, kept in its state cache while Redis holds the offsets it saved with it)
    assert worker.kill(signal.SIGTERM) == 0
    r = redis_client(settings.redis)
    keys = AppKeys(settings.app_id, settings.topic_partitions)
    state_key = keys.state("m0", "1")
    saved = orjson.loads(r.get(state_key))
    for monitor in saved["monitors"].values():  # river's compiled core panics on a window it cannot read
        for part in monitor.values():
            if isinstance(part, dict) and "window" in part:
                part["window"] = part["window"][:12]
    r.set(state_key, orjson.dumps(saved))
    r.set(keys.profile("m1", "1"), b'{"format": "driftline.reference_profile/0", "x": ')
    worker.start()
    send("m0", 300, 100)
    send("m1", 0, 100)
    wait_until_applied(settings, worker)

    alerts = [a for a in read_topic(settings, settings.control_topic) if a["type"] == "state_quarantined"]
    assert sorted((a["model"], a["evidence"]["record"]) for a in alerts) == [("m0", "state"), ("m1", "profile")]
    assert all(a["severity"] == "critical" for a in alerts)
    assert describe(settings, "m0", "1")["events"] == 100  # afresh after the damage, and it says so:
    shown = run_cli(settings, "status", "--model", "m0")
    assert shown.returncode == 0 and "quarantined" in shown.stdout, shown.stdout + shown.stderr
    assert describe(settings, "m1", "1")["events"] == 100
    kept = [k for n in range(settings.topic_partitions) for k in r.keys(f"{keys.of(n).tag}:quarantine:*")]
    assert len(kept) == 2  # both records kept aside as they were
    assert worker.alive()


@pytest.mark.parametrize("rebuild", [False, True])
def test_state_lost_in_redis_is_detected(settings, worker_factory, rebuild):
    s = settings.replace(rebuild_on_state_loss=rebuild)
    worker = worker_factory(s).start()
    traffic = Traffic(s, n_per_model=300, rate=2000).start()
    traffic.finish()
    wait_until_applied(s, worker)
    worker.kill(signal.SIGTERM)
    time.sleep(1.5)  # faust commits its offsets to Kafka as it stops
    r = redis_client(s.redis)
    r.delete(*r.keys(f"driftline:{s.app_id}:*"), *r.keys(f"{{driftline:{s.app_id}:p*"))  # Redis lost the app's all
    worker.start()
    store = RedisStateStore(s.redis, s.app_id)
    lost = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not lost:
        lost = [a for a in read_topic(s, s.control_topic) if a["type"] == "state_lost"]
        time.sleep(0.5)
    assert lost and all(a["evidence"]["rebuild"] is rebuild for a in lost)
    assert {a["evidence"]["topic"] for a in lost} == {s.inference_topic}
    if rebuild:
        wait_until_applied(s, worker)
        traffic.check(s)  # rebuilt from the earliest retained offset, exactly
    else:
        assert not store.models()
        # nothing re-read (the operator decides): it goes on from Kafka's committed offsets, with new events only
        more = Traffic(s, n_per_model=20, rate=2000).start()
        more.finish()
        wait_until_applied(s, worker)
        more.check(s)
    assert worker.alive()
