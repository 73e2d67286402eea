"""What ``driftline triggers`` remembers in Redis: triggers done (never run twice) and records parked."""

from __future__ import annotations

from stream_processors.config import RedisConnection
from stream_processors.errors import ServiceUnavailable
from stream_processors.state.keys import triggers_done_key, triggers_parked_key
from stream_processors.state.redis_store import REDIS_ERRORS, redis_client

__all__ = ["TriggerLedger"]


DEFAULT_TTL_S = 30 * 86400


class TriggerLedger:
    """The done-set and parked-set of one consumer group on one control topic (``state.keys``).

    Each set expires ``ttl_s`` after its last write (default 30 days), so a group that stopped leaves nothing
    behind for good; while triggers come, the sets stay.
    """

    def __init__(self, connection: RedisConnection, group: str, topic: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._connection = connection
        self.ttl_s = ttl_s
        self._redis = redis_client(connection, socket_timeout=30)
        self.done_key = triggers_done_key(group, topic)
        self.parked_key = triggers_parked_key(group, topic)

    def ping(self) -> None:
        """Raise ServiceUnavailable (RedisAuthFailed for refused credentials) unless Redis answers."""
        try:
            self._redis.ping()
        except REDIS_ERRORS as exc:
            raise self._connection.error(exc) from exc

    def is_done(self, trigger_id: str) -> bool:
        return bool(self._call(self._redis.sismember, self.done_key, trigger_id))

    def mark_done(self, trigger_id: str) -> None:
        self._add(self.done_key, trigger_id)

    def is_parked(self, position: str) -> bool:
        return bool(self._call(self._redis.sismember, self.parked_key, position))

    def park(self, position: str) -> None:
        self._add(self.parked_key, position)

    def _add(self, key: str, member: str) -> None:
        # one key per MULTI, as a cluster's transactions want (keys of one slot)
        pipe = self._redis.pipeline(transaction=True)
        pipe.sadd(key, member)
        pipe.expire(key, self.ttl_s)
        self._call(pipe.execute)

    @staticmethod
    def _call(method, *args):
        try:
            return method(*args)
        except REDIS_ERRORS as exc:
            raise ServiceUnavailable(f"Redis failed while handling triggers ({type(exc).__name__}); nothing more "
                                     "was committed, the current trigger is read again on restart") from None
