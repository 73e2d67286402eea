"""Trigger validation and the command runner of ``driftline triggers --exec`` (no broker needed)."""

import os

import orjson
import pytest

from stream_processors.cli import main
from stream_processors.cli.triggers import parked_topic, run_command, validate_trigger
from tests.processes import gone

GOOD = {"id": "t-1", "type": "retrain", "model": "credit", "model_version": "1", "evidence": {}}


def test_a_valid_trigger_and_other_alerts_pass():
    assert validate_trigger(orjson.dumps(GOOD)) == GOOD
    drift = {"type": "drift", "model": "credit"}  # alerts are not checked here: they are skipped
    assert validate_trigger(orjson.dumps(drift)) == drift


@pytest.mark.parametrize("raw, reason", [
    (None, "empty record"),
    (b"\xff\xfe", "not JSON"),
    (b'{"id": "t-1", ', "not JSON"),
    (b"[1, 2]", "a JSON list, expected an object"),
    (b'"retrain"', "a JSON str, expected an object"),
    (orjson.dumps({**GOOD, "type": None}), "'type' must be a non-empty string, got nothing"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "type"}), "'type' must be"),
    (orjson.dumps({**GOOD, "type": 3}), "'type' must be a non-empty string, got int"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "id"}), "'id' must be"),
    (orjson.dumps({**GOOD, "id": ""}), "'id' must be a non-empty string of at most 256 characters"),
    (orjson.dumps({**GOOD, "id": "x" * 257}), "'id' must be"),
    (orjson.dumps({**GOOD, "model": ["credit"]}), "'model' must be a non-empty string of at most 256 characters "
                                                  "without NUL, got a list"),
    (orjson.dumps({**GOOD, "model": "cre\x00dit"}), "'model' must be"),
    (orjson.dumps({**GOOD, "model_version": 1}), "'model_version' must be a non-empty string"),
])
def test_malformed_records_say_why(raw, reason):
    result = validate_trigger(raw)
    assert isinstance(result, str) and reason in result


def test_parked_topic_name():
    assert parked_topic("driftline.control") == "driftline.control.parked"


def test_the_command_gets_the_trigger_on_stdin_and_in_its_environment(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "DRIFTLINE_MODEL": "credit scoring; rm -rf /"}
    attempt = run_command(f'cat > {out}; printf "%s" "$DRIFTLINE_MODEL" >> {out}; exit 4', b'{"id": "t"}',
                          env, timeout_s=60)
    assert (attempt.exit_code, attempt.timed_out, attempt.succeeded) == (4, False, False)
    assert out.read_text() == '{"id": "t"}credit scoring; rm -rf /'
    assert run_command("true", b"", env, timeout_s=60).succeeded


def test_a_large_payload_does_not_block_a_command_that_never_reads_stdin():
    attempt = run_command("exit 0", b"x" * 1_000_000, dict(os.environ), timeout_s=60)
    assert attempt.succeeded and not attempt.timed_out


@pytest.mark.parametrize("trap", ["", "trap '' TERM; "])  # a command that ignores SIGTERM gets SIGKILL
def test_a_timeout_kills_the_whole_process_group(tmp_path, trap):
    pidfile = tmp_path / "child.pid"
    command = f"{trap}sleep 300 & echo $! > {pidfile}; wait"
    attempt = run_command(command, b"", dict(os.environ), timeout_s=1.0, grace_s=0.5)
    assert attempt.timed_out and not attempt.succeeded
    assert attempt.exit_code in (-15, -9)
    assert gone(int(pidfile.read_text()))


def test_a_stop_request_kills_the_command_and_returns_none(tmp_path):
    pidfile = tmp_path / "child.pid"
    attempt = run_command(f"sleep 300 & echo $! > {pidfile}; wait", b"", dict(os.environ), timeout_s=None,
                          stop=lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    assert attempt is None
    assert gone(int(pidfile.read_text()))


def test_a_command_that_cannot_start_is_a_failed_attempt():
    attempt = run_command("true", b"", {**os.environ, "BAD": "a\x00b"}, timeout_s=10)
    assert attempt.exit_code is None and not attempt.succeeded and "null" in attempt.error


@pytest.mark.parametrize("flags, message", [
    (["--max-attempts", "0"], "--max-attempts must be at least 1"),
    (["--timeout", "-5"], "--timeout must be 0 (no limit) or a number of seconds"),
])
def test_bad_limits_are_one_line_errors(flags, message, capsys):
    assert main(["triggers", "--exec", "true", *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"driftline: error: {message}, got ") and err.count("\n") == 1


def test_a_model_name_with_a_newline_stays_on_one_log_line():
    from stream_processors.cli.triggers import printable as _printable

    assert _printable("trigger t (model a\nb v1)") == "trigger t (model a\\nb v1)"
    assert _printable("model crédit v1") == "model crédit v1"
