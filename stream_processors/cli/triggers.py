"""``driftline triggers --exec CMD``: the downstream retrain hook, a command run once per retrain trigger.

The consumer has its own group (``--group``, default ``driftline-retrain``)
and starts from the oldest trigger the group has not handled. For each
``retrain`` record it runs ``CMD`` through the shell, in a session of its own,
with the trigger's JSON on stdin and ``DRIFTLINE_TRIGGER_ID``,
``DRIFTLINE_MODEL``, ``DRIFTLINE_MODEL_VERSION`` and
``DRIFTLINE_TRIGGER_ATTEMPT`` in its environment. Triggers are handled in
order, one at a time:

1. A record that is not a valid trigger (not JSON, not an object, ``type``,
   ``id``, ``model`` or ``model_version`` missing or not text) is parked with
   reason ``malformed`` and skipped.
2. With a signing key set (``DRIFTLINE_SIGNING_KEY`` or ``_FILE``), a trigger
   whose signature is missing or does not verify is parked with reason
   ``unsigned`` or ``bad_signature`` and never run (without a key, a warning
   says at start that triggers are not authenticated).
3. ``CMD`` exits 0: the trigger is marked done (a Redis set of trigger ids, ``state.keys``, so
   a restart between the command and the commit does not run it again), then
   its offset is committed.
4. ``CMD`` fails, or runs past ``--timeout`` (its whole process group gets
   SIGTERM, then SIGKILL after ``KILL_GRACE_S``): it is retried with back-off;
   after ``--max-attempts`` attempts the trigger is parked with reason
   ``max_attempts`` and the attempts' exit codes, and the next trigger runs.
5. SIGTERM or Ctrl-C (or ``--stop-after``) while ``CMD`` runs or a retry
   waits: the command's group is killed, nothing is marked done or
   committed, and the trigger runs again on restart.

Parked records go to ``<control topic>.parked``, one JSON object each, for a
person to inspect and replay (the original trigger is in ``trigger``);
``replay_parked`` (``driftline triggers --replay-parked ID``) writes one back.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

import confluent_kafka
import orjson

from producers import kafka
from producers.topics import ensure_topics
from stream_processors.display import printable
from stream_processors.cli.flags import ENV_HELP, connection_flags
from stream_processors.state.trigger_ledger import TriggerLedger
from stream_processors.errors import ConfigError, DriftlineError, ServiceUnavailable
from stream_processors.config import Settings, inherited_environment
from stream_processors.signing import verify

__all__ = ["DEFAULT_MAX_ATTEMPTS", "DEFAULT_TIMEOUT_S", "KILL_GRACE_S", "Attempt", "add_parser", "parked_topic",
           "replay_parked", "run", "run_command", "run_triggers", "validate_trigger"]

DEFAULT_TIMEOUT_S = 3 * 3600.0
"""A retrain that runs longer is killed: long enough for a slow retrain, short enough that a hung one
holds the queue for hours, not forever (with the default attempts, at most about nine hours)."""
DEFAULT_MAX_ATTEMPTS = 3
KILL_GRACE_S = 10.0
"""Between SIGTERM and SIGKILL to the command's process group."""
MAX_FIELD_LENGTH = 256
_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
_TICK_S = 0.2
_RAW_EXCERPT = 65536


def _say(text: str) -> None:
    print(f"triggers: {text}", flush=True)


def parked_topic(control_topic: str) -> str:
    return f"{control_topic}.parked"


def validate_trigger(raw: bytes | None) -> dict | str:
    """The record as a dict, or why it is malformed. Records of other types (alerts) come back as they are."""
    if raw is None:
        return "empty record (null value)"
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(doc, dict):
        return f"a JSON {type(doc).__name__}, expected an object"
    kind = doc.get("type")
    if not isinstance(kind, str) or not kind:
        return f"'type' must be a non-empty string, got {_describe(kind)}"
    if kind != "retrain":
        return doc
    for name in ("id", "model", "model_version"):
        value = doc.get(name)
        if not isinstance(value, str) or not value or len(value) > MAX_FIELD_LENGTH or "\x00" in value:
            return (f"'{name}' must be a non-empty string of at most {MAX_FIELD_LENGTH} characters without NUL, "
                    f"got {_describe(value)}")
    return doc


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"a string of {len(value)} characters" if value else "an empty string"
    return {dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Attempt:
    """One run of the command: its exit code (negative: killed by that signal; None: did not start)."""

    exit_code: int | None
    seconds: float
    timed_out: bool = False
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def as_record(self) -> dict:
        outcome = "ok" if self.succeeded else "timeout" if self.timed_out else "failed"
        return {"outcome": outcome, "exit_code": self.exit_code, "seconds": round(self.seconds, 3),
                "error": self.error}

    def describe(self) -> str:
        if self.timed_out:
            return f"ran past the timeout after {self.seconds:.1f}s and was killed (exit {self.exit_code})"
        if self.exit_code is None:
            return f"could not start: {self.error}"
        return f"exited {self.exit_code}"


class _Stop:
    """Set by SIGTERM/SIGINT (a plain flag: safe in a signal handler) or by reaching the deadline."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.signal: str | None = None

    def __call__(self) -> bool:
        return self.signal is not None or (self.deadline is not None and time.monotonic() >= self.deadline)

    def reason(self) -> str:
        return f"{self.signal} received" if self.signal else "--stop-after reached"

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if asked to stop meanwhile."""
        end = time.monotonic() + seconds
        while not self():
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_TICK_S, left))
        return True


def run_command(command: str, payload: bytes, env: dict[str, str], timeout_s: float | None,
                stop=lambda: False, grace_s: float = KILL_GRACE_S) -> Attempt | None:
    """Run ``command`` once with ``payload`` on stdin; None if ``stop()`` became true (the command was killed).

    The command starts a session of its own, so a timeout or a stop kills what
    it started too: its process group gets SIGTERM, then SIGKILL after ``grace_s``.
    """
    started = time.monotonic()
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env, start_new_session=True)
    except (OSError, ValueError) as exc:
        return Attempt(None, 0.0, error=str(exc))
    threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True).start()  # never blocks on a full pipe
    while True:
        try:
            code = proc.wait(timeout=_TICK_S)
            return Attempt(code, time.monotonic() - started)
        except subprocess.TimeoutExpired:
            pass
        if stop():
            _kill_group(proc, grace_s)
            return None
        if timeout_s and time.monotonic() - started >= timeout_s:
            _kill_group(proc, grace_s)
            return Attempt(proc.returncode, time.monotonic() - started, timed_out=True)


def _feed(pipe, payload: bytes) -> None:
    try:
        pipe.write(payload)
        pipe.close()
    except OSError:  # the command does not read stdin, or has exited
        pass


def _kill_group(proc: subprocess.Popen, grace_s: float) -> None:
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + wait_s
        while time.monotonic() < end and _group_alive(proc):
            time.sleep(0.05)
    proc.wait()


def _group_alive(proc: subprocess.Popen) -> bool:
    proc.poll()  # reap the shell, so that a group of zombies only does not look alive
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


_WITHHELD = ("DRIFTLINE_SIGNING_KEY", "DRIFTLINE_SIGNING_KEY_FILE", "DRIFTLINE_KAFKA_SASL_PASSWORD",
             "DRIFTLINE_KAFKA_SASL_PASSWORD_FILE", "DRIFTLINE_REDIS_URL", "DRIFTLINE_REDIS_PASSWORD_FILE")


def _command_environment() -> dict[str, str]:
    """What CMD inherits: this process's environment without Driftline's secrets or where they are kept (a retrain
    job has no business signing triggers or logging in as Driftline; it gets its own credentials)."""
    return {k: v for k, v in inherited_environment().items() if k not in _WITHHELD}


def _deliver(producer: confluent_kafka.Producer, topic: str, key: bytes | None, value: bytes) -> str | None:
    """Produce one record and wait for it; what went wrong, or None."""
    errors: list[confluent_kafka.KafkaError] = []
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, _m: err is not None and errors.append(err))
    if producer.flush(30):
        return "Kafka did not answer within 30 s"
    return str(errors[0]) if errors else None


class _TriggerRunner:
    def __init__(self, settings: Settings, command: str, group: str, model: str | None, timeout_s: float | None,
                 max_attempts: int, stop: _Stop) -> None:
        self.settings = settings
        self.command = command
        self.group = group
        self.model = model
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.stop = stop
        self.parked_topic = parked_topic(settings.control_topic)
        self.ran = self.malformed = self.gave_up = self.unsigned = self.bad_signature = 0
        self.key = settings.signing_key_bytes
        self.ledger = TriggerLedger(settings.redis, group, settings.control_topic, settings.triggers_ttl_s)
        self.consumer: confluent_kafka.Consumer | None = None
        self.producer: confluent_kafka.Producer | None = None

    def connect(self) -> None:
        self.ledger.ping()
        ensure_topics(self.settings.kafka, [self.parked_topic], self.settings.topic_partitions, timeout_s=10)
        self.consumer = kafka.consumer(self.settings.kafka, {
            "group.id": self.group,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "socket.connection.setup.timeout.ms": 5000,
            # the consumer does not poll while a command runs; past this it leaves the group, and on
            # rejoining reads from the last commit again, where the done set skips what already ran
            "max.poll.interval.ms": 86_400_000,
        })
        self.producer = kafka.producer(self.settings.kafka, {"enable.idempotence": True})
        self.consumer.subscribe([self.settings.control_topic])

    def run(self) -> None:
        while not self.stop():
            msg = self.consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if not self.handle(msg):
                return

    def handle(self, msg: confluent_kafka.Message) -> bool:
        """Deal with one record; False if asked to stop before it was finished (nothing committed then)."""
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        position = f"{msg.partition()}:{msg.offset()}"
        if self.ledger.is_parked(position):
            self._commit(msg)
            return True
        trigger = validate_trigger(msg.value())
        if isinstance(trigger, str):
            self._park(msg, None, "malformed", trigger, [])
            self.malformed += 1
            _say(f"parked malformed record {where} in {self.parked_topic}: {trigger}")
            self._commit(msg)
            return True
        if trigger["type"] != "retrain" or (self.model and trigger["model"] != self.model):
            self._commit(msg)
            return True
        name = printable(f"trigger {trigger['id']} (model {trigger['model']} v{trigger['model_version']})")
        if self.key is not None:
            verdict = verify(trigger, self.key)
            if verdict != "verified":
                reason = "unsigned" if verdict == "unsigned" else "bad_signature"
                detail = {"unsigned": "the trigger carries no signature",
                          "other_key": "signed with another key"}.get(verdict, "the signature does not match")
                self._park(msg, trigger, reason, detail, [])
                setattr(self, reason, getattr(self, reason) + 1)
                _say(f"{name} refused ({detail}); parked in {self.parked_topic} with reason {reason}, not run")
                self._commit(msg)
                return True
        if self.ledger.is_done(trigger["id"]):
            _say(f"{name} was handled before; skipping")
            self._commit(msg)
            return True
        attempts: list[Attempt] = []
        while True:
            env = {**_command_environment(), "DRIFTLINE_TRIGGER_ID": trigger["id"],
                   "DRIFTLINE_MODEL": trigger["model"], "DRIFTLINE_MODEL_VERSION": trigger["model_version"],
                   "DRIFTLINE_TRIGGER_ATTEMPT": str(len(attempts) + 1)}
            # the command reads the trigger as it was verified, not the raw bytes (duplicate keys could differ)
            attempt = run_command(self.command, orjson.dumps(trigger), env, self.timeout_s, self.stop)
            if attempt is None:
                _say(f"stopping ({self.stop.reason()}) while the command ran for {name}: killed it; "
                     "the trigger is not marked done and runs again on restart")
                return False
            attempts.append(attempt)
            if attempt.succeeded:
                self.ledger.mark_done(trigger["id"])
                self._commit(msg)
                self.ran += 1
                _say(f"{name}: command succeeded in {attempt.seconds:.1f}s")
                return True
            if len(attempts) >= self.max_attempts:
                self._park(msg, trigger, "max_attempts", f"{len(attempts)} attempts failed", attempts)
                self.gave_up += 1
                _say(f"{name}: command {attempt.describe()} (attempt {len(attempts)} of {self.max_attempts}); "
                     f"parked in {self.parked_topic}, going on with the next trigger")
                self._commit(msg)
                return True
            delay = _BACKOFF_S[min(len(attempts) - 1, len(_BACKOFF_S) - 1)]
            _say(f"{name}: command {attempt.describe()} (attempt {len(attempts)} of {self.max_attempts}); "
                 f"retrying in {delay:.0f}s")
            if self.stop.sleep(delay):
                _say(f"stopping ({self.stop.reason()}) while {name} waited to retry; "
                     "the trigger is not marked done and runs again on restart")
                return False

    def _park(self, msg: confluent_kafka.Message, trigger: dict | None, reason: str, detail: str,
              attempts: list[Attempt]) -> None:
        raw = msg.value()
        record = {"reason": reason, "detail": detail, "group": self.group, "parked_at": time.time(),
                  "source": {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()},
                  "attempts": [a.as_record() for a in attempts],
                  "exit_codes": [a.exit_code for a in attempts],
                  "trigger": trigger,
                  "raw": None if trigger is not None or raw is None
                  else raw[:_RAW_EXCERPT].decode("utf-8", errors="replace")}
        error = _deliver(self.producer, self.parked_topic, msg.key(), orjson.dumps(record))
        if error:
            raise ServiceUnavailable(f"could not write to {self.parked_topic} ({error}); the record at "
                                     f"{msg.topic()}[{msg.partition()}]@{msg.offset()} is not committed and is "
                                     "read again on restart")
        self.ledger.park(f"{msg.partition()}:{msg.offset()}")

    def _commit(self, msg: confluent_kafka.Message) -> None:
        try:
            self.consumer.commit(message=msg, asynchronous=False)
        except confluent_kafka.KafkaException as exc:
            # e.g. the group rebalanced during a long command: the record is read again and skipped as handled
            _say(f"could not commit {msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc.args[0].str()}")

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
        if self.producer is not None:
            self.producer.flush(10)


def run_triggers(settings: Settings, command: str, group: str, model: str | None = None,
                 stop_after_s: float | None = None, timeout_s: float | None = DEFAULT_TIMEOUT_S,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> int:
    """Run ``command`` once per retrain trigger until SIGTERM, Ctrl-C or ``stop_after_s``. Returns the exit code."""
    if max_attempts < 1:
        raise ConfigError(f"--max-attempts must be at least 1, got {max_attempts}")
    if timeout_s is not None and timeout_s < 0:
        raise ConfigError(f"--timeout must be 0 (no limit) or a number of seconds, got {timeout_s}")
    if stop_after_s is not None and stop_after_s < 0:
        raise ConfigError(f"--stop-after must be a number of seconds, got {stop_after_s}")
    stop = _Stop(None if stop_after_s is None else time.monotonic() + stop_after_s)
    runner = _TriggerRunner(settings, command, group, model, timeout_s, max_attempts, stop)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, _frame: setattr(stop, "signal",
                                                                               signal.Signals(signum).name))
    if runner.key is None:
        _say("warning: no signing key (DRIFTLINE_SIGNING_KEY or _FILE) is set, so triggers are not authenticated: "
             "anyone who can write to the control topic can make this command run")
    try:
        runner.connect()
        limit = f"{timeout_s:g}s" if timeout_s else "none"
        _say(f"waiting for retrain triggers on {settings.control_topic} (group {group}); timeout per run {limit}, "
             f"at most {max_attempts} attempt(s), then parked in {runner.parked_topic}")
        runner.run()
    finally:
        runner.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    parked = runner.malformed + runner.gave_up + runner.unsigned + runner.bad_signature
    _say(f"ran the command for {runner.ran} trigger(s); parked {parked} "
         f"({runner.malformed} malformed, {runner.gave_up} after {max_attempts} failed attempt(s), "
         f"{runner.unsigned} unsigned, {runner.bad_signature} with a bad signature)")
    return 0


def replay_parked(settings: Settings, trigger_id: str) -> int:
    """Write the parked trigger ``trigger_id`` back to the control topic, where ``--exec`` runs it next."""
    from stream_processors.cli.alerts import iter_alerts

    topic = parked_topic(settings.control_topic)
    found = [record["trigger"] for record in iter_alerts(settings.replace(control_topic=topic), from_beginning=True,
                                                         follow=False, timeout_s=60)
             if isinstance(record.get("trigger"), dict) and record["trigger"].get("id") == trigger_id]
    if not found:
        raise DriftlineError(f"no parked trigger with id {trigger_id!r} on {topic}; list them with "
                             f"'driftline alerts --control-topic {topic} --json'")
    trigger = found[-1]
    producer = kafka.producer(settings.kafka)
    error = _deliver(producer, settings.control_topic, trigger["model"].encode(), orjson.dumps(trigger))
    if error:
        raise ServiceUnavailable(f"could not write to {settings.control_topic} ({error})")
    _say(printable(f"replayed trigger {trigger_id} (model {trigger['model']} v{trigger['model_version']}) to "
                    f"{settings.control_topic}; 'driftline triggers --exec' runs it next"))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("triggers", help="run a command once per retrain trigger (the downstream retrain hook)",
                       description="Consume retrain triggers from the control topic with a consumer group of "
                                   "its own and run CMD through the shell once per trigger, in order, with the "
                                   "trigger JSON on stdin and DRIFTLINE_TRIGGER_ID, DRIFTLINE_MODEL, "
                                   "DRIFTLINE_MODEL_VERSION and DRIFTLINE_TRIGGER_ATTEMPT in its environment. "
                                   "A trigger counts as handled only when CMD exits 0; a failing CMD is retried "
                                   "with back-off. A CMD that runs past --timeout is killed with its whole "
                                   "process group and counts as a failed attempt. After --max-attempts failed "
                                   "attempts, or when the record is not a valid trigger, it is parked on "
                                   "<control topic>.parked (with the reason and exit codes) and the next "
                                   "trigger runs. SIGTERM or Ctrl-C kills a running CMD and exits without "
                                   "marking its trigger done, so it runs again on restart.",
                       epilog="Example: driftline triggers --exec 'python retrain.py --model \"$DRIFTLINE_MODEL\"' "
                              "--timeout 7200. " + ENV_HELP)
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--exec", dest="exec_command", metavar="CMD", help="shell command to run")
    action.add_argument("--replay-parked", metavar="ID",
                        help="write the parked trigger ID back to the control topic, then exit")
    p.add_argument("--group", default="driftline-retrain", help="consumer group (default driftline-retrain)")
    p.add_argument("--model", help="only this model's triggers")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"kill a run of CMD (and its children) after S seconds; it counts as a failed attempt "
                        f"(default {DEFAULT_TIMEOUT_S:g}, i.e. {DEFAULT_TIMEOUT_S / 3600:g} hours; 0: no limit)")
    p.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS, metavar="N",
                   help=f"park a trigger after N failed attempts and go on with the next "
                        f"(default {DEFAULT_MAX_ATTEMPTS})")
    p.add_argument("--stop-after", type=float, metavar="S",
                   help="stop after S seconds, like SIGTERM (default: run until SIGTERM or Ctrl-C)")
    p.add_argument("--control-topic", metavar="T")
    connection_flags(p)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.replay_parked:
        return replay_parked(settings, args.replay_parked)
    return run_triggers(settings, args.exec_command, args.group, args.model, stop_after_s=args.stop_after,
                        timeout_s=args.timeout, max_attempts=args.max_attempts)
