"""``driftline triggers --exec`` on real Kafka and Redis: timeouts, parking, attempts and SIGTERM."""

import signal
import subprocess
import sys
import time

import confluent_kafka
import orjson
import pytest

from stream_processors.cli.triggers import parked_topic
from tests.processes import gone

from .conftest import read_topic, run_cli

pytestmark = pytest.mark.integration


def _trigger(name: str) -> dict:
    return {"id": name, "type": "retrain", "model": "credit", "model_version": "1", "feature": None,
            "detector": "retrain_policy", "severity": "critical", "created_at": 0.0,
            "evidence": {"last_event_id": "e1", "events_seen": 1}}


def _send(settings, *records) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka.bootstrap,
                                         "partitioner": "murmur2_random"})
    for record in records:
        value = record if record is None or isinstance(record, bytes) else orjson.dumps(record)
        producer.produce(settings.control_topic, key=b"credit", value=value)
    assert producer.flush(30) == 0


class Triggers:
    """``driftline triggers`` as a process of its own, its output in a file."""

    def __init__(self, settings, tmp_path, command: str, *flags: str, name: str = "triggers") -> None:
        self.log = tmp_path / f"{name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream_processors.cli", "triggers", "--exec", command,
                 "--group", settings.app_id + "-retrain", *flags],
                env=settings.to_env(), stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, condition, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"timed out waiting:\n{self.output()}")
            time.sleep(0.1)

    def terminate(self) -> float:
        """SIGTERM; returns the seconds it took to exit (0 expected as exit code)."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.output()
        return time.monotonic() - sent


def _lines(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_a_hung_command_is_killed_with_its_children_at_the_timeout_and_the_next_trigger_runs(settings, tmp_path):
    _send(settings, _trigger("t-hang"), _trigger("t-next"))
    pidfile, out = tmp_path / "child.pid", tmp_path / "ran.txt"
    command = (f'if [ "$DRIFTLINE_TRIGGER_ID" = t-hang ]; then sleep 300 & echo $! > {pidfile}; wait; fi; '
               f'echo "$DRIFTLINE_TRIGGER_ID" >> {out}')
    started = time.monotonic()
    run = Triggers(settings, tmp_path, command, "--timeout", "2", "--max-attempts", "1")
    run.wait_for(lambda: _lines(out) == ["t-next"])
    assert time.monotonic() - started < 40
    run.terminate()
    child = int(pidfile.read_text())
    assert gone(child), "the command's child outlived the timeout"
    [parked] = read_topic(settings, parked_topic(settings.control_topic))
    assert parked["reason"] == "max_attempts" and parked["trigger"] == _trigger("t-hang")
    [attempt] = parked["attempts"]
    assert attempt["outcome"] == "timeout" and attempt["exit_code"] in (-15, -9) and attempt["seconds"] >= 2
    assert parked["exit_codes"] == [attempt["exit_code"]]
    assert ("ran the command for 1 trigger(s); parked 1 (0 malformed, 1 after 1 failed attempt(s), 0 unsigned, "
            "0 with a bad signature)") in run.output()
    assert run.output().startswith("triggers: warning: no signing key")  # these triggers are not authenticated


def test_malformed_records_are_parked_and_the_next_good_trigger_runs(settings, tmp_path):
    no_id = {k: v for k, v in _trigger("x").items() if k != "id"}
    bad = [b"\xff\xfe not json", b"[1, 2]", None, orjson.dumps(no_id),
           orjson.dumps({**_trigger("t-bad-model"), "model": 3}), orjson.dumps({**_trigger("t-x"), "type": None})]
    _send(settings, *bad, {**_trigger("t-alert"), "type": "drift"}, _trigger("t-good"))
    out = tmp_path / "ran.txt"
    run = Triggers(settings, tmp_path, f'echo "$DRIFTLINE_TRIGGER_ID" >> {out}')
    run.wait_for(lambda: _lines(out) == ["t-good"])
    run.terminate()
    parked = read_topic(settings, parked_topic(settings.control_topic))
    assert [p["reason"] for p in parked] == ["malformed"] * 6
    assert [p["source"]["offset"] for p in parked] == list(range(6))
    assert parked[0]["raw"] == b"\xff\xfe not json".decode("utf-8", errors="replace") and parked[1]["raw"] == "[1, 2]"
    assert "empty record" in parked[2]["detail"] and "'id' must be" in parked[3]["detail"]
    assert "'model' must be" in parked[4]["detail"] and "'type' must be" in parked[5]["detail"]
    assert run.output().count("parked malformed record") == 6  # one line each
    assert "parked 6 (6 malformed, 0 after" in run.output()
    # a restart reads nothing again: all was committed. It runs the trigger sent after, and only that one.
    _send(settings, _trigger("t-after"))
    again = Triggers(settings, tmp_path, f'echo "$DRIFTLINE_TRIGGER_ID" >> {out}', name="again")
    again.wait_for(lambda: len(_lines(out)) >= 2)
    again.terminate()
    assert _lines(out) == ["t-good", "t-after"]
    assert len(read_topic(settings, parked_topic(settings.control_topic))) == 6


def test_a_command_that_always_fails_is_parked_after_max_attempts_and_can_be_replayed(settings, tmp_path):
    _send(settings, _trigger("t-bad"), _trigger("t-next"))
    out = tmp_path / "ran.txt"
    command = f'if [ "$DRIFTLINE_TRIGGER_ID" = t-bad ]; then exit 7; fi; echo "$DRIFTLINE_TRIGGER_ID" >> {out}'
    run = Triggers(settings, tmp_path, command, "--max-attempts", "2")
    run.wait_for(lambda: _lines(out) == ["t-next"])
    run.terminate()
    [parked] = read_topic(settings, parked_topic(settings.control_topic))
    assert parked["reason"] == "max_attempts" and parked["exit_codes"] == [7, 7]
    assert [a["outcome"] for a in parked["attempts"]] == ["failed", "failed"]
    assert parked["trigger"] == _trigger("t-bad")
    assert "exited 7 (attempt 1 of 2); retrying in 1s" in run.output()
    assert "exited 7 (attempt 2 of 2); parked in" in run.output()

    missing = run_cli(settings, "triggers", "--replay-parked", "t-unknown")
    assert missing.returncode == 1 and missing.stderr.startswith("driftline: error: no parked trigger with id ")
    replayed = run_cli(settings, "triggers", "--replay-parked", "t-bad")  # once its cause is fixed
    assert replayed.returncode == 0, replayed.stderr
    assert read_topic(settings, settings.control_topic)[-1] == _trigger("t-bad")
    fixed = Triggers(settings, tmp_path, f'echo "$DRIFTLINE_TRIGGER_ID" >> {out}', name="replay")
    fixed.wait_for(lambda: _lines(out) == ["t-next", "t-bad"])
    fixed.terminate()


def test_sigterm_while_waiting_to_retry_exits_promptly_and_the_trigger_runs_after_restart(settings, tmp_path):
    _send(settings, _trigger("t-1"))
    out = tmp_path / "ran.txt"
    run = Triggers(settings, tmp_path, "exit 5", "--max-attempts", "10")
    run.wait_for(lambda: "(attempt 3 of 10); retrying in 5s" in run.output())
    assert run.terminate() < 4  # well before the 5 s wait ends
    assert "while trigger t-1 (model credit v1) waited to retry; the trigger is not marked done" in run.output()
    assert "(attempt 4 of 10)" not in run.output()
    again = Triggers(settings, tmp_path, f'echo "$DRIFTLINE_TRIGGER_ID" >> {out}', name="again")
    again.wait_for(lambda: _lines(out) == ["t-1"])
    again.terminate()


def test_sigterm_while_the_command_runs_kills_it_and_the_trigger_runs_after_restart(settings, tmp_path):
    _send(settings, _trigger("t-1"))
    pidfile, out = tmp_path / "child.pid", tmp_path / "ran.txt"
    run = Triggers(settings, tmp_path, f"sleep 300 & echo $! > {pidfile}; wait")
    run.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    assert run.terminate() < 15  # within the kill grace
    assert gone(int(pidfile.read_text()))
    assert "while the command ran for trigger t-1" in run.output()
    again = Triggers(settings, tmp_path, f'echo "$DRIFTLINE_TRIGGER_ID" >> {out}', name="again")
    again.wait_for(lambda: _lines(out) == ["t-1"])
    again.terminate()
