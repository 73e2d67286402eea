"""Where model state, offsets and the label join's records live: Redis, or memory in tests."""

from stream_processors.state.redis_store import (MemoryStateStore, Quarantine, RedisStateStore, StateCommit,
                                                 StateStore, TopicPartition, profile_key)

__all__ = ["MemoryStateStore", "Quarantine", "RedisStateStore", "StateCommit", "StateStore", "TopicPartition",
           "profile_key"]
