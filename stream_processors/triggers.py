"""``driftline triggers --exec CMD``: run a command once per retrain trigger on the control topic.

The consumer has its own group (``--group``, default ``driftline-retrain``)
and starts from the oldest trigger the group has not handled. For each
``retrain`` record it runs ``CMD`` through the shell with the trigger's JSON
on stdin (and ``DRIFTLINE_TRIGGER_ID``, ``DRIFTLINE_MODEL`` and
``DRIFTLINE_MODEL_VERSION`` in its environment). Only when the command exits
0 is the trigger marked done (a Redis set of trigger ids, so a restart between
the command and the commit does not run it again) and its offset committed.
A failing command is retried with back-off; nothing after it runs meanwhile,
so triggers are handled in order.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import confluent_kafka
import orjson
import redis

from producers.topics import KAFKA_CLIENT_LOG
from stream_processors.errors import ServiceUnavailable
from stream_processors.settings import Settings

__all__ = ["run_triggers"]

_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def _say(text: str) -> None:
    print(f"triggers: {text}", flush=True)


def run_triggers(settings: Settings, command: str, group: str, model: str | None = None,
                 timeout_s: float | None = None, max_attempts: int = 0) -> int:
    done_key = f"driftline:triggers-done:{group}:{settings.control_topic}"
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError:
        raise ServiceUnavailable(f"Redis is unreachable at {settings.redis_url}; start it with 'make stack-up' "
                                 "or set DRIFTLINE_REDIS_URL") from None
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "socket.connection.setup.timeout.ms": 5000,
        "max.poll.interval.ms": 3_600_000,  # a retrain command may take long
    }, logger=KAFKA_CLIENT_LOG)
    try:
        consumer.list_topics(settings.control_topic, timeout=5)
    except confluent_kafka.KafkaException:
        consumer.close()
        raise ServiceUnavailable(f"Kafka is unreachable at {settings.kafka_bootstrap}; start it with "
                                 "'make stack-up' or set DRIFTLINE_KAFKA_BOOTSTRAP") from None
    consumer.subscribe([settings.control_topic])
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    ran = 0
    _say(f"waiting for retrain triggers on {settings.control_topic} (group {group}); command: {command}")
    try:
        while deadline is None or time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                trigger = orjson.loads(msg.value())
            except orjson.JSONDecodeError:
                consumer.commit(message=msg, asynchronous=False)
                continue
            if trigger.get("type") != "retrain" or (model and trigger.get("model") != model):
                consumer.commit(message=msg, asynchronous=False)
                continue
            if client.sismember(done_key, trigger["id"]):
                _say(f"trigger {trigger['id']} was handled before; skipping")
                consumer.commit(message=msg, asynchronous=False)
                continue
            if _run_until_done(command, trigger, msg.value(), max_attempts, deadline):
                client.sadd(done_key, trigger["id"])
                consumer.commit(message=msg, asynchronous=False)
                ran += 1
            else:
                # not done (gave up, or out of time): read it again next time, nothing after it runs first
                consumer.seek(confluent_kafka.TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                if deadline is not None and time.monotonic() >= deadline:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    _say(f"ran the command for {ran} trigger(s)")
    return 0


def _run_until_done(command: str, trigger: dict, payload: bytes, max_attempts: int, deadline: float | None) -> bool:
    env = {**os.environ, "DRIFTLINE_TRIGGER_ID": trigger["id"], "DRIFTLINE_MODEL": str(trigger.get("model")),
           "DRIFTLINE_MODEL_VERSION": str(trigger.get("model_version"))}
    attempt = 0
    while True:
        attempt += 1
        started = time.monotonic()
        result = subprocess.run(command, shell=True, input=payload, env=env, stdout=sys.stdout, stderr=sys.stderr)
        took = time.monotonic() - started
        if result.returncode == 0:
            _say(f"trigger {trigger['id']} (model {trigger.get('model')} v{trigger.get('model_version')}): "
                 f"command succeeded in {took:.1f}s")
            return True
        delay = _BACKOFF_S[min(attempt - 1, len(_BACKOFF_S) - 1)]
        _say(f"trigger {trigger['id']}: command exited {result.returncode} (attempt {attempt}); "
             f"retrying in {delay:.0f}s")
        if (max_attempts and attempt >= max_attempts) or (deadline is not None and time.monotonic() + delay > deadline):
            return False
        time.sleep(delay)
