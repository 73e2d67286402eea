"""Keys in the place key layout 3 gives them for the topics' partition count, before a worker applies anything.

A worker learns the partition count P of its topics from Kafka and calls :func:`prepare`. When the ``layout``
key already says (3, P) that is one GET. Otherwise — state of layout 2 (one Redis, no hash tags), or of layout 3
for another P (the topics' partitions were raised) — one worker takes the ``relocating`` lock and moves every
key of the app to where layout 3 puts it for P, then records (3, P); the other workers wait for the record.

Moving is idempotent, so a worker that dies half-way leaves a state the next one finishes: a key is copied
(DUMP/RESTORE with its TTL) before its old copy is deleted, a hash field is set under its new key before it is
deleted from the old one, and the record is written last. What is already at the destination wins: a key or a
hash field there is kept and the source dropped, and an offset there is never lowered (the higher of the two
is kept). So a stray older key (say, one a layout-2 worker wrote after the move: layout-2 workers must be
stopped before layout-3 workers start; a rolling upgrade across the layout change is not supported) can never
rewind an offset or overwrite newer state at a later partition raise. Nothing is dropped: a key this module cannot place
(say, a quarantined record no model refers to) stays where it was. Finding the keys is a SCAN of the app's
keys on every master: done once per change of layout, never on the path of a batch or of ``status``.

What moves when P changes: each model whose ``partition_for(model, P)`` changed takes its state, summary,
kept predictions, waiting labels, label counts and quarantine records to its new partition's tag. Offsets do
not move (partition n's offsets stay with partition n). Profiles are untagged and never move.
"""

from __future__ import annotations

import logging
import time

import orjson

from stream_processors.errors import ServiceUnavailable
from stream_processors.state.keys import AppKeys, parse_member, part, unpart

__all__ = ["prepare", "recorded_partitions", "relocate"]

_log = logging.getLogger(__name__)
LOCK_TTL_S = 600
_HASHES = ("offsets", "models", "quarantined", "labels")
_PER_MODEL = ("state", "pred", "label", "waiting")


def recorded_partitions(client, keys: AppKeys) -> int | None:
    """The partition count the app's keys are laid out for, or None when no worker recorded one."""
    raw = client.get(keys.layout)
    if raw is None:
        return None
    record = orjson.loads(raw)
    return int(record["partitions"]) if record.get("layout") == 3 else None


def prepare(client, keys: AppKeys, wait_s: float = LOCK_TTL_S) -> int:
    """Make sure the app's keys are laid out for ``keys.partitions``; the number of keys and fields moved.
    ServiceUnavailable when another worker has held the lock past ``wait_s`` (this worker then exits, and its
    supervisor starts it again)."""
    deadline = time.monotonic() + wait_s
    while True:
        if recorded_partitions(client, keys) == keys.partitions:
            return 0
        if client.set(keys.relocating, str(keys.partitions), nx=True, ex=LOCK_TTL_S):
            try:
                moved = relocate(client, keys)
                client.set(keys.layout, orjson.dumps({"layout": 3, "partitions": keys.partitions}))
            finally:
                client.delete(keys.relocating)
            if moved:
                _log.warning("moved %d Redis keys and hash fields of app %r to key layout 3 for %d partitions",
                             moved, keys.app_id, keys.partitions)
            return moved
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"another worker has been moving the keys of app {keys.app_id!r} for "
                                     f"{wait_s:.0f}s (lock {keys.relocating}); wait for it, or delete that key if no "
                                     "worker runs")
        time.sleep(0.5)


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


def relocate(client, keys: AppKeys) -> int:
    """Move every key of the app to where layout 3 puts it for ``keys.partitions``; the number moved."""
    moved = 0
    referenced: dict[tuple[str, str], set[str]] = {}  # (record kind, digest) -> tags of the models referring to it
    records: list[tuple[str, str, str]] = []          # (key, record kind, digest) of quarantine records
    for raw_key in _app_keys(client, keys):
        key = raw_key.decode()
        parsed = _parse(keys, key)
        if parsed is None:
            continue
        _tag, rest = parsed
        kind, _, tail = rest.partition(":")
        if kind in _HASHES:
            moved += _split_hash(client, keys, key, kind, referenced)
        elif kind in _PER_MODEL:
            model = unpart(tail.partition(":")[0])
            moved += _move_key(client, key, f"{keys.for_model(model).tag}:{rest}")
        elif kind == "quarantine":
            record, _, digest = tail.partition(":")
            records.append((key, unpart(record), digest))
    for key, record, digest in records:
        targets = referenced.get((record, digest), set())
        for tag in targets:
            target = f"{tag}:quarantine:{part(record)}:{digest}"
            if target != key:
                moved += _copy_key(client, key, target)
        if targets and not any(key.startswith(tag + ":") for tag in targets):
            client.delete(key)
    return moved


def _split_hash(client, keys: AppKeys, key: str, kind: str, referenced: dict) -> int:
    """Each field of a per-partition hash to the hash of its partition: set there, then deleted here."""
    moved = 0
    for field_raw, value in client.hgetall(key).items():
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
