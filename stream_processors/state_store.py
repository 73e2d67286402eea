"""Where model state and the offsets it came from live: Redis, or memory in tests.

One commit writes the new state of every model a batch touched together with
the new offset of every partition it read, atomically (a Lua script). The
script first checks that each partition's stored offset is still the one the
batch started from: a worker that lost its partitions in a rebalance and
wakes up late cannot overwrite the state its successor wrote.

Keys, under the worker's app id::

    driftline:{app}:offsets            hash  "topic:partition" -> last applied offset
    driftline:{app}:state:{model}:{v}  JSON  ModelState.to_dict()
    driftline:{app}:models             hash  "{model}\\t{version}" -> {"events", "updated"} (JSON)
    driftline:{app}:profile:{model}:{v} JSON ReferenceProfile.to_dict()
    driftline:{app}:pred:{model}:{hour} hash event id -> prediction JSON, kept for labels (expires)
    driftline:{app}:label:{model}:{id} JSON  a label waiting for its prediction (expires)
    driftline:{app}:waiting:{model}    zset  waiting labels by deadline
    driftline:{app}:labels             hash  "{model}:pending" / "{model}:unmatched" / "{model}:joined" counts
    driftline:{app}:quarantine:{record}:{sha256}  a saved state or profile that could not be loaded, as it was
    driftline:{app}:quarantined        hash  "{model}\\t{version}" -> {"record", "error", "sha256", "at"} (JSON)

A record that cannot even be decoded is handed to the caller as its raw bytes,
so that it can be quarantined rather than stop the worker.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Protocol

import logging

import orjson
import redis

from stream_processors.config import RedisConnection

__all__ = ["MemoryStateStore", "Quarantine", "RedisStateStore", "StateCommit", "StateStore", "TopicPartition"]

TopicPartition = tuple[str, int]
_log = logging.getLogger(__name__)

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
  elseif op == 'hsetex' then  -- ttl, then field, value pairs
    redis.call('HSET', key, unpack(ARGV, i + 4, i + 2 + n))
    redis.call('EXPIRE', key, a)
  end
  i = i + 3 + n
end
return 1
"""


@dataclass(frozen=True)
class Quarantine:
    """A saved record that could not be loaded: kept aside under its own key instead of being overwritten."""

    kind: str                   # "state" or "profile"
    model: str
    model_version: str
    raw: bytes
    error: str


class StateCommit(Protocol):
    """What one batch writes (``BatchOutcome`` is one)."""

    offsets: dict[TopicPartition, tuple[int, int]]
    """Per partition: (the offset the batch started from, the new one)."""
    states: dict[tuple[str, str], bytes]
    events_total: dict[tuple[str, str], int]
    writes: list[tuple]
    """The label join's writes: (op, key relative to the app's namespace, args...)."""
    quarantined: list[Quarantine]


def quarantine_writes(quarantined: list[Quarantine], now: float) -> list[tuple]:
    """The writes that keep damaged records aside (and drop a damaged profile, so it is not read again)."""
    out: list[tuple] = []
    for q in quarantined:
        digest = hashlib.sha256(q.raw).hexdigest()
        out.append(("set", f"quarantine:{q.kind}:{digest}", q.raw))
        out.append(("hset", "quarantined", f"{q.model}\t{q.model_version}",
                    orjson.dumps({"record": q.kind, "error": q.error, "sha256": digest, "at": now})))
        if q.kind == "profile":
            out.append(("del", f"profile:{q.model}:{q.model_version}"))
    return out


def _decoded(raw: bytes | None) -> dict | bytes | None:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def _join_record(where: str, raw: bytes | None) -> dict | list | None:
    """A kept prediction or waiting label; one that cannot be decoded is reported and read as absent (a label
    then waits for, or misses, its prediction and is counted as unmatched), so it cannot stop the worker."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        _log.error("damaged label-join record at %s (%d bytes) is ignored", where[:300], len(raw))
        return None


class StateStore(Protocol):
    def offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Last applied offset per partition; -1 where none was applied."""

    def load(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | bytes | None]:
        """Saved state per (model, version); None where there is none, bytes where it is not JSON."""

    def commit(self, batch: StateCommit) -> bool:
        """Write the batch's states, writes and quarantined records and move its offsets from
        ``(expected, new)``, all at once; False on a conflict (nothing written)."""

    def quarantined(self) -> dict[tuple[str, str], dict]:
        """Per (model, version): its latest quarantined record, {"record", "error", "sha256", "at"}."""

    def models(self) -> dict[tuple[str, str], float]:
        """Every (model, version) with state, and when it was last updated."""

    def model_summaries(self) -> dict[tuple[str, str], dict]:
        """Per (model, version): {"events", "updated"} as of its last commit."""

    def profiles(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | bytes | None]:
        """Registered reference profile per (model, version); None where there is none, bytes where it is
        not JSON."""

    def put_profile(self, profile: dict, only_if_absent: bool = False) -> bool:
        """Register a profile; with ``only_if_absent``, keep one already there."""

    # the label join's reads; keys are relative to the app's namespace
    def get_many(self, keys: list[str]) -> list[dict | None]: ...

    def hash_get(self, key: str, field: str) -> int: ...

    def hash_all(self, key: str) -> dict[str, int]: ...

    def hash_lookup(self, keys: list[str], fields: list[str]) -> list[dict | None]: ...

    def due(self, key: str, now: float) -> list[str]: ...


def profile_key(app_id: str, model: str, version: str) -> str:
    return f"driftline:{app_id}:profile:{model}:{version}"


def _field(tp: TopicPartition) -> str:
    return f"{tp[0]}:{tp[1]}"


class RedisStateStore:
    def __init__(self, connection: str | RedisConnection, app_id: str) -> None:
        """``connection``: a RedisConnection (settings.redis), or a URL."""
        self._connection = connection if isinstance(connection, RedisConnection) else RedisConnection(connection)
        self._redis = self._connection.client(socket_timeout=10, socket_connect_timeout=5)
        self._app_id = app_id
        self._prefix = f"driftline:{app_id}"
        self._offsets_key = f"{self._prefix}:offsets"
        self._models_key = f"{self._prefix}:models"
        self._commit = self._redis.register_script(_COMMIT)

    def _state_key(self, model: str, version: str) -> str:
        return f"{self._prefix}:state:{model}:{version}"

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
        raw = self._call(self._redis.hmget, self._offsets_key, [_field(tp) for tp in partitions])
        return {tp: -1 if v is None else int(v) for tp, v in zip(partitions, raw)}

    def load(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | None]:
        if not models:
            return {}
        raw = self._call(self._redis.mget, [self._state_key(m, v) for m, v in models])
        return {key: _decoded(value) for key, value in zip(models, raw)}

    def commit(self, batch: StateCommit) -> bool:
        if not batch.offsets:
            return True
        argv: list[object] = [len(batch.offsets)]
        for tp, (expected, new) in batch.offsets.items():
            argv += [_field(tp), str(expected), str(new)]
        states = batch.states
        keys = [self._offsets_key, self._models_key]
        keys += [self._state_key(m, v) for m, v in states]
        argv += list(states.values())
        argv += [f"{m}\t{v}" for m, v in states]
        now = time.time()
        argv += [orjson.dumps({"events": batch.events_total[key], "updated": now}) for key in states]
        for op, key, *args in [*batch.writes, *quarantine_writes(batch.quarantined, now)]:
            argv += [op, self._prefix + ":" + key, len(args), *args]
        return bool(self._call(self._commit, keys, argv))

    def quarantined(self) -> dict[tuple[str, str], dict]:
        raw = self._call(self._redis.hgetall, self._prefix + ":quarantined")
        return {tuple(k.decode().split("\t", 1)): orjson.loads(v) for k, v in raw.items()}

    # -- the label join: keys relative to the app's prefix --------------------------------------------------
    def get_many(self, keys: list[str]) -> list[dict | None]:
        if not keys:
            return []
        raw = self._call(self._redis.mget, [self._prefix + ":" + k for k in keys])
        return [_join_record(self._prefix + ":" + k, v) for k, v in zip(keys, raw)]

    def hash_get(self, key: str, field: str) -> int:
        value = self._call(self._redis.hget, self._prefix + ":" + key, field)
        return 0 if value is None else int(value)

    def hash_lookup(self, keys: list[str], fields: list[str]) -> list[dict | None]:
        """Per field, its value in the first of ``keys`` that has it (JSON-decoded)."""
        if not fields or not keys:
            return [None] * len(fields)
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self._prefix + ":" + key, fields)
        rows = self._call(pipe.execute)
        out: list[dict | None] = [None] * len(fields)
        for key, row in zip(keys, rows):
            for j, value in enumerate(row):
                if out[j] is None and value is not None:
                    out[j] = _join_record(f"{self._prefix}:{key} {fields[j]}", value)
        return out

    def hash_all(self, key: str) -> dict[str, int]:
        raw = self._call(self._redis.hgetall, self._prefix + ":" + key)
        return {k.decode(): int(v) for k, v in raw.items()}

    def due(self, key: str, now: float) -> list[str]:
        raw = self._call(self._redis.zrangebyscore, self._prefix + ":" + key, "-inf", now)
        return [m.decode() for m in raw]

    def profiles(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | None]:
        if not models:
            return {}
        raw = self._call(self._redis.mget, [profile_key(self._app_id, m, v) for m, v in models])
        return {key: _decoded(value) for key, value in zip(models, raw)}

    def put_profile(self, profile: dict, only_if_absent: bool = False) -> bool:
        key = profile_key(self._app_id, profile["model"], profile["model_version"])
        return bool(self._call(self._redis.set, key, orjson.dumps(profile), None, None, only_if_absent))

    def model_summaries(self) -> dict[tuple[str, str], dict]:
        """Per (model, version): {"events", "updated"} as of its last commit."""
        raw = self._call(self._redis.hgetall, self._models_key)
        out = {}
        for member, summary in raw.items():
            model, _, version = member.decode().partition("\t")
            out[(model, version)] = orjson.loads(summary)
        return out

    def models(self) -> dict[tuple[str, str], float]:
        return {key: summary["updated"] for key, summary in self.model_summaries().items()}


class MemoryStateStore:
    """The same contract in a dict, for tests of the logic without Redis."""

    def __init__(self) -> None:
        self._profiles: dict[tuple[str, str], bytes] = {}
        self._offsets: dict[TopicPartition, int] = {}
        self._states: dict[tuple[str, str], bytes] = {}
        self._updated: dict[tuple[str, str], float] = {}
        self._events: dict[tuple[str, str], int] = {}
        self._kv: dict[str, bytes] = {}
        self._fields: dict[str, dict[str, bytes]] = {}
        self._zsets: dict[str, dict[str, float]] = {}
        self._hashes: dict[str, dict[str, int]] = {}

    def offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._offsets.get(tp, -1) for tp in partitions}

    def load(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | bytes | None]:
        return {k: _decoded(self._states.get(k)) for k in models}

    def commit(self, batch: StateCommit) -> bool:
        offsets = batch.offsets
        if any(self._offsets.get(tp, -1) != expected for tp, (expected, _new) in offsets.items()):
            return False
        now = time.time()
        for op, key, *args in [*batch.writes, *quarantine_writes(batch.quarantined, now)]:
            a, b = (args + ["", ""])[:2]
            if op == "set":
                self._kv[key] = a
            elif op == "hset":
                self._fields.setdefault(key, {})[a] = b
            elif op == "del" and key.startswith("profile:"):
                model, _, version = key[len("profile:"):].partition(":")
                self._profiles.pop((model, version), None)
            elif op == "hsetex":
                h = self._fields.setdefault(key, {})
                h.update(zip(args[1::2], args[2::2]))
            elif op == "setex":
                self._kv[key] = b
            elif op == "del":
                self._kv.pop(key, None)
            elif op == "zadd":
                self._zsets.setdefault(key, {})[b] = float(a)
            elif op == "zrem":
                self._zsets.get(key, {}).pop(b, None)
            elif op == "hincrby":
                h = self._hashes.setdefault(key, {})
                h[a] = h.get(a, 0) + int(b)
        for tp, (_expected, new) in offsets.items():
            self._offsets[tp] = new
        for key, state in batch.states.items():
            self._states[key] = state
            self._updated[key] = now
            self._events[key] = batch.events_total[key]
        return True

    def quarantined(self) -> dict[tuple[str, str], dict]:
        return {tuple(k.split("\t", 1)): orjson.loads(v) for k, v in self._fields.get("quarantined", {}).items()}

    def put_raw(self, kind: str, model: str, version: str, raw: bytes) -> None:
        """Write a record as bytes, damaged or not (for tests of what happens when one is)."""
        (self._states if kind == "state" else self._profiles)[(model, version)] = raw

    def model_summaries(self) -> dict[tuple[str, str], dict]:
        return {key: {"events": self._events[key], "updated": t} for key, t in self._updated.items()}

    def get_many(self, keys: list[str]) -> list[dict | None]:
        return [_join_record(k, self._kv.get(k)) for k in keys]

    def hash_get(self, key: str, field: str) -> int:
        return self._hashes.get(key, {}).get(field, 0)

    def hash_lookup(self, keys: list[str], fields: list[str]) -> list[dict | None]:
        out: list[dict | None] = []
        for f in fields:
            value = next((self._fields[k][f] for k in keys if f in self._fields.get(k, {})), None)
            out.append(_join_record(f, value))
        return out

    def hash_all(self, key: str) -> dict[str, int]:
        return dict(self._hashes.get(key, {}))

    def due(self, key: str, now: float) -> list[str]:
        return sorted((m for m, score in self._zsets.get(key, {}).items() if score <= now),
                      key=lambda m: self._zsets[key][m])

    def models(self) -> dict[tuple[str, str], float]:
        return dict(self._updated)

    def profiles(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | bytes | None]:
        return {k: _decoded(self._profiles.get(k)) for k in models}

    def put_profile(self, profile: dict, only_if_absent: bool = False) -> bool:
        key = (profile["model"], profile["model_version"])
        if only_if_absent and key in self._profiles:
            return False
        self._profiles[key] = orjson.dumps(profile)
        return True
