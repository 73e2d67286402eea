"""The secure Kafka and Redis and the Redis Cluster fixtures, for the tests in this folder (other tests may import them the same way)."""

from ..redis_cluster import redis_cluster, redis_cluster_with_replicas  # noqa: F401
from ..secure_services import secure_kafka, secure_redis, secure_stack  # noqa: F401
