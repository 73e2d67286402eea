"""A Kafka, Redis or Redis Cluster of a test session's own, started and stopped with deploy/stack.sh.

Each stack lives in a directory of its own (DRIFTLINE_STACK_DIR) on free ports, so the shared
services started by ``make stack-up`` are never touched; ``stop()`` runs ``deploy/stack.sh down``
in that directory only.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

STACK = Path(__file__).resolve().parents[2] / "deploy" / "stack.sh"
CLUSTER_BUS_OFFSET = 10000  # Redis Cluster nodes also listen on port + 10000


def _free(port: int) -> bool:
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def free_ports(count: int, cluster_bus: bool = False) -> int:
    """The first of ``count`` consecutive free ports on loopback (and their cluster bus ports, if asked)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = sock.getsockname()[1]
        wanted = list(range(first, first + count))
        if cluster_bus:
            wanted += [p + CLUSTER_BUS_OFFSET for p in wanted]
        if max(wanted) < 65536 and all(_free(p) for p in wanted):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found on 127.0.0.1")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as deploy/stack.sh writes the settings of a secure service."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


class OwnStack:
    """deploy/stack.sh run with a directory and settings of its own; ``outputs`` keeps all it printed."""

    def __init__(self, directory: Path, **settings: str) -> None:
        self.directory = directory
        self.env = {**os.environ, "DRIFTLINE_STACK_DIR": str(directory), **settings}
        self.outputs: list[str] = []

    def run(self, action: str, service: str, timeout: float = 180) -> str:
        done = subprocess.run(["bash", str(STACK), action, service], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        self.outputs.append(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"deploy/stack.sh {action} {service} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def stop(self, service: str = "all") -> None:
        self.run("down", service)
