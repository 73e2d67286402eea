"""deploy/stack.sh without starting anything: it parses, says how it is used, and refuses bad input
before it touches a service. (Its modes run for real in tests/integration/stack_modes/.)"""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

STACK = Path(__file__).resolve().parents[2] / "deploy" / "stack.sh"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(STACK), *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(STACK)], capture_output=True).returncode == 0


def test_usage_names_every_action_service_and_mode():
    done = _run()
    assert done.returncode == 2
    for word in ("up [kafka|redis|redis-cluster]", "down", "status", "DRIFTLINE_STACK_SECURE=1",
                 "DRIFTLINE_REDIS_CLUSTER_NODES", "DRIFTLINE_STACK_REDIS_CLUSTER_REPLICAS"):
        assert word in done.stdout


def test_an_unknown_service_is_refused(tmp_path):
    done = _run("up", "zookeeper", DRIFTLINE_STACK_DIR=str(tmp_path))
    assert done.returncode == 1 and "unknown service 'zookeeper'" in done.stderr
    assert not any(tmp_path.iterdir())


def test_a_given_password_the_configuration_cannot_carry_is_refused_unprinted(tmp_path):
    if not (shutil.which("redis-server") and shutil.which("openssl")):
        pytest.skip("redis-server and openssl are installed by 'make stack-up'")
    port = _free_port()
    done = _run("up", "redis", DRIFTLINE_STACK_DIR=str(tmp_path), DRIFTLINE_STACK_SECURE="1",
                DRIFTLINE_REDIS_URL=f"redis://app:pass word&x@127.0.0.1:{port}/0")
    assert done.returncode == 1
    assert "may hold only letters, digits" in done.stderr
    assert "pass word" not in done.stdout + done.stderr
    assert not (tmp_path / "redis-secure" / "redis.pid").exists()
    assert not (tmp_path / "secure" / "redis-password").exists()
