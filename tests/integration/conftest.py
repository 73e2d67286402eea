"""Fixtures for tests on the real services that deploy/stack.sh starts.

Each test gets its own topics and worker app id, so tests never see each
other's events or state. A service that is not reachable fails the test
(it is never skipped): run ``make stack-up`` or ``make test``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import confluent_kafka
import orjson
import pytest
import redis

from producers import kafka
from producers.topics import ensure_topics
from stream_processors.state import redis_client
from stream_processors.batch import logic_params
from detectors.model.monitor import ModelMonitor
from stream_processors.config import RedisConnection, Settings, load_settings
from stream_processors.state import RedisStateStore
from stream_processors.state.keys import AppKeys

from .redis_cluster import redis_cluster, redis_cluster_with_replicas  # noqa: F401 - for redis_backend

pytestmark = pytest.mark.integration


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    settings = load_settings()
    host, _, port = settings.kafka.bootstrap.split(",")[0].rpartition(":")
    if not _reachable(host, int(port)):
        pytest.fail(f"Kafka is not reachable at {settings.kafka.bootstrap}: run 'make stack-up'")
    try:
        redis_client(settings.redis, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.fail(f"Redis is not reachable at {settings.redis.redacted()}: run 'make stack-up'")
    return settings


@pytest.fixture
def redis_backend(request) -> str:
    """``single`` (the shared Redis), or ``cluster`` (a Redis Cluster of the test session's own;
    ``cluster_with_replicas``: with a replica per master) in tests
    parametrized with ``pytest.mark.parametrize("redis_backend", BACKENDS, indirect=True)``."""
    return getattr(request, "param", "single")


BACKENDS = ["single", "cluster"]


@pytest.fixture
def settings(base_settings: Settings, redis_backend: str, request):
    """Settings with topics and app id of this test's own (and the Redis backend it is parametrized with)."""
    tag = f"it-{uuid.uuid4().hex[:10]}"
    if redis_backend.startswith("cluster"):
        cluster = request.getfixturevalue("redis_" + redis_backend)
        base_settings = base_settings.replace(redis=RedisConnection(base_settings.redis.url,
                                                                    cluster_nodes=",".join(cluster.nodes)))
    s = base_settings.replace(app_id=tag, inference_topic=f"{tag}.inference", label_topic=f"{tag}.labels",
                              control_topic=f"{tag}.control", dead_letter_topic=f"{tag}.deadletter",
                              profile_topic=f"{tag}.profiles", session_timeout_s=3.0, metrics_port=0)
    ensure_topics(s.kafka, [s.inference_topic, s.label_topic, s.control_topic, s.dead_letter_topic],
                  s.topic_partitions)
    yield s
    _delete_topics(s, tag)


def _delete_topics(s: Settings, tag: str) -> None:
    """The test's topics go with it (its own and faust's ``<app id>-__assignor-__leader``): a broker that keeps
    every test's partitions runs out of file handles after a few hundred runs of the suite."""
    try:
        admin = kafka.admin_client(s.kafka, {"log_level": 4, "socket.connection.setup.timeout.ms": 5000})
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(tag)]
        for future in (admin.delete_topics(topics, operation_timeout=30).values() if topics else ()):
            future.result()
    except confluent_kafka.KafkaException as exc:  # the test's verdict stands; the topics stay
        warnings.warn(f"topics of {tag} not deleted: {exc}", stacklevel=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(s: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream_processors.cli", *args], env=s.to_env(),
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class WorkerProcess:
    settings: Settings
    log_path: Path
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)  # beside the settings' (a test's hook, say)

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_processors.cli", "worker"],
                                     env={**self.settings.to_env(), **self.env}, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def worker_factory(tmp_path):
    started: list[WorkerProcess] = []

    def make(s: Settings, name: str = "worker", env: dict[str, str] | None = None) -> WorkerProcess:
        w = WorkerProcess(s, tmp_path / f"{name}.log", env=env or {})
        started.append(w)
        return w

    yield make
    for w in started:
        if w.alive():
            try:
                w.kill(signal.SIGTERM)
            except subprocess.TimeoutExpired:
                w.kill(signal.SIGKILL)  # never leave a worker behind, whatever the test did to its services
                raise


def _high_watermark(consumer: confluent_kafka.Consumer, topic: str, partition: int) -> int:
    """The partition's end offset; a topic created moments ago may answer "not leader" until its leader is
    known to every broker connection, so that answer is asked again for up to 10 s."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, partition), timeout=10)[1]
        except confluent_kafka.KafkaException as exc:
            retriable = exc.args[0].code() in (confluent_kafka.KafkaError.NOT_LEADER_FOR_PARTITION,
                                               confluent_kafka.KafkaError.LEADER_NOT_AVAILABLE)
            if not retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def end_offsets(s: Settings, topic: str) -> dict[int, int]:
    consumer = confluent_kafka.Consumer({**s.kafka.client_config(), "group.id": "driftline-probe"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: _high_watermark(consumer, topic, p) for p in parts}
    finally:
        consumer.close()


def wait_for_log(text: str, *workers: WorkerProcess, timeout: float = 60.0) -> None:
    """Wait until every worker's log holds ``text``; a worker that exits meanwhile fails the wait at once."""
    deadline = time.monotonic() + timeout
    while not all(text in w.log() for w in workers):
        assert all(w.alive() for w in workers) and time.monotonic() < deadline, \
            f"{text!r} not in every log after {timeout}s:\n" + "\n".join(w.log()[-3000:] for w in workers)
        time.sleep(0.1)


def wait_until_applied(s: Settings, worker: WorkerProcess | None = None, timeout: float = 120) -> None:
    """Wait until the worker app's saved offsets reach the end of the inference and label topics."""
    store = RedisStateStore(s.redis, s.app_id)
    want = {}
    for topic in (s.inference_topic, s.label_topic):
        want.update({(topic, p): end - 1 for p, end in end_offsets(s, topic).items() if end > 0})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.offsets(list(want)) == want:
            return
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker exited with {worker.proc.returncode}:\n{worker.log()[-3000:]}")
        time.sleep(0.25)
    raise AssertionError(f"worker did not catch up in {timeout}s: {store.offsets(list(want))} != {want}\n"
                         + (worker.log()[-3000:] if worker else ""))


def _app_keys(client, s: Settings) -> set:
    prefix = AppKeys(s.app_id).prefix
    return {*client.scan_iter(match=f"{prefix}:*"), *client.scan_iter(match=f"{{{prefix}:p*")}


def snapshot_of_the_app(s: Settings) -> dict:
    """Every Redis key of the app as of one moment (single Redis): a commit between two DUMPs would pair one
    batch's state with another's offsets. The dumps run in one MULTI; a key a worker adds meanwhile makes it
    start over."""
    assert not s.redis.cluster_nodes, "one MULTI spans the app's keys only on a single Redis"
    client = redis_client(s.redis)
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "the app's keys kept changing for 30s: no moment to snapshot"
        keys = sorted(_app_keys(client, s))
        with client.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.dump(key)
            dumped = pipe.execute()
        if set(keys) == _app_keys(client, s):
            return dict(zip(keys, dumped))


def restore_the_app(s: Settings, snapshot: dict) -> None:
    """The app's keys back to ``snapshot``, in one MULTI: what a failover to a replica without the last writes
    does."""
    client = redis_client(s.redis)
    with client.pipeline(transaction=True) as pipe:
        for key in _app_keys(client, s) - set(snapshot):
            pipe.delete(key)
        for key, dumped in snapshot.items():
            pipe.restore(key, 0, dumped, replace=True)
        pipe.execute()


def kafka_committed(s: Settings, messages: int, timeout: float = 30) -> None:
    """Wait until the worker app's group has committed ``messages`` offsets on the inference topic, in all."""
    consumer = confluent_kafka.Consumer({**s.kafka.client_config(), "group.id": s.app_id})
    try:
        parts = consumer.list_topics(s.inference_topic, timeout=10).topics[s.inference_topic].partitions
        deadline = time.monotonic() + timeout
        while True:
            committed = consumer.committed([confluent_kafka.TopicPartition(s.inference_topic, p) for p in parts],
                                           timeout=10)
            total = sum(max(tp.offset, 0) for tp in committed)
            if total >= messages:
                return
            assert time.monotonic() < deadline, f"the group committed {total} of {messages} messages"
            time.sleep(0.2)
    finally:
        consumer.close()


def read_topic(s: Settings, topic: str, timeout: float = 20, raw: bool = False) -> list:
    """Every record on a topic, decoded from JSON (``raw``: as the bytes on the topic)."""
    ends = end_offsets(s, topic)
    consumer = confluent_kafka.Consumer({**s.kafka.client_config(),
                                         "group.id": f"probe-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
                                         "enable.auto.commit": False})
    consumer.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in ends])
    seen = {p: 0 for p in ends}
    out = []
    deadline = time.monotonic() + timeout
    try:
        while any(seen[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            seen[msg.partition()] = msg.offset() + 1
            out.append(msg.value() if raw else orjson.loads(msg.value()))
    finally:
        consumer.close()
    return out


def model_state(s: Settings, model: str, version: str) -> dict | None:
    return RedisStateStore(s.redis, s.app_id).load([(model, version)])[(model, version)]


def describe(s: Settings, model: str, version: str) -> dict:
    return ModelMonitor.from_dict(model_state(s, model, version), logic_params(s).monitor).describe()


def status_json(s: Settings, model: str = "credit") -> dict:
    """What ``driftline status --json`` prints."""
    shown = run_cli(s, "status", "--model", model, "--json")
    assert shown.returncode == 0, shown.stderr
    return orjson.loads(shown.stdout)
