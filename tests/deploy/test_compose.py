"""docker-compose.yml and the local stack agree with the code (the file is parsed, not run)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stream_processors.cli import build_parser
from stream_processors.config import Settings, env_name, setting_keys

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
KNOWN_ENV = {env_name(key) for key in setting_keys()}
COMMANDS = set(build_parser()._subparsers._group_actions[0].choices)


def _driftline_services():
    return {name: svc for name, svc in SERVICES.items() if svc.get("image") == "driftline:local"}


def test_services_present():
    assert {"kafka", "redis", "worker-1", "worker-2", "demo-replay", "ingest"} <= set(SERVICES)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4.")
    assert "broker,controller" in SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert "--appendonly" in SERVICES["redis"]["command"]  # persistence on


def test_driftline_environment_names_are_settings():
    for name, svc in _driftline_services().items():
        env = svc["environment"]
        assert set(env) <= KNOWN_ENV, (name, set(env) - KNOWN_ENV)
        host, port = env["DRIFTLINE_KAFKA_BOOTSTRAP"].split(":")
        assert host in SERVICES and f"PLAINTEXT://{host}:{port}" in SERVICES[host]["environment"][
            "KAFKA_ADVERTISED_LISTENERS"]
        assert env["DRIFTLINE_REDIS_URL"].startswith("redis://redis:6379")


def test_commands_exist():
    for name in ("worker-1", "worker-2"):
        assert SERVICES[name]["command"][0] in COMMANDS
    replay = SERVICES["demo-replay"]["command"][0]
    assert "python -m producers.example_data" in replay
    assert "driftline replay" in replay
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["driftline"]' in dockerfile


def test_published_ports_match_defaults():
    assert "6379:6379" in SERVICES["redis"]["ports"]
    assert int(Settings().redis.url.rsplit(":", 1)[1].split("/")[0]) == 6379


def test_compose_references_resolve():
    """What ``docker compose config`` would refuse, checked on the parsed file: dangling references, bad ports."""
    named_volumes = set(COMPOSE.get("volumes") or {})
    for name, svc in SERVICES.items():
        assert "image" in svc or "build" in svc, name
        depends = svc.get("depends_on") or {}
        assert set(depends) <= set(SERVICES), (name, set(depends) - set(SERVICES))
        for volume in svc.get("volumes") or []:
            source = volume.split(":", 1)[0]
            assert source.startswith((".", "/")) or source in named_volumes, (name, volume)
        for port in svc.get("ports") or []:
            *_host, published, target = str(port).split(":")
            assert published.isdigit() and target.isdigit(), (name, port)
        env = svc.get("environment") or {}
        assert all(isinstance(v, (str, int, float, bool)) for v in env.values()), name


def test_compose_config_is_valid_where_a_docker_client_exists():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no docker compose here; test_compose_references_resolve checked the parsed file")
    result = subprocess.run([docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_prometheus_scrapes_the_workers_at_their_metrics_port():
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
            for job in prom["scrape_configs"]}
    workers = {name: svc for name, svc in SERVICES.items() if svc.get("command") == ["worker"]}
    assert len(workers) == 2
    expected = {f"{name}:{svc['environment']['DRIFTLINE_METRICS_PORT']}" for name, svc in workers.items()}
    assert jobs["driftline-workers"] == expected
    assert jobs["driftline-ingest"] == {f"ingest:{_flag(SERVICES['ingest']['command'], '--port')}"}
    assert int(Settings().metrics_port) == 9464
    assert "./deploy/prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana")


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_ingest_service_listens_where_it_is_published_and_probes_readiness():
    ingest = SERVICES["ingest"]
    command = ingest["command"]
    assert command[0] == "ingest" and command[0] in COMMANDS
    parser = build_parser()
    args = parser.parse_args(command)  # the flags exist and parse
    assert args.ingest_host == "0.0.0.0"  # inside a container loopback would be unreachable
    port = _flag(command, "--port")
    assert f"{port}:{port}" in ingest["ports"]
    assert f"127.0.0.1:{port}/readyz" in " ".join(ingest["healthcheck"]["test"])
    assert ingest["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert Settings().ingest_port == int(port) and Settings().ingest_host == "127.0.0.1"  # safe default outside
