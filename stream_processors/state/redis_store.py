"""The store contract on Redis or Redis Cluster: one Lua script per topic partition commits a batch's part of
that partition atomically (keys: ``state.keys``, all of one partition under one hash tag, all declared to the
script, so the script runs on the node owning that slot and survives resharding).

Reads that span partitions (offsets, states, the catalog) go as one command per partition in one pipeline,
which redis-py's cluster client sends to each node; profiles, untagged, are read one key per command.

``redis_client`` asks ``config.RedisConnection.client`` (the one place Redis clients are built) for a client
with the store's timeouts.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import defaultdict
from itertools import repeat

import orjson
import redis
from redis.exceptions import RedisClusterException

from detectors.model.label_join import LabelMarks
from detectors.model.writes import AwaitLabel, CountLabels, ForgetLabel, JoinWrite, KeepPredictions, MarkJoined
from stream_processors.config import RedisConnection
from stream_processors.display import printable, shorten
from stream_processors.errors import ServiceUnavailable
from stream_processors.state.keys import AppKeys, PartitionKeys, member, parse_member
from stream_processors.state.store import (PartitionCommit, Quarantine, StateCommit, TopicPartition, by_partition,
                                           decoded, join_record, label_record, prediction_records, quarantine_record,
                                           split_array, unguarded)

__all__ = ["REDIS_ERRORS", "RedisStateStore", "redis_client"]

_log = logging.getLogger(__name__)

_UNPACK_LIMIT = 2000  # field/value pairs per HSET: Lua's unpack() takes a few thousand values
REDIS_ERRORS = (redis.RedisError, RedisClusterException)
"""What redis-py raises when Redis (or a cluster: MOVED during a failover, CLUSTERDOWN, TRYAGAIN, a slot not
covered yet) cannot answer now: always "unavailable, retry", never a data error."""


def redis_client(connection: str | RedisConnection, socket_timeout: float = 10,
                 socket_connect_timeout: float = 5):
    """A client for ``connection`` (settings.redis, or a bare URL) with the store's timeouts; the client itself is
    made by :meth:`RedisConnection.client`, the one place Driftline builds Redis clients."""
    return as_redis_connection(connection).client(socket_timeout=socket_timeout,
                                                  socket_connect_timeout=socket_connect_timeout)


def as_redis_connection(connection: str | RedisConnection) -> RedisConnection:
    return connection if isinstance(connection, RedisConnection) else RedisConnection(connection)


_COUNT_OK = """
-- a label count HINCRBY can add a batch's change to: a canonical integer of at most 18 digits (Driftline only adds
-- to these; anything else was damaged from outside)
local function count_ok(v)
  local digits = #v - ((string.sub(v, 1, 1) == '-') and 1 or 0)
  return (v == '0' or string.match(v, '^%-?[1-9]%d*$') ~= nil) and digits <= 18
end
"""

_COMMIT = _COUNT_OK + """
-- every key a command of one type writes is checked before anything is written: on a key of another type (set
-- from outside) the command would fail, and Redis keeps the writes of a script that fails (the offsets would
-- move without the rest of the batch). SET and SETEX replace any value: theirs are not checked
local wrong, checked_type = {}, {}
local function fits(key, want)
  if checked_type[key] == nil then
    local t = redis.call('TYPE', key).ok
    checked_type[key] = (t == 'none' or t == want)
    if not checked_type[key] then
      -- control bytes, the backslash and bytes of non-ASCII names as \\xNN: a name cannot write to a terminal
      local shown = string.gsub(string.sub(key, 1, 200), '[%c\\92\\128-\\255]',
                                function(c) return string.format('\\\\x%02x', string.byte(c)) end)
      if #key > 200 then shown = shown .. '...(' .. (#key - 200) .. ' more bytes)' end
      wrong[#wrong + 1] = shown .. ' holds a ' .. t .. ', not a ' .. want
    end
  end
  return checked_type[key]
end
local function refuse()
  return redis.error_reply('DRIFTLINE_WRONGTYPE nothing of the batch was written: ' .. table.concat(wrong, '; '))
end
local n = tonumber(ARGV[1])
if n == 0 and #ARGV > 2 then return 0 end  -- something to write but no offset guarding it: refused
local offsets_fit = fits(KEYS[1], 'hash')
fits(KEYS[2], 'hash')
for i = 0, offsets_fit and n - 1 or -1 do  -- HGET would fail on offsets of another type: named below
  local stored = redis.call('HGET', KEYS[1], ARGV[2 + 3 * i])
  if (stored or '-1') ~= ARGV[3 + 3 * i] then return 0 end
end
local base = 2 + 3 * n  -- ARGV after the offsets: the state count, states, members, summaries
local s = tonumber(ARGV[base])
local kinds = {keep = 'hash', hset = 'hash', hincrby = 'hash', zadd = 'zset', zrem = 'zset', joined = 'zset'}
-- kept predictions are decoded before anything is written, for the same reason
local kept = {}
-- and so are the label counts: a damaged one is set to this batch's change (HINCRBY would fail halfway), and named;
-- a damaged waiting count is left for the next read to set from the waiting labels (this batch's change on its
-- own would be taken for the count, and kept)
local reset, checked, repaired = {}, {}, {}
local i = base + 3 * s + 1
while i <= #ARGV do
  local op, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if kinds[op] and not fits(key, kinds[op]) then  -- named below; its count is not read (HGET would fail)
  elseif op == 'keep' then kept[i] = cjson.decode(ARGV[i + 4])
  elseif op == 'hincrby' then
    local field = ARGV[i + 3]
    local seen = key .. '\\0' .. field
    local state = checked[seen]
    if state == nil then  -- the first change to this count: 'set' it, 'leave' it, or false (add to it)
      local v = redis.call('HGET', key, field)
      state = false
      if v and not count_ok(v) then
        state = (string.sub(field, -8) == ':pending') and 'leave' or 'set'
        repaired[#repaired + 1] = field
      end
      checked[seen] = state
      if state then reset[i] = state end
    elseif state == 'leave' then reset[i] = state end  -- a set count takes the later changes as added
  end
  i = i + 3 + tonumber(ARGV[i + 2])
end
if #wrong > 0 then return refuse() end
for i = 0, n - 1 do  -- an offset only checked (the other topic's, unchanged) is left as it is
  if ARGV[3 + 3 * i] ~= ARGV[4 + 3 * i] then redis.call('HSET', KEYS[1], ARGV[2 + 3 * i], ARGV[4 + 3 * i]) end
end
for j = 1, s do
  redis.call('SET', KEYS[2 + j], ARGV[base + j])
  redis.call('HSET', KEYS[2], ARGV[base + s + j], ARGV[base + 2 * s + j])
end
-- then the label join's writes: op, key index, argument count, arguments
i = base + 3 * s + 1
while i <= #ARGV do
  local op, key, n = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  local a, b = ARGV[i + 3], ARGV[i + 4]
  if op == 'setex' then redis.call('SET', key, b, 'EX', a)
  elseif op == 'set' then redis.call('SET', key, a)
  elseif op == 'hset' then redis.call('HSET', key, a, b)
  elseif op == 'del' then redis.call('DEL', key)
  elseif op == 'zadd' then redis.call('ZADD', key, a, b)
  elseif op == 'zrem' then redis.call('ZREM', key, b)
  elseif op == 'hincrby' then
    if reset[i] == 'set' then redis.call('HSET', key, a, b)
    elseif not reset[i] then redis.call('HINCRBY', key, a, b) end
  elseif op == 'expire' then  -- set if none (TTL -1), else only lengthened: a shorter wait must not cut older labels
    if redis.call('TTL', key) < tonumber(a) then redis.call('EXPIRE', key, a) end
  elseif op == 'joined' then  -- ttl, the time they joined, forget those before, then the event ids
    local pairs_ = {}
    for j = i + 6, i + 2 + n do
      pairs_[#pairs_ + 1] = b
      pairs_[#pairs_ + 1] = ARGV[j]
      if #pairs_ >= VALUES_PER_HSET or j == i + 2 + n then
        redis.call('ZADD', key, unpack(pairs_))
        pairs_ = {}
      end
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[i + 5])
    redis.call('EXPIRE', key, a)
  elseif op == 'keep' then  -- ttl, then one JSON array of field, value, field, value... (``_kept``)
    local fields = kept[i]
    for j = 1, #fields, VALUES_PER_HSET do
      redis.call('HSET', key, unpack(fields, j, math.min(j + VALUES_PER_HSET - 1, #fields)))
    end
    redis.call('EXPIRE', key, a)
  end
  i = i + 3 + n
end
if #repaired > 0 then return repaired end
return 1
""".replace("VALUES_PER_HSET", str(2 * _UNPACK_LIMIT))

_RECOUNT_PENDING = _COUNT_OK + """
-- KEYS: a partition's label counts, the model's waiting labels; ARGV: the model's pending field, the count the
-- worker read ('' if damaged). The count is set to the labels that wait if it is damaged (1) or still what the
-- worker read (2), never otherwise (0): a commit in between changed it, or another worker set it already
local v = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
local n = redis.call('ZCARD', KEYS[2])
if not count_ok(v) then
  redis.call('HSET', KEYS[1], ARGV[1], n)
  return {1, tostring(n), #v}
end
if v == ARGV[2] and tonumber(v) ~= n then
  redis.call('HSET', KEYS[1], ARGV[1], n)
  return {2, tostring(n), v}
end
return {0, v}
"""


def _count(value: bytes) -> int | None:
    """A label count as the commit script's ``count_ok`` takes it (canonical, at most 18 digits, so that adding a
    batch's change cannot overflow HINCRBY), else None: damaged."""
    if len(value) > 19:  # more than a sign and 18 digits (and int() of a long run of digits is slow)
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if str(number).encode() == value and abs(number) < 10**18 else None


def _wrong_type(exc: BaseException, partition: int) -> ServiceUnavailable | None:
    """The commit script's refusal of keys of another type (``DRIFTLINE_WRONGTYPE``), as an error saying what to
    do; None for any other failure. The worker retries the batch as it does while Redis is unavailable."""
    text = str(exc)
    if "DRIFTLINE_WRONGTYPE " not in text:
        return None
    detail = text.split("DRIFTLINE_WRONGTYPE ", 1)[1]
    detail = detail if len(detail) <= 4000 else detail[:4000] + f"...({len(detail) - 4000} more characters)"
    return ServiceUnavailable(f"the commit script refused partition {partition}'s batch: {detail}. Keys of the "
                              "worker's state were given another type from outside; rename (RENAME) or delete each "
                              "one named: until then the worker retries the batch, and none of it is lost")


def _read_wrong_type(exc: BaseException, key: str | bytes | list | None) -> ServiceUnavailable | None:
    """A command refused on ``key`` (or one of a script's keys) holding another type than Driftline keeps there,
    as an error naming it; None for any other failure, or when the key is not known."""
    text = str(exc)
    if "WRONGTYPE" not in text or "DRIFTLINE_WRONGTYPE" in text or key is None:
        return None
    names = [k.decode(errors="backslashreplace") if isinstance(k, bytes) else str(k)
             for k in (key if isinstance(key, list) else [key])]
    shown = " or ".join(shorten(printable(name), 300) for name in names)
    return ServiceUnavailable(f"Redis key {shown} holds another type than Driftline keeps there (it was written "
                              "from outside): rename (RENAME) or delete it; a worker retries its batch until then, "
                              "and loses none of it")


def _field(tp: TopicPartition) -> str:
    return f"{tp[0]}:{tp[1]}"


def _ops(keys: PartitionKeys, writes: list[JoinWrite], quarantined: list[Quarantine],
         now: float) -> list[tuple]:
    """The script's operations (op, key, args...) for one partition's label-join writes and quarantined
    records."""
    out: list[tuple] = []
    for w in writes:
        if isinstance(w, KeepPredictions):
            out.append(("keep", keys.predictions(w.model, w.hour), w.ttl_s, _kept(w)))
        elif isinstance(w, AwaitLabel):
            out.append(("setex", keys.waiting_label(w.model, w.event_id), w.ttl_s, label_record(w)))
            out.append(("zadd", keys.waiting(w.model), repr(w.deadline), w.event_id))
            out.append(("expire", keys.waiting(w.model), w.ttl_s))  # refreshed by every label that waits
        elif isinstance(w, ForgetLabel):
            out.append(("del", keys.waiting_label(w.model, w.event_id)))
            out.append(("zrem", keys.waiting(w.model), "", w.event_id))
        elif isinstance(w, MarkJoined):
            out.append(("joined", keys.joined(w.model), w.ttl_s, repr(w.at), repr(w.forget_before), *w.event_ids))
        elif isinstance(w, CountLabels):
            for kind, change in (("pending", w.pending), ("unmatched", w.unmatched), ("joined", w.joined)):
                if change:
                    out.append(("hincrby", keys.label_counts, f"{w.model}:{kind}", str(change)))
    for q in quarantined:
        digest = hashlib.sha256(q.raw).hexdigest()
        out.append(("set", keys.quarantine(q.kind, digest), q.raw))
        out.append(("hset", keys.quarantined, member(q.model, q.model_version), quarantine_record(q, digest, now)))
    return out


def _kept(write: KeepPredictions) -> bytes:
    """A bucket's fields and values as one script argument: a JSON array of event id, record, event id, record...,
    which the script decodes with cjson. Each record is a JSON string inside the array, so the script stores its
    exact bytes (cjson would write the numbers of a nested array its own way); a string comes out of cjson as the
    bytes it went into orjson, escapes, non-ASCII and NUL included (the contract test holds it). One argument per
    bucket, not two per event: redis-py encodes, and Redis parses, a few items a batch instead of hundreds of
    thousands."""
    n = len(write.event_ids)
    ids = split_array(orjson.dumps(write.event_ids), n, b'","')
    # each record is a string in the array: its quotes and backslashes escaped (a record's dump holds no other
    # character that a JSON string escapes), which leaves its brackets and commas as they are
    escaped = orjson.dumps(write.predictions).replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    records = split_array(escaped, n, b"],[")
    if ids is None or records is None:
        pairs: list = [None] * (2 * n)
        pairs[0::2] = write.event_ids
        pairs[1::2] = list(map(bytes.decode, prediction_records(write)))
        return orjson.dumps(pairs)
    # what orjson.dumps(pairs) writes: ["id","[record]","id","[record]"...]
    return b'["' + b']","'.join(map(bytes.__add__, map(bytes.__add__, ids, repeat(b'","[', n)), records)) + b']"]'


def _summary(part: PartitionCommit, key: tuple[str, str], now: float) -> dict:
    """A version's registry entry: what ``status`` lists and a worker exports before the version's next event."""
    summary: dict = {"events": part.events_total[key], "updated": now}
    if key in part.decisions:
        summary["decision"] = part.decisions[key]
    return summary


def script_call(keys: PartitionKeys, part: PartitionCommit, now: float) -> tuple[list[str], list[object]]:
    """KEYS and ARGV of the commit script for one partition's part of a batch."""
    argv: list[object] = [len(part.offsets)]
    for tp, (expected, new) in part.offsets.items():
        argv += [_field(tp), str(expected), str(new)]
    states = part.states
    script_keys = [keys.offsets, keys.models, *(keys.state(m, v) for m, v in states)]
    argv.append(len(states))
    argv += list(states.values())
    argv += [member(m, v) for m, v in states]
    argv += [orjson.dumps(_summary(part, key, now)) for key in states]
    index: dict[str, int] = {}
    for op, key, *args in _ops(keys, part.writes, part.quarantined, now):
        if key not in index:
            script_keys.append(key)
            index[key] = len(script_keys)  # Lua's KEYS count from 1
        argv += [op, index[key], len(args), *args]
    return script_keys, argv


class RedisStateStore:
    def __init__(self, connection: str | RedisConnection, app_id: str, partitions: int | None = None) -> None:
        """``connection``: settings.redis (password file, CA, cluster nodes), or a bare URL. ``partitions``: the
        topics' partition count, as the worker learnt it from Kafka; without it (``status``, ``alerts``), the
        count the worker recorded under the ``layout`` key is used."""
        self._connection = as_redis_connection(connection)
        self._redis = redis_client(self._connection)
        self._app_id = app_id
        self.partitions = partitions
        self._keys = AppKeys(app_id, partitions) if partitions else None
        self._commit = self._redis.register_script(_COMMIT)
        self._recount = self._redis.register_script(_RECOUNT_PENDING)

    @property
    def client(self):
        return self._redis

    def keys(self) -> AppKeys:
        """The app's keys for the partition count given, or else recorded by the worker (1 before any was)."""
        if self._keys is not None:
            return self._keys
        from stream_processors.state.layout import recorded_partitions

        recorded = self._call(recorded_partitions, self._redis, AppKeys(self._app_id))
        if recorded is None:
            return AppKeys(self._app_id)  # nothing recorded yet: read again next time
        self._keys = AppKeys(self._app_id, recorded)
        return self._keys

    def awaiting_move(self) -> bool:
        """True where no worker recorded a layout yet and keys of key layout 2 are there (an EXISTS of layout 2's
        untagged ``offsets`` and ``models`` hashes, no SCAN): they await a worker start to move them to layout 3
        (``state.layout``)."""
        self.keys()  # reads the layout record, where no partition count was given
        if self._keys is not None:
            return False
        prefix = AppKeys(self._app_id).prefix
        return any(self._pipelined([("exists", (f"{prefix}:offsets",)), ("exists", (f"{prefix}:models",))]))

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except REDIS_ERRORS as exc:
            # a read's first argument is its key (a script's: its KEYS)
            key = args[0] if args and isinstance(args[0], (str, bytes, list)) else None
            raise _read_wrong_type(exc, key) or self._connection.error(exc) from exc

    def _pipelined(self, calls: list[tuple[str, tuple]]) -> list:
        """One pipeline (per node, on a cluster) running ``calls``: (method name, args)."""
        pipe = self._redis.pipeline(transaction=False)
        for name, args in calls:
            if name == "mget":  # a cluster pipeline refuses pipe.mget; MGET of keys of one slot it routes
                pipe.execute_command("MGET", *args[0])
            else:
                getattr(pipe, name)(*args)
        try:
            return pipe.execute()
        except REDIS_ERRORS as exc:
            number = re.search(r"Command # (\d+) ", str(exc))  # redis-py names the command that failed
            key = calls[int(number[1]) - 1][1][0] if number and 0 < int(number[1]) <= len(calls) else None
            raise _read_wrong_type(exc, key) or self._connection.error(exc) from exc

    def ping(self) -> None:
        self._call(self._redis.ping)

    def prepare(self) -> int:
        """Before a worker applies anything: keys of an older layout, or of another partition count, moved to
        where layout 3 puts them for this store's partition count (``state.layout``); the number moved."""
        from stream_processors.state.layout import prepare

        if self._keys is None:
            raise ValueError("prepare() needs the partition count (RedisStateStore(..., partitions=P))")
        return self._call(prepare, self._redis, self._keys)

    def partition_of(self, model: str) -> int:
        return self.keys().partition_of(model)

    def offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        keys = self.keys()
        groups: dict[int, list[TopicPartition]] = defaultdict(list)
        for tp in partitions:
            groups[tp[1] % keys.partitions].append(tp)
        rows = self._pipelined([("hmget", (keys.of(n).offsets, [_field(tp) for tp in tps]))
                                for n, tps in groups.items()])
        out = {}
        for tps, row in zip(groups.values(), rows):
            out.update({tp: -1 if v is None else int(v) for tp, v in zip(tps, row)})
        return {tp: out[tp] for tp in partitions}

    def _by_model(self, models: list[tuple[str, str]], method: str, key_of) -> list:
        """One ``method`` per partition over the models of that partition, values in the order of ``models``."""
        keys = self.keys()
        groups: dict[int, list[int]] = defaultdict(list)
        for i, (model, _version) in enumerate(models):
            groups[keys.partition_of(model)].append(i)
        rows = self._pipelined([(method, key_of(keys.of(n), [models[i] for i in idx])) for n, idx in groups.items()])
        out: list = [None] * len(models)
        for idx, row in zip(groups.values(), rows):
            for i, value in zip(idx, row):
                out[i] = value
        return out

    def load(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | bytes | None]:
        if not models:
            return {}
        raw = self._by_model(models, "mget", lambda k, group: ([k.state(m, v) for m, v in group],))
        return {key: decoded(value) for key, value in zip(models, raw)}

    def commit(self, batch: StateCommit) -> bool:
        if not (batch.offsets or batch.states or batch.writes or batch.quarantined):
            return True
        keys = self.keys()
        now = time.time()
        for partition, part in by_partition(batch, keys.partition_of, keys.partitions):
            if unguarded(part):
                return False
            script_keys, argv = script_call(keys.of(partition), part, now)
            try:
                saved = self._commit(script_keys, argv)
            except REDIS_ERRORS as exc:
                raise _wrong_type(exc, partition) or self._connection.error(exc) from exc
            if not saved:
                return False
            if isinstance(saved, list):  # label counts found damaged
                more = f" and {len(saved) - 20} more" if len(saved) > 20 else ""
                _log.error("label counts %s%s were damaged (not counts): a waiting count is set again from the "
                           "labels that wait at its model's next batch, the others were set to this batch's change",
                           ", ".join(repr(f.decode(errors="replace")[:300]) for f in saved[:20]), more)
            self._drop_quarantined_profiles(keys, part.quarantined)
        return True

    def _drop_quarantined_profiles(self, keys: AppKeys, quarantined: list[Quarantine]) -> None:
        """A quarantined profile (kept under its partition's tag) leaves its untagged key: one DEL each, after
        the quarantine record is saved, so a crash in between leaves the profile to be quarantined again."""
        for q in quarantined:
            if q.kind == "profile":
                self._call(self._redis.delete, keys.profile(q.model, q.model_version))

    def _every_partition(self, name: str) -> list[dict]:
        """HGETALL of one per-partition hash (``models``, ``quarantined``, ``labels``) of every partition."""
        return self._pipelined([("hgetall", (getattr(k, name),)) for k in self.keys().every()])

    def quarantined(self) -> dict[tuple[str, str], dict]:
        out = {}
        for raw in self._every_partition("quarantined"):
            out.update({parse_member(k.decode()): orjson.loads(v) for k, v in raw.items()})
        return out

    def quarantined_record(self, kind: str, digest: str, model: str | None = None) -> bytes | None:
        """The record quarantined with ``digest``: under ``model``'s partition, or the first partition having
        it."""
        keys = self.keys()
        candidates = [keys.for_model(model)] if model is not None else keys.every()
        for found in self._pipelined([("get", (k.quarantine(kind, digest),)) for k in candidates]):
            if found is not None:
                return found
        return None

    # -- the label join -------------------------------------------------------------------------------------
    def kept_predictions(self, model: str, hours: list[int], event_ids: list[str]) -> list[list | None]:
        """Per event id, its value in the first of the hour buckets that has it."""
        if not event_ids or not hours:
            return [None] * len(event_ids)
        keys = self.keys().for_model(model)
        rows = self._pipelined([("hmget", (keys.predictions(model, hour), event_ids)) for hour in hours])
        out: list[list | None] = [None] * len(event_ids)
        for hour, row in zip(hours, rows):
            for j, value in enumerate(row):
                if out[j] is None and value is not None:
                    out[j] = join_record(f"{keys.predictions(model, hour)} {event_ids[j]}", value)
        return out

    def waiting_labels(self, model: str, event_ids: list[str]) -> list[dict | None]:
        if not event_ids:
            return []
        partition = self.keys().for_model(model)
        keys = [partition.waiting_label(model, i) for i in event_ids]
        raw = self._call(self._redis.mget, keys)
        return [join_record(k, v) for k, v in zip(keys, raw)]

    def label_marks_of(self, event_ids: dict[str, list[str]], since: float) -> dict[str, LabelMarks]:
        """Per model, a ZMSCORE of its joined and of its waiting event ids and an MGET of their waiting labels, all
        in one pipeline; a joined set is trimmed when labels join, so it may hold older ones until then."""
        asked = [(model, ids) for model, ids in event_ids.items() if ids]
        out = {model: LabelMarks([], [], []) for model in event_ids}
        if not asked:
            return out
        keys = self.keys()
        rows = self._pipelined([call for model, ids in asked for call in (
            ("zmscore", (keys.joined(model), ids)), ("zmscore", (keys.waiting(model), ids)),
            ("mget", ([keys.waiting_label(model, i) for i in ids],)))])
        for n, (model, ids) in enumerate(asked):
            joined, waiting, records = rows[3 * n:3 * n + 3]
            labels = [join_record(keys.waiting_label(model, i), r) if r is not None else None
                      for i, r in zip(ids, records)]  # a damaged record is None: it can join nothing
            out[model] = LabelMarks([s is not None and s >= since for s in joined], [s is not None for s in waiting],
                                    labels)
        return out

    def due_labels(self, model: str, now: float, limit: int) -> list[str]:
        raw = self._call(self._redis.zrangebyscore, self.keys().waiting(model), "-inf", now, 0, limit)
        return [m.decode() for m in raw]

    def pending_labels(self, model: str) -> int:
        return self.pending_labels_of([model])[model]

    def pending_labels_of(self, models: list[str]) -> dict[str, int]:
        if not models:
            return {}
        keys = self.keys()
        raw = self._pipelined([call for m in models for call in (
            ("hget", (keys.for_model(m).label_counts, f"{m}:pending")), ("zcard", (keys.waiting(m),)))])
        out = {}
        for n, model in enumerate(models):
            value, size = raw[2 * n], raw[2 * n + 1]
            count = 0 if value is None else _count(value)
            out[model] = count if count == size else self._recount_pending(keys.for_model(model), model, count)
        return out

    def _recount_pending(self, keys: PartitionKeys, model: str, seen: int | None = None) -> int:
        """The count of a model's waiting labels set to the size of its waiting set, which it counts, when it is
        not a count (damaged from outside: Driftline only adds to it; it would fail the join at every batch) or
        differs from it (``seen``: the set expired while no batch of the model came, or an older worker counted
        copies of labels); in one script that leaves a count changed meanwhile as it is."""
        code, count, *was = self._call(self._recount, [keys.label_counts, keys.waiting(model)],
                                       [f"{model}:pending", "" if seen is None else str(seen)])
        if code == 1:
            _log.error("the count of labels waiting for model %r was damaged (%d bytes, not a count); set again to "
                       "the %s labels that wait", model[:256], was[0], count.decode())
        elif code == 2:
            _log.warning("the count of labels waiting for model %r was %s while %s labels wait (the waiting labels "
                         "expired before a batch of the model came, or an older worker counted copies of labels, or "
                         "the count was changed from outside); set to %s", model[:256], was[0].decode(),
                         count.decode(), count.decode())
        return int(count)

    def label_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for raw in self._every_partition("label_counts"):
            out.update({k.decode(): _count(v) for k, v in raw.items()})  # None: damaged
        return out

    # -- profiles and summaries -----------------------------------------------------------------------------
    def profiles(self, models: list[tuple[str, str]]) -> dict[tuple[str, str], dict | None]:
        if not models:
            return {}
        keys = self.keys()
        raw = self._pipelined([("get", (keys.profile(m, v),)) for m, v in models])
        return {key: decoded(value) for key, value in zip(models, raw)}

    def put_profile(self, profile: dict, only_if_absent: bool = False) -> bool:
        key = AppKeys(self._app_id).profile(profile["model"], profile["model_version"])
        return bool(self._call(self._redis.set, key, orjson.dumps(profile), None, None, only_if_absent))

    def model_summaries(self) -> dict[tuple[str, str], dict]:
        """Per (model, version): {"events", "updated"} as of its last commit, and "decision" where it gave one."""
        out = {}
        for raw in self._every_partition("models"):
            for field, summary in raw.items():
                out[parse_member(field.decode())] = orjson.loads(summary)
        return out

    def summaries_of(self, partitions: set[int], limit: int | None = None) -> dict[tuple[str, str], dict]:
        """``model_summaries`` of the models of ``partitions`` only, read with HSCAN from their registries, up to
        about ``limit`` of them (all without one)."""
        keys = self.keys()

        def scan() -> dict[tuple[str, str], dict]:
            out: dict[tuple[str, str], dict] = {}
            for p in sorted(partitions):
                for field, summary in self._redis.hscan_iter(keys.of(p).models, count=500):
                    out[parse_member(field.decode())] = orjson.loads(summary)
                    if limit is not None and len(out) >= limit:
                        return out
            return out
        return self._call(scan)

    def model_summary(self, model: str, version: str) -> dict | None:
        """One model version's {"events", "updated"}, found without reading any other model's."""
        raw = self._call(self._redis.hget, self.keys().for_model(model).models, member(model, version))
        return None if raw is None else orjson.loads(raw)

    def models(self) -> dict[tuple[str, str], float]:
        return {key: summary["updated"] for key, summary in self.model_summaries().items()}

    def versions_of(self, model: str) -> dict[str, float]:
        """An HSCAN of the model's partition's registry for its own fields (``model<TAB>version``): neither the
        other partitions' registries nor other models' entries come over the wire."""
        prefix = member(model, "")
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"

        def scan() -> dict[str, float]:
            return {parse_member(f.decode())[1]: orjson.loads(v)["updated"] for f, v in
                    self._redis.hscan_iter(self.keys().for_model(model).models, match=pattern, count=1000)
                    if f.decode().startswith(prefix)}
        return self._call(scan)

    def existing(self, models: list[tuple[str, str]]) -> set[tuple[str, str]]:
        if not models:
            return set()
        raw = self._by_model(models, "hmget", lambda k, group: (k.models, [member(m, v) for m, v in group]))
        return {key for key, value in zip(models, raw) if value is not None}

    def model_label_counts(self, model: str) -> dict[str, int]:
        """One HMGET on the model's partition's label counts (not every partition's hash)."""
        kinds = ("joined", "pending", "unmatched")
        raw = self._call(self._redis.hmget, self.keys().for_model(model).label_counts,
                         [f"{model}:{k}" for k in kinds])
        return {k: 0 if v is None else _count(v) for k, v in zip(kinds, raw)}  # None: damaged

    def quarantine_of(self, model: str, version: str) -> dict | None:
        """One HGET on the model's partition's quarantined hash."""
        raw = self._call(self._redis.hget, self.keys().for_model(model).quarantined, member(model, version))
        return None if raw is None else orjson.loads(raw)
