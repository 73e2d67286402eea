"""A running ``driftline ingest``, plain HTTP calls to it, and a Kafka broker of a test's own."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson

from stream_processors.config import Settings

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


@dataclass
class Reply:
    status: int
    body: dict
    headers: dict


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 30) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, raw, hdrs = exc.code, exc.read(), dict(exc.headers)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = {"text": raw.decode(errors="replace")}
    return Reply(status, doc, hdrs)


@dataclass
class IngestProcess:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def post_json(self, path: str, doc: object, headers: dict | None = None) -> Reply:
        return http("POST", self.url + path, orjson.dumps(doc), {"Content-Type": "application/json", **(headers or {})})

    def cloudevent(self, ce_id: str, half: str, data: dict, isvc: str, structured: bool = False,
                   path: str = "/", extra: dict | None = None, headers: dict | None = None) -> Reply:
        attrs = {"id": ce_id, "type": REQUEST if half == "request" else RESPONSE, "specversion": "1.0",
                 "source": "http://localhost:9081/", "inferenceservicename": isvc, **(extra or {})}
        if structured:
            return http("POST", self.url + path, orjson.dumps({**attrs, "data": data}),
                        {"Content-Type": "application/cloudevents+json", **(headers or {})})
        return http("POST", self.url + path, orjson.dumps(data),
                    {"Content-Type": "application/json", **{f"ce-{k}": v for k, v in attrs.items()},
                     **(headers or {})})

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
            return resp.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def start_ingest(s: Settings, log_path: Path, *args: str, ready: bool = True, timeout: float = 60,
                 scheme: str = "http") -> IngestProcess:
    port = free_port()
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "stream_processors.cli", "ingest", "--port", str(port), *args],
                            env=s.to_env(), stdout=log, stderr=subprocess.STDOUT)
    ingest = IngestProcess(f"{scheme}://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"driftline ingest exited with {proc.returncode}:\n{ingest.log()[-3000:]}")
        if scheme == "https":  # the test checks the certificate itself; here only: is the port open
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return ingest
            except OSError:
                pass
        else:
            try:
                if http("GET", ingest.url + ("/readyz" if ready else "/healthz"), timeout=5).status == 200:
                    return ingest
            except OSError:
                pass
        time.sleep(0.2)
    ingest.stop()
    raise AssertionError(f"driftline ingest was not ready in {timeout}s:\n{ingest.log()[-3000:]}")


class OwnKafka:
    """A single-node KRaft broker on free ports with its data in ``directory``: stop and start it at will.

    Started like deploy/stack.sh starts the shared one, from the broker jars in ~/.cache/driftline.
    """

    def __init__(self, directory: Path) -> None:
        version = next(line.split(">")[1].split("<")[0] for line in (ROOT / "deploy/kafka/pom.xml").read_text()
                       .splitlines() if "<kafka.version>" in line)
        self.classpath = str(Path.home() / ".cache" / "driftline" / f"kafka-{version}" / "libs" / "*")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port, controller = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.config = directory / "server.properties"
        template = (ROOT / "deploy/kafka/server.properties.in").read_text()
        self.config.write_text(template.replace("@KAFKA_HOST@", "127.0.0.1").replace("@KAFKA_PORT@", str(self.port))
                               .replace("@CONTROLLER_PORT@", str(controller))
                               .replace("@DATA_DIR@", str(directory / "data")))
        self.log4j = str(ROOT / "deploy/kafka/log4j2.yaml")
        cluster = subprocess.run(["java", "-cp", self.classpath, "kafka.tools.StorageTool", "random-uuid"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(["java", f"-Dlog4j2.configurationFile={self.log4j}", "-cp", self.classpath,
                        "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(self.config), "--standalone"],
                       capture_output=True, text=True, check=True)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        log = open(self.directory / "kafka.log", "ab")
        self.proc = subprocess.Popen(["java", "-Xms128m", "-Xmx384m", "-Djava.awt.headless=true",
                                      f"-Dlog4j2.configurationFile={self.log4j}", "-cp", self.classpath,
                                      "kafka.Kafka", str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        from producers.topics import KafkaUnreachable, ensure_topics

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"own Kafka exited: {(self.directory / 'kafka.log').read_text()[-2000:]}")
            try:
                ensure_topics(self.bootstrap, [], 1, timeout_s=3)
                return
            except KafkaUnreachable:
                time.sleep(0.5)
        raise AssertionError(f"own Kafka did not start in {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
