"""The store contract on Redis: one Lua script commits a batch atomically (keys: ``state.keys``).

``redis_client`` asks ``config.RedisConnection.client`` (the one place Redis clients are built) for a client
with the store's timeouts.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict

import orjson
import redis

from detectors.model.writes import AwaitLabel, CountLabels, ForgetLabel, JoinWrite, KeepPrediction
from stream_processors.config import RedisConnection
from stream_processors.state.keys import AppKeys, member, parse_member
from stream_processors.state.store import (Quarantine, StateCommit, TopicPartition, decoded, join_record,
                                           label_record, prediction_record, quarantine_record)

__all__ = ["RedisStateStore", "redis_client"]

_UNPACK_LIMIT = 2000  # field/value pairs per HSET: Lua's unpack() takes a few thousand values


def redis_client(connection: str | RedisConnection, socket_timeout: float = 10,
                 socket_connect_timeout: float = 5) -> redis.Redis:
    """A client for ``connection`` (settings.redis, or a bare URL) with the store's timeouts; the client itself is
    made by :meth:`RedisConnection.client`, the one place Driftline builds Redis clients."""
    return as_redis_connection(connection).client(socket_timeout=socket_timeout,
                                                  socket_connect_timeout=socket_connect_timeout)


def as_redis_connection(connection: str | RedisConnection) -> RedisConnection:
    return connection if isinstance(connection, RedisConnection) else RedisConnection(connection)


_COMMIT = """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local stored = redis.call('HGET', KEYS[1], ARGV[2 + 3 * i])
  if (stored or '-1') ~= ARGV[3 + 3 * i] then return 0 end
end
for i = 0, n - 1 do
  redis.call('HSET', KEYS[1], ARGV[2 + 3 * i], ARGV[4 + 3 * i])
end
local base = 1 + 3 * n  -- ARGV after the offsets: states, then members, then summaries
local s = #KEYS - 2
for j = 3, #KEYS do
  redis.call('SET', KEYS[j], ARGV[base + j - 2])
  redis.call('HSET', KEYS[2], ARGV[base + s + j - 2], ARGV[base + 2 * s + j - 2])
end
-- then the label join's writes: op, key, argument count, arguments
local i = base + 3 * s + 1
while i <= #ARGV do
  local op, key, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local a, b = ARGV[i + 3], ARGV[i + 4]
  if op == 'setex' then redis.call('SET', key, b, 'EX', a)
  elseif op == 'set' then redis.call('SET', key, a)
  elseif op == 'hset' then redis.call('HSET', key, a, b)
  elseif op == 'del' then redis.call('DEL', key)
  elseif op == 'zadd' then redis.call('ZADD', key, a, b)
  elseif op == 'zrem' then redis.call('ZREM', key, b)
  elseif op == 'hincrby' then redis.call('HINCRBY', key, a, b)
  elseif op == 'expire' then redis.call('EXPIRE', key, a)
  elseif op == 'hsetex' then  -- ttl, then field, value pairs
    redis.call('HSET', key, unpack(ARGV, i + 4, i + 2 + n))
    redis.call('EXPIRE', key, a)
  end
  i = i + 3 + n
end
return 1
"""


def _field(tp: TopicPartition) -> str:
    return f"{tp[0]}:{tp[1]}"


def _ops(keys: AppKeys, writes: list[JoinWrite], quarantined: list[Quarantine], now: float) -> list[tuple]:
    """The script's operations (op, key, args...) for the label join's writes and the quarantined records."""
    out: list[tuple] = []
    kept: dict[tuple[str, int, int], list] = defaultdict(list)  # one HSET per hour bucket (and TTL)
    for w in writes:
        if isinstance(w, KeepPrediction):
            kept[(w.model, w.hour, w.ttl_s)] += [w.event_id, prediction_record(w)]
        elif isinstance(w, AwaitLabel):
            out.append(("setex", keys.waiting_label(w.model, w.event_id), w.ttl_s, label_record(w)))
            out.append(("zadd", keys.waiting(w.model), repr(w.deadline), w.event_id))
            out.append(("expire", keys.waiting(w.model), w.ttl_s))  # refreshed by every label that waits
        elif isinstance(w, ForgetLabel):
            out.append(("del", keys.waiting_label(w.model, w.event_id)))
            out.append(("zrem", keys.waiting(w.model), "", w.event_id))
        elif isinstance(w, CountLabels):
            for kind, change in (("pending", w.pending), ("unmatched", w.unmatched), ("joined", w.joined)):
                if change:
                    out.append(("hincrby", keys.label_counts, f"{w.model}:{kind}", str(change)))
    for (model, hour, ttl), pairs in kept.items():
        for start in range(0, len(pairs), 2 * _UNPACK_LIMIT):
            out.append(("hsetex", keys.predictions(model, hour), ttl, *pairs[start:start + 2 * _UNPACK_LIMIT]))
    for q in quarantined:
        digest = hashlib.sha256(q.raw).hexdigest()
        out.append(("set", keys.quarantine(q.kind, digest), q.raw))
        out.append(("hset", keys.quarantined, member(q.model, q.model_version), quarantine_record(q, digest, now)))
        if q.kind == "profile":
            out.append(("del", keys.profile(q.model, q.model_version)))
    return out


class RedisStateStore:
    def __init__(self, connection: str | RedisConnection, app_id: str) -> None:
        """``connection``: settings.redis (password file, CA), or a bare URL."""
        self._connection = as_redis_connection(connection)
        self._redis = redis_client(self._connection)
        self._app_id = app_id
        self._keys = AppKeys(app_id)
        self._commit = self._redis.register_script(_COMMIT)

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise self._connection.error(exc) from exc

    def ping(self) -> None:
        self._call(self._redis.ping)

    def offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        raw = self._call(self._redis.hmget, self._keys.offsets, [_field(tp) for tp in partitions])
        return {tp: -1 if v is None else int(v) for tp, v in zip(partitions, raw)}

    def load(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | None]:
        if not models:
            return {}
        raw = self._call(self._redis.mget, [self._keys.state(m, v) for m, v in models])
        return {key: decoded(value) for key, value in zip(models, raw)}

    def commit(self, batch: StateCommit) -> bool:
        if not batch.offsets:
            return True
        argv: list[object] = [len(batch.offsets)]
        for tp, (expected, new) in batch.offsets.items():
            argv += [_field(tp), str(expected), str(new)]
        states = batch.states
        keys = [self._keys.offsets, self._keys.models]
        keys += [self._keys.state(m, v) for m, v in states]
        argv += list(states.values())
        argv += [member(m, v) for m, v in states]
        now = time.time()
        argv += [orjson.dumps({"events": batch.events_total[key], "updated": now}) for key in states]
        for op, key, *args in _ops(self._keys, batch.writes, batch.quarantined, now):
            argv += [op, key, len(args), *args]
        return bool(self._call(self._commit, keys, argv))

    def quarantined(self) -> dict[tuple[str, str], dict]:
        raw = self._call(self._redis.hgetall, self._keys.quarantined)
        return {parse_member(k.decode()): orjson.loads(v) for k, v in raw.items()}

    def quarantined_record(self, kind: str, digest: str) -> bytes | None:
        return self._call(self._redis.get, self._keys.quarantine(kind, digest))

    # -- the label join -------------------------------------------------------------------------------------
    def kept_predictions(self, model: str, hours: list[int], event_ids: list[str]) -> list[list | None]:
        """Per event id, its value in the first of the hour buckets that has it."""
        if not event_ids or not hours:
            return [None] * len(event_ids)
        pipe = self._redis.pipeline(transaction=False)
        for hour in hours:
            pipe.hmget(self._keys.predictions(model, hour), event_ids)
        rows = self._call(pipe.execute)
        out: list[list | None] = [None] * len(event_ids)
        for hour, row in zip(hours, rows):
            for j, value in enumerate(row):
                if out[j] is None and value is not None:
                    out[j] = join_record(f"{self._keys.predictions(model, hour)} {event_ids[j]}", value)
        return out

    def waiting_labels(self, model: str, event_ids: list[str]) -> list[dict | None]:
        if not event_ids:
            return []
        keys = [self._keys.waiting_label(model, i) for i in event_ids]
        raw = self._call(self._redis.mget, keys)
        return [join_record(k, v) for k, v in zip(keys, raw)]

    def due_labels(self, model: str, now: float, limit: int) -> list[str]:
        raw = self._call(self._redis.zrangebyscore, self._keys.waiting(model), "-inf", now, 0, limit)
        return [m.decode() for m in raw]

    def pending_labels(self, model: str) -> int:
        value = self._call(self._redis.hget, self._keys.label_counts, f"{model}:pending")
        return 0 if value is None else int(value)

    def label_counts(self) -> dict[str, int]:
        raw = self._call(self._redis.hgetall, self._keys.label_counts)
        return {k.decode(): int(v) for k, v in raw.items()}

    # -- profiles and summaries -----------------------------------------------------------------------------
    def profiles(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | None]:
        if not models:
            return {}
        raw = self._call(self._redis.mget, [self._keys.profile(m, v) for m, v in models])
        return {key: decoded(value) for key, value in zip(models, raw)}

    def put_profile(self, profile: dict, only_if_absent: bool = False) -> bool:
        key = self._keys.profile(profile["model"], profile["model_version"])
        return bool(self._call(self._redis.set, key, orjson.dumps(profile), None, None, only_if_absent))

    def model_summaries(self) -> dict[tuple[str, str], dict]:
        """Per (model, version): {"events", "updated"} as of its last commit."""
        raw = self._call(self._redis.hgetall, self._keys.models)
        out = {}
        for field, summary in raw.items():
            model, version = parse_member(field.decode())
            out[(model, version)] = orjson.loads(summary)
        return out

    def models(self) -> dict[tuple[str, str], float]:
        return {key: summary["updated"] for key, summary in self.model_summaries().items()}

    def existing(self, models: list[tuple[str, str]]) -> set[tuple[str, str]]:
        if not models:
            return set()
        raw = self._call(self._redis.hmget, self._keys.models, [f"{m}\t{v}" for m, v in models])
        return {key for key, value in zip(models, raw) if value is not None}
