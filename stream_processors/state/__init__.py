"""Where model state, offsets and the label join's records live: Redis, or memory in tests.

``store`` is the contract (in domain terms), ``keys`` every Redis key, ``memory`` and ``redis_store`` the
two implementations; ``redis_client`` gives a Redis client the store's timeouts (clients themselves are built
by ``config.RedisConnection.client``, the one place).
"""

from stream_processors.state.keys import AppKeys, profile_key, triggers_done_key, triggers_parked_key
from stream_processors.state.memory import MemoryStateStore
from stream_processors.state.redis_store import RedisStateStore, redis_client
from stream_processors.state.store import Quarantine, StateCommit, StateStore, TopicPartition

__all__ = ["AppKeys", "MemoryStateStore", "Quarantine", "RedisStateStore", "StateCommit", "StateStore",
           "TopicPartition", "profile_key", "redis_client", "triggers_done_key", "triggers_parked_key"]
