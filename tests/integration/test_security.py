"""Driftline over SASL_SSL Kafka and a Redis ACL user (the secure mode of deploy/stack.sh), through the CLI.

The whole flow works on the settings ``deploy/stack.sh`` prints, with signed
alerts and triggers; nothing any command prints, logs, publishes or exports
holds a secret; every refused login (wrong password, plaintext at the TLS
listener, wrong Redis password) is one line and a non-zero exit in seconds.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import confluent_kafka
import orjson
import pytest

from producers.example_data import drifting_credit_data
from stream_processors.config import Settings, load_settings
from stream_processors.signing import Signer

from .conftest import WorkerProcess, free_port, read_topic, wait_until_applied
from .secure_services import secure_kafka, secure_redis, secure_stack, untrusted_ca  # noqa: F401

pytestmark = pytest.mark.integration

FAST_S = 30.0
SIGNING_KEY = "driftline-test-signing-key-" + uuid.uuid4().hex


@pytest.fixture
def secure_env(secure_kafka, secure_redis, tmp_path) -> dict[str, str]:
    """The printed settings of both services, a signing key in a file, and topics and app id of this test's own."""
    key_file = tmp_path / "signing-key"
    key_file.write_text(SIGNING_KEY + "\n")
    key_file.chmod(0o600)
    tag = f"sec-{uuid.uuid4().hex[:10]}"
    return {**secure_kafka.env, **secure_redis.env, "DRIFTLINE_SIGNING_KEY_FILE": str(key_file),
            "DRIFTLINE_APP_ID": tag, "DRIFTLINE_INFERENCE_TOPIC": f"{tag}.inference",
            "DRIFTLINE_LABEL_TOPIC": f"{tag}.labels", "DRIFTLINE_CONTROL_TOPIC": f"{tag}.control",
            "DRIFTLINE_DEAD_LETTER_TOPIC": f"{tag}.deadletter", "DRIFTLINE_PROFILE_TOPIC": f"{tag}.profiles",
            "DRIFTLINE_SESSION_TIMEOUT_S": "3", "DRIFTLINE_METRICS_PORT": "0"}


def _settings(env: dict[str, str]) -> Settings:
    return load_settings(environ=env)


def _environment(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without its DRIFTLINE_* variables (the plain stack's), plus ``env``."""
    import os

    return {**{k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}, **env}


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream_processors.cli", *args], env=_environment(env),
                          capture_output=True, text=True, timeout=timeout)


def _timed_cli(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = _cli(env, *args, timeout=FAST_S + 30)
    return result, time.monotonic() - started


def _worker(env: dict[str, str], log: Path) -> WorkerProcess:
    worker = WorkerProcess(_settings(env), log)
    with open(log, "ab") as out:
        worker.proc = subprocess.Popen([sys.executable, "-m", "stream_processors.cli", "worker"],
                                       env=_environment(env), stdout=out, stderr=subprocess.STDOUT)
    return worker


def _produce(settings: Settings, topic: str, key: bytes | None, value: bytes) -> None:
    producer = confluent_kafka.Producer({**settings.kafka.client_config(), "partitioner": "murmur2_random"})
    producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def _one_line_error(result: subprocess.CompletedProcess, took: float, *expected: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode not in (0, None), result
    assert took < FAST_S, f"took {took:.1f}s"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert len(lines) == 1 and lines[0].startswith("driftline: error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def _assert_no_secret(texts: dict[str, str | bytes], secrets: list[str]) -> None:
    assert len(secrets) >= 4 and all(len(s) >= 16 for s in secrets)
    for where, text in texts.items():
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for secret in secrets:
            assert secret not in text, f"a secret appears in {where}"


def test_the_whole_flow_over_sasl_ssl_and_a_redis_acl_user_prints_no_secret(secure_env, secure_kafka,
                                                                            secure_redis, tmp_path):
    env = {**secure_env, "DRIFTLINE_METRICS_PORT": str(free_port())}
    settings = _settings(env)
    assert settings.kafka.security_protocol == "SASL_SSL" and settings.redis.password_file
    frame = drifting_credit_data(n=6000, shift_at=3000, shifted_feature="income", seed=5)
    data, reference = tmp_path / "credit.csv", tmp_path / "reference.csv"
    frame.to_csv(data, index=False)
    frame.iloc[:3000].to_csv(reference, index=False)
    printed: dict[str, str | bytes] = {}

    worker = _worker(env, tmp_path / "worker.log")
    try:
        for name, args in (("profile", ("profile", "--model", "credit", "--model-version", "1", "--data",
                                        str(reference))),
                           ("replay", ("replay", "--model", "credit", "--model-version", "1", "--data", str(data),
                                       "--json"))):
            result = _cli(env, *args)
            printed[f"{name} stdout"], printed[f"{name} stderr"] = result.stdout, result.stderr
            assert result.returncode == 0, result.stderr
        assert orjson.loads(printed["replay stdout"])["events"] == 6000
        _produce(settings, settings.inference_topic, b"credit", b"{not json")  # one dead letter
        wait_until_applied(settings, worker)
        counted = b'driftline_events_processed_total{model="credit",model_version="1"} 6000.0'
        deadline = time.monotonic() + 20  # the metrics follow the commit that wait_until_applied sees
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{env['DRIFTLINE_METRICS_PORT']}/metrics", timeout=10) as r:
                printed["/metrics"] = r.read()
            if counted in printed["/metrics"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert counted in printed["/metrics"]
    finally:
        worker.kill(15)
    printed["worker log"] = worker.log()

    alerts = _cli(env, "alerts", "--json", "--model", "credit")
    printed["alerts --json"], printed["alerts stderr"] = alerts.stdout, alerts.stderr
    assert alerts.returncode == 0, alerts.stderr
    found = [orjson.loads(line) for line in alerts.stdout.splitlines()]
    assert any(a["feature"] == "income" for a in found), found
    assert {a["verification"] for a in found} == {"verified"}
    table = _cli(env, "alerts", "--model", "credit")
    printed["alerts"] = table.stdout + table.stderr
    assert table.returncode == 0 and table.stdout.count(" verified ") == len(found)
    # read without the key, the same alerts are signed but cannot be checked
    unkeyed = _cli({k: v for k, v in env.items() if k != "DRIFTLINE_SIGNING_KEY_FILE"}, "alerts", "--json")
    assert {orjson.loads(line)["verification"] for line in unkeyed.stdout.splitlines()} == {"no_key"}

    status = _cli(env, "status", "--model", "credit", "--json")
    printed["status --json"], printed["status stderr"] = status.stdout, status.stderr
    assert status.returncode == 0, status.stderr
    assert orjson.loads(status.stdout)["events"] == 6000
    for command in ("worker", "alerts", "triggers", "status", "replay", "profile"):
        printed[f"{command} --help"] = _cli(env, command, "--help").stdout

    # a retrain trigger as the worker signs it runs the command; the trigger consumer speaks SASL_SSL too
    signed = Signer(SIGNING_KEY.encode()).sign({"id": "t-flow", "type": "retrain", "model": "credit",
                                                "model_version": "1"})
    _produce(settings, settings.control_topic, b"credit", orjson.dumps(signed))
    ran = tmp_path / "ran"
    triggers = _cli(env, "triggers", "--exec", f'echo "$DRIFTLINE_TRIGGER_ID" >> {ran}', "--stop-after", "15")
    printed["triggers stdout"], printed["triggers stderr"] = triggers.stdout, triggers.stderr
    assert triggers.returncode == 0, triggers.stderr
    assert ran.read_text().split() == ["t-flow"]

    for topic in (settings.control_topic, settings.dead_letter_topic, f"{settings.control_topic}.parked"):
        printed[topic] = b"\n".join(read_topic(settings, topic, raw=True))
    assert printed[settings.dead_letter_topic], "the malformed message was dead-lettered"
    _assert_no_secret(printed, [*secure_kafka.secrets(), *secure_redis.secrets(), SIGNING_KEY])


def test_a_forged_trigger_is_parked_and_a_signed_one_runs(secure_env, tmp_path):
    settings = _settings(secure_env)
    signer = Signer(SIGNING_KEY.encode())
    other = Signer(b"another-key-of-sufficient-length")
    trigger = {"type": "retrain", "model": "credit", "model_version": "1"}
    records = [{**trigger, "id": "forged-unsigned"},
               {**signer.sign({**trigger, "id": "tampered"}), "model_version": "2"},
               other.sign({**trigger, "id": "other-key"}),
               signer.sign({**trigger, "id": "genuine"})]
    for record in records:
        _produce(settings, settings.control_topic, b"credit", orjson.dumps(record))
    ran = tmp_path / "ran"
    result = _cli(secure_env, "triggers", "--exec", f'echo "$DRIFTLINE_TRIGGER_ID" >> {ran}', "--stop-after", "15")
    assert result.returncode == 0, result.stderr
    assert ran.read_text().split() == ["genuine"]
    assert "1 unsigned, 2 with a bad signature" in result.stdout
    assert "not authenticated" not in result.stdout
    parked = read_topic(settings, f"{settings.control_topic}.parked")
    assert sorted((p["trigger"]["id"], p["reason"]) for p in parked) == [
        ("forged-unsigned", "unsigned"), ("other-key", "bad_signature"), ("tampered", "bad_signature")]

    # without a key, triggers run as before, after a warning that they are not authenticated
    unkeyed = {k: v for k, v in secure_env.items() if k != "DRIFTLINE_SIGNING_KEY_FILE"}
    result = _cli(unkeyed, "triggers", "--exec", f'echo "$DRIFTLINE_TRIGGER_ID" >> {ran}', "--group", "g2",
                  "--stop-after", "15")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("triggers: warning: no signing key")
    assert sorted(ran.read_text().split()) == sorted(["genuine", "genuine", "forged-unsigned", "tampered",
                                                      "other-key"])


def test_a_wrong_kafka_password_fails_fast_with_one_line(secure_env, secure_kafka, tmp_path):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password-at-all\n")
    env = {**secure_env, "DRIFTLINE_KAFKA_SASL_PASSWORD_FILE": str(wrong)}
    for args in (("worker",), ("alerts",), ("triggers", "--exec", "true", "--stop-after", "60")):
        result, took = _timed_cli(env, *args)
        line = _one_line_error(result, took, "Kafka refused the credentials", "as driftline")
        _assert_no_secret({args[0]: line}, [*secure_kafka.secrets(), "not-the-password-at-all", SIGNING_KEY])


def test_a_wrong_redis_password_fails_fast_with_one_line(secure_env, secure_redis, tmp_path):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password-at-all\n")
    env = {**secure_env, "DRIFTLINE_REDIS_PASSWORD_FILE": str(wrong)}
    for args in (("worker",), ("status", "--model", "m"), ("triggers", "--exec", "true", "--stop-after", "60")):
        result, took = _timed_cli(env, *args)
        line = _one_line_error(result, took, "Redis at redis://driftline@", "refused the credentials")
        _assert_no_secret({args[0]: line}, [*secure_redis.secrets(), "not-the-password-at-all", SIGNING_KEY])
    # the password in the URL instead: masked wherever the URL is shown
    url_env = {**secure_env, "DRIFTLINE_REDIS_URL": secure_env["DRIFTLINE_REDIS_URL"].replace(
        "driftline@", "driftline:not-the-password-at-all@"), "DRIFTLINE_REDIS_PASSWORD_FILE": ""}
    result, took = _timed_cli(url_env, "status", "--model", "m")
    line = _one_line_error(result, took, "redis://driftline:***@")
    assert "not-the-password-at-all" not in line


def test_a_plaintext_client_or_an_untrusted_ca_is_refused_fast(secure_env, tmp_path):
    plaintext = {**{k: v for k, v in secure_env.items() if not k.startswith("DRIFTLINE_KAFKA_S")},
                 "DRIFTLINE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    for args in (("worker",), ("alerts",)):
        result, took = _timed_cli(plaintext, *args)
        _one_line_error(result, took, "closed every connection", "DRIFTLINE_KAFKA_SECURITY_PROTOCOL")
    untrusted = {**secure_env, "DRIFTLINE_KAFKA_SSL_CAFILE": str(untrusted_ca(tmp_path))}
    result, took = _timed_cli(untrusted, "replay", "--model", "m", "--model-version", "1", "--labels",
                              str(_labels(tmp_path)))
    _one_line_error(result, took, "TLS handshake with Kafka failed", "certificate verify failed")


def _labels(directory: Path) -> Path:
    path = directory / "labels.csv"
    path.write_text("event_id,label\ne1,1\n")
    return path


def test_redis_over_tls_with_a_ca_file_setting(secure_env, secure_redis):
    url = secure_redis.tls_env["DRIFTLINE_REDIS_URL"].split("?", 1)[0]
    env = {**secure_env, "DRIFTLINE_REDIS_URL": url, "DRIFTLINE_REDIS_SSL_CAFILE": str(secure_redis.ca_file)}
    result = _cli(env, "status", "--model", "nobody")
    assert result.returncode == 1 and "unknown model 'nobody'" in result.stderr, result.stderr
    without_ca = _cli({**env, "DRIFTLINE_REDIS_SSL_CAFILE": ""}, "status", "--model", "nobody")
    assert without_ca.returncode == 1 and "certificate verify failed" in without_ca.stderr, without_ca.stderr
