"""Keys in the place key layout 3 gives them for the topics' partition count, before a worker applies anything.

A worker learns the partition count P of its topics from Kafka and calls :func:`prepare`. When the ``layout``
key already says (3, P) that is one GET. Otherwise — state of layout 2 (one Redis, no hash tags), or of layout 3
for another P (the topics' partitions were raised) — one worker takes the ``relocating`` lock and moves every
key of the app to where layout 3 puts it for P, then records (3, P); the other workers wait for the record,
logging what they wait for. The lock expires LOCK_TTL_S after it was last refreshed, and the mover refreshes
it as it goes (at most every REFRESH_S), so a mover that was killed holds the others back for seconds, not
minutes. It holds a token of its mover's own: a refresh or a release touches the lock only while it still holds
that token (a compare-and-set in Lua), and a mover that finds its lock gone or taken stops (the move is
idempotent: the next one finishes it).

Moving is idempotent, so a worker that dies half-way leaves a state the next one finishes: a key is copied
(DUMP/RESTORE with its TTL) before its old copy is deleted, a hash field is set under its new key before it is
deleted from the old one, and the record is written last. What is already at the destination wins: a key or a
hash field there is kept and the source dropped, and an offset there is never lowered (the higher of the two
is kept). So a stray older key (say, one a layout-2 worker wrote after the move: layout-2 workers must be
stopped before layout-3 workers start; a rolling upgrade across the layout change is not supported) can never
rewind an offset or overwrite newer state at a later partition raise. Nothing is dropped: a key this module
cannot place (say, a quarantined record no model refers to) stays where it was. Finding the keys is a SCAN of the app's
keys on every master: done once per change of layout, never on the path of a batch or of ``status``.

What moves when P changes: each model whose ``partition_for(model, P)`` changed takes its state, summary,
kept predictions, joined event ids, waiting labels, label counts and quarantine records to its new partition's
tag. Offsets do not move (partition n's offsets stay with partition n). Profiles are untagged and never move.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Callable

import orjson

from stream_processors.errors import ServiceUnavailable
from stream_processors.state.keys import AppKeys, parse_member, part, unpart

__all__ = ["prepare", "recorded_partitions", "relocate"]

_log = logging.getLogger(__name__)
LOCK_TTL_S = 15
REFRESH_S = 2.0
WAIT_S = 600
WAIT_LOG_S = 10.0
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _Lock:
    """The ``relocating`` lock as this mover holds it (a token of its own)."""

    def __init__(self, client, keys: AppKeys) -> None:
        self._client, self._key = client, keys.relocating
        self.token = f"{keys.partitions}:{uuid.uuid4().hex}"
        self._refresh, self._release = client.register_script(_REFRESH), client.register_script(_RELEASE)
        self._refreshed = time.monotonic()

    def take(self) -> bool:
        self._refreshed = time.monotonic()
        return bool(self._client.set(self._key, self.token, nx=True, ex=LOCK_TTL_S))

    def refresh(self, force: bool = False) -> None:
        """Extend the lock (at most every REFRESH_S unless ``force``); ServiceUnavailable when it is no longer
        ours."""
        if not force and time.monotonic() - self._refreshed < REFRESH_S:
            return
        if not self._refresh([self._key], [self.token, int(LOCK_TTL_S * 1000)]):
            raise ServiceUnavailable(f"the lock {self._key} expired or was taken while this worker moved keys; "
                                     "the move stops here, and the worker that holds the lock finishes it")
        self._refreshed = time.monotonic()

    def release(self) -> None:
        self._release([self._key], [self.token])
_HASHES = ("offsets", "models", "quarantined", "labels")
_PER_MODEL = ("state", "pred", "label", "waiting", "joined")


def recorded_partitions(client, keys: AppKeys) -> int | None:
    """The partition count the app's keys are laid out for, or None when no worker recorded one."""
    raw = client.get(keys.layout)
    if raw is None:
        return None
    record = orjson.loads(raw)
    return int(record["partitions"]) if record.get("layout") == 3 else None


def prepare(client, keys: AppKeys, wait_s: float = WAIT_S) -> int:
    """Make sure the app's keys are laid out for ``keys.partitions``; the number of keys and fields moved.
    ServiceUnavailable when another worker has held the lock past ``wait_s`` (this worker then exits, and its
    supervisor starts it again)."""
    deadline = time.monotonic() + wait_s
    lock = _Lock(client, keys)
    logged = None
    while True:
        if recorded_partitions(client, keys) == keys.partitions:
            return 0
        if lock.take():
            try:
                moved = relocate(client, keys, lock.refresh)
                lock.refresh(force=True)  # still ours: no other mover has started meanwhile
                client.set(keys.layout, orjson.dumps({"layout": 3, "partitions": keys.partitions}))
            finally:
                lock.release()
            if moved:
                _log.warning("moved %d Redis keys and hash fields of app %r to key layout 3 for %d partitions",
                             moved, keys.app_id, keys.partitions)
            return moved
        if logged is None or time.monotonic() - logged >= WAIT_LOG_S:
            logged = time.monotonic()
            _log.warning("waiting for another worker to move the keys of app %r to key layout 3 for %d partitions "
                         "(lock %s, held by a worker for %s partitions, expires %d s after its last refresh)",
                         keys.app_id, keys.partitions, keys.relocating, _holder(client, keys), LOCK_TTL_S)
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"another worker has been moving the keys of app {keys.app_id!r} for "
                                     f"{wait_s:.0f}s (lock {keys.relocating}); wait for it, or delete that key if no "
                                     "worker runs")
        time.sleep(0.5)


def _holder(client, keys: AppKeys) -> str:
    """The partition count the lock's holder moves the keys for, as its token says ("?" when unknown)."""
    raw = client.get(keys.relocating)
    return "?" if raw is None else raw.decode(errors="replace").partition(":")[0][:10]


def _glob(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _app_keys(client, keys: AppKeys) -> list[bytes]:
    """Keys of layout 3 (``{driftline:{app}:p...``), then of layout 2 (``driftline:{app}:...``), on every master:
    layout 3's are moved first, so where both go to one place the layout-3 key (the newer) is the one kept."""
    found = list(client.scan_iter(match=f"{_glob('{' + keys.prefix + ':p')}*", count=1000))
    found += client.scan_iter(match=f"{_glob(keys.prefix)}:*", count=1000)
    return list(dict.fromkeys(found))


def _parse(keys: AppKeys, key: str) -> tuple[str | None, str] | None:
    """(the tag the key is under or None for layout 2, the rest of the key), or None for a key that never moves
    (profiles, the layout record, the lock)."""
    tag_prefix = "{" + keys.prefix + ":p"
    if key.startswith(tag_prefix):
        tag, _, rest = key.partition("}:")
        return tag + "}", rest
    rest = key[len(keys.prefix) + 1:]
    kind = rest.partition(":")[0]
    if kind in _HASHES or kind in _PER_MODEL or kind == "quarantine":
        return None, rest
    return None


def relocate(client, keys: AppKeys, refresh: Callable[[], None] = lambda: None) -> int:
    """Move every key of the app to where layout 3 puts it for ``keys.partitions``; the number moved.
    ``refresh`` is called as keys and fields move (it keeps the mover's lock)."""
    moved = 0
    referenced: dict[tuple[str, str], set[str]] = {}  # (record kind, digest) -> tags of the models referring to it
    records: list[tuple[str, str, str]] = []          # (key, record kind, digest) of quarantine records
    for raw_key in _app_keys(client, keys):
        refresh()
        key = raw_key.decode()
        parsed = _parse(keys, key)
        if parsed is None:
            continue
        _tag, rest = parsed
        kind, _, tail = rest.partition(":")
        if kind in _HASHES:
            moved += _split_hash(client, keys, key, kind, referenced, refresh)
        elif kind in _PER_MODEL:
            model = unpart(tail.partition(":")[0])
            moved += _move_key(client, key, f"{keys.for_model(model).tag}:{rest}")
        elif kind == "quarantine":
            record, _, digest = tail.partition(":")
            records.append((key, unpart(record), digest))
    for key, record, digest in records:
        refresh()
        targets = referenced.get((record, digest), set())
        for tag in targets:
            target = f"{tag}:quarantine:{part(record)}:{digest}"
            if target != key:
                moved += _copy_key(client, key, target)
        if targets and not any(key.startswith(tag + ":") for tag in targets):
            client.delete(key)
    return moved


def _split_hash(client, keys: AppKeys, key: str, kind: str, referenced: dict, refresh: Callable[[], None]) -> int:
    """Each field of a per-partition hash to the hash of its partition: set there, then deleted here."""
    moved = 0
    for field_raw, value in client.hgetall(key).items():
        refresh()
        field = field_raw.decode()
        if kind == "offsets":
            target = keys.of(int(field.rpartition(":")[2]))
        elif kind == "labels":
            target = keys.for_model(field.rpartition(":")[0])
        else:
            model, _version = parse_member(field)
            target = keys.for_model(model)
            if kind == "quarantined":
                entry = orjson.loads(value)
                referenced.setdefault((entry["record"], entry["sha256"]), set()).add(target.tag)
        destination = getattr(target, {"labels": "label_counts"}.get(kind, kind))
        if destination != key:
            if kind == "offsets":  # never lowered: the higher of the two offsets is kept
                present = client.hget(destination, field_raw)
                if present is None or int(present) < int(value):
                    client.hset(destination, field_raw, value)
            else:  # a field already there is newer than (or the same as) this one: kept
                client.hsetnx(destination, field_raw, value)
            client.hdel(key, field_raw)
            moved += 1
    return moved


def _copy_key(client, source: str, target: str) -> int:
    """``source`` copied to ``target`` unless ``target`` exists: a key already there is kept, never replaced."""
    if client.exists(target):
        return 0
    dumped = client.dump(source)
    if dumped is None:
        return 0
    ttl = client.pttl(source)
    client.restore(target, max(ttl, 0), dumped)
    return 1


def _move_key(client, source: str, target: str) -> int:
    if source == target:
        return 0
    moved = _copy_key(client, source, target)
    client.delete(source)
    return moved
