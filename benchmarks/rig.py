"""What every Driftline benchmark needs: topics, an app id and Redis keys of its own, workers started the way
a user starts them (``python -m stream_processors.cli worker`` with ``DRIFTLINE_*`` variables), and a line
about the machine the figures came from.

A ``BenchRun`` names everything after a fresh tag, so runs never see each other's events or state, and
deletes its topics, consumer groups and Redis keys when it ends. Kafka and Redis are those of Driftline's
settings (``DRIFTLINE_KAFKA_*``, ``DRIFTLINE_REDIS_URL``; default: the local stack of ``make stack-up``), and
every Kafka client is built by ``producers.kafka``, as Driftline's own are. ``PrivateRedis`` starts a Redis of
the run's own with deploy/stack.sh, for figures of Redis memory that must not include other users' keys.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import confluent_kafka
import redis
from aiokafka.partitioner import murmur2
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from producers import kafka  # noqa: E402
from stream_processors.config import Settings, inherited_environment, load_settings  # noqa: E402

# The one place that reaches into a worker's internals: the offsets it saved with its state.
from stream_processors.state import RedisStateStore, redis_client  # noqa: E402

SETTINGS = load_settings()
"""What the benchmarks run against: Driftline's settings from the environment (Kafka, Redis, and defaults)."""
CLI = [sys.executable, "-m", "stream_processors.cli"]

__all__ = ["CLI", "SETTINGS", "BenchRun", "PrivateRedis", "WorkerProcess", "balanced_models", "bulk_producer",
           "end_offsets", "free_port", "machine", "produce_all", "redis_memory_of", "remove_keys"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine() -> str:
    """Cores, CPU model, memory and load: the machine a set of figures belongs to."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
    except (OSError, StopIteration):
        mem_kb = 0
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"machine: {os.cpu_count()} cores, {cpu}, {mem_kb / 2**20:.1f} GiB memory, load average {load}, "
            f"Python {platform.python_version()}")


def end_offsets(connection: kafka.KafkaConnection, topic: str) -> dict[int, int]:
    """The next offset to be written in each partition of ``topic``."""
    consumer = kafka.consumer(connection, {"group.id": "driftline-bench-probe"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)[1]
                for p in parts}
    finally:
        consumer.close()


def kafka_partition(key: str, partitions: int) -> int:
    """The partition the SDK's producer (librdkafka's murmur2, as Java clients) sends ``key`` to."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def balanced_models(prefix: str, n: int, partitions: int) -> list[str]:
    """``n`` model names spread as evenly as possible over the partitions, so that no worker idles."""
    per = -(-n // partitions)
    taken = {p: 0 for p in range(partitions)}
    names: list[str] = []
    i = 0
    while len(names) < n:
        name = f"{prefix}{i:05d}"
        p = kafka_partition(name, partitions)
        if taken[p] < per:
            taken[p] += 1
            names.append(name)
        i += 1
    return names


def bulk_producer(connection: kafka.KafkaConnection) -> confluent_kafka.Producer:
    """A producer with the SDK's partitioner, for writing many messages at once."""
    return kafka.producer(connection, {"linger.ms": 20, "partitioner": "murmur2_random",
                                       "message.max.bytes": 4_000_000, "queue.buffering.max.messages": 1_000_000,
                                       "queue.buffering.max.kbytes": 1_048_576})


def produce_all(connection: kafka.KafkaConnection, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """Write keyed messages as the SDK does (same partitioner), as fast as Kafka takes them."""
    producer = bulk_producer(connection)
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) != 0:
        raise RuntimeError(f"could not write every message to {topic}")


def remove_keys(client, app_id: str) -> None:
    """Every Redis key naming ``app_id``: what a run left."""
    keys = list(client.scan_iter(match=f"*{app_id}*", count=1000))
    for i in range(0, len(keys), 1000):
        client.unlink(*keys[i:i + 1000])


def redis_memory_of(url: str, match: str) -> tuple[int, int]:
    """(bytes by MEMORY USAGE, keys) of every key matching the glob ``match``."""
    client = redis_client(url)
    keys = list(client.scan_iter(match=match, count=1000))
    total = 0
    for i in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[i:i + 1000]:
            pipe.memory_usage(key, samples=0)
        total += sum(v or 0 for v in pipe.execute())
    return total, len(keys)


class WorkerProcess:
    """One ``driftline worker``: its RSS, its /metrics, and a clean stop."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.metrics_port = int(env["DRIFTLINE_METRICS_PORT"])
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen([*CLI, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def running(self) -> bool:
        return self.proc.poll() is None

    def rss_bytes(self) -> int:
        return self._status_kb("VmRSS:") * 1024

    def peak_rss_bytes(self) -> int:
        """The most memory the worker has held resident so far (VmHWM)."""
        return self._status_kb("VmHWM:") * 1024

    def _status_kb(self, field: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith(field)))

    def scrape(self) -> tuple[float, int]:
        """(seconds, bytes) of one GET of the worker's /metrics."""
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=60) as resp:
            size = len(resp.read())
        return time.perf_counter() - started, size

    def batch_seconds(self) -> tuple[float, float]:
        """(batches, seconds) so far of ``driftline_batch_processing_seconds`` (process, publish, save)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=60) as resp:
            values = {line.split()[0]: float(line.split()[1]) for line in resp.read().decode().splitlines()
                      if line.startswith("driftline_batch_processing_seconds_")}
        return values.get("driftline_batch_processing_seconds_count", 0.0), \
            values.get("driftline_batch_processing_seconds_sum", 0.0)

    def exported_models(self) -> int:
        """How many model versions the worker's /metrics has a ``driftline_model_events`` series for."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=60) as resp:
            return sum(line.startswith(b"driftline_model_events{") for line in resp)

    def wait_for_metrics(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.metrics_port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline or not self.running():
                    raise RuntimeError(f"the worker did not start; its log:\n{self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class BenchRun:
    """Topics, app id and Redis keys of one measurement; ``with BenchRun(...) as run:`` removes them after."""

    def __init__(self, name: str, partitions: int = 4, redis_url: str | None = None,
                 topic_config: dict[str, str] | None = None, settings: Settings = SETTINGS) -> None:
        self.app_id = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        self.partitions = partitions
        self.redis_url = redis_url or settings.redis.url
        self.kafka = settings.kafka
        self.inference_topic = f"{self.app_id}.inference"
        self.label_topic = f"{self.app_id}.labels"
        self.control_topic = f"{self.app_id}.control"
        self.dead_letter_topic = f"{self.app_id}.deadletter"
        self.profile_topic = f"{self.app_id}.profiles"
        self.topic_config = topic_config or {}
        self.groups: list[str] = [self.app_id]
        self.workers: list[WorkerProcess] = []
        self.logs = Path(tempfile.mkdtemp(prefix=f"{self.app_id}-"))
        self.settings = settings.replace(
            redis_url=self.redis_url, app_id=self.app_id, inference_topic=self.inference_topic,
            label_topic=self.label_topic, control_topic=self.control_topic, dead_letter_topic=self.dead_letter_topic,
            profile_topic=self.profile_topic, topic_partitions=partitions, log_level="warning",
            metrics_host="127.0.0.1")
        self._store = RedisStateStore(self.redis_url, self.app_id)

    def __enter__(self) -> BenchRun:
        admin = self._admin()
        topics = [NewTopic(t, self.partitions, 1, config=self.topic_config if t == self.inference_topic else {})
                  for t in (self.inference_topic, self.label_topic, self.control_topic, self.dead_letter_topic)]
        for future in admin.create_topics(topics, operation_timeout=30).values():
            future.result()
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers:
            worker.stop()
        admin = self._admin()
        # faust also makes a topic of its own per app (its partition assignor's leader topic)
        topics = [self.inference_topic, self.label_topic, self.control_topic, self.dead_letter_topic,
                  self.profile_topic] + [f"{group}-__assignor-__leader" for group in self.groups]
        existing = set(admin.list_topics(timeout=10).topics)
        for future in admin.delete_topics([t for t in topics if t in existing], operation_timeout=30).values():
            try:
                future.result()
            except confluent_kafka.KafkaException:
                pass
        try:
            for future in admin.delete_consumer_groups(self.groups, request_timeout=30).values():
                future.result()
        except (confluent_kafka.KafkaException, ValueError):
            pass  # a group that never committed does not exist
        try:
            remove_keys(redis_client(self.redis_url), self.app_id)
        except redis.ConnectionError:
            pass  # a private Redis already stopped
        shutil.rmtree(self.logs, ignore_errors=True)

    def _admin(self) -> AdminClient:
        return kafka.admin_client(self.kafka, {"log_level": 4})

    def env(self, **settings: object) -> dict[str, str]:
        """The environment of a Driftline command of this run (its DRIFTLINE_* variables), with ``settings``
        changed by key (``keep_predictions=False``) and /metrics on a free port."""
        return self.settings.replace(metrics_port=free_port(), **settings).to_env()

    def start_worker(self, **settings: object) -> WorkerProcess:
        worker = WorkerProcess(self.env(**settings), self.logs / f"worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args], env=self.env(), capture_output=True, text=True, timeout=timeout,
                              cwd=REPO)

    def fill(self, messages: list[tuple[bytes, bytes]]) -> None:
        produce_all(self.kafka, self.inference_topic, messages)

    def applied(self) -> int:
        """Messages of the inference topic whose state the workers have saved."""
        saved = self._store.offsets([(self.inference_topic, p) for p in range(self.partitions)])
        return sum(o + 1 for o in saved.values())

    def drain_rate(self, messages: int, events_per_message: float, timeout: float) -> float:
        """Events/s from the first saved batch to the last of ``messages`` (the workers were just started)."""
        deadline = time.monotonic() + timeout
        while (first := self.applied()) == 0:
            self._check(deadline, f"no worker saved any state within {timeout:.0f}s")
            time.sleep(0.005)
        if first >= messages:
            raise RuntimeError(f"all {messages} messages were saved in the first batch, so no rate can be timed; "
                               "give the run more events")
        started = time.monotonic()
        while (done := self.applied()) < messages:
            self._check(deadline, f"the workers applied {done}/{messages} messages in {timeout:.0f}s")
            time.sleep(0.005)
        return (messages - first) * events_per_message / (time.monotonic() - started)

    def wait_applied(self, messages: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (done := self.applied()) < messages:
            self._check(deadline, f"the workers applied {done}/{messages} messages in {timeout:.0f}s")
            time.sleep(0.02)

    def _check(self, deadline: float, what: str) -> None:
        for worker in self.workers:
            if not worker.running():
                raise RuntimeError(f"a worker exited with status {worker.proc.returncode}:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(what)

    def group_members(self) -> int:
        """Members of the workers' consumer group holding partitions, once the group is stable (else 0)."""
        admin = self._admin()
        try:
            group = admin.describe_consumer_groups([self.app_id], request_timeout=10)[self.app_id].result()
        except confluent_kafka.KafkaException:
            return 0
        if group.state != confluent_kafka.ConsumerGroupState.STABLE:
            return 0
        return sum(1 for m in group.members if m.assignment and m.assignment.topic_partitions)


class PrivateRedis:
    """A Redis of one benchmark's own, started and stopped with deploy/stack.sh, so its memory is the run's."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="driftline-bench-redis-"))
        port = free_port()
        self.url = f"redis://127.0.0.1:{port}/0"
        self._env = {**inherited_environment(), "DRIFTLINE_STACK_DIR": str(self.directory),
                     "DRIFTLINE_REDIS_URL": self.url}

    def _stack(self, *args: str) -> None:
        done = subprocess.run(["bash", str(REPO / "deploy" / "stack.sh"), *args], env=self._env,
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"deploy/stack.sh {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def __enter__(self) -> PrivateRedis:
        self._stack("up", "redis")
        return self

    def __exit__(self, *exc) -> None:
        self._stack("down", "redis")
        shutil.rmtree(self.directory, ignore_errors=True)

    def used_memory(self) -> int:
        return int(redis_client(self.url).info("memory")["used_memory"])
