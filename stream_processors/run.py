"""Start a worker: check the services, create the topics, run the faust app."""

from __future__ import annotations

import gc
import logging

from producers.topics import KafkaUnreachable, ensure_topics
from stream_processors.errors import ServiceUnavailable
from stream_processors.settings import Settings
from stream_processors.state import RedisStateStore

__all__ = ["run_worker"]


def run_worker(settings: Settings) -> int:
    try:
        RedisStateStore(settings.redis_url, settings.app_id).ping()
    except ServiceUnavailable:
        raise ServiceUnavailable(f"Redis is unreachable at {settings.redis_url}; start it with 'make stack-up' "
                                 "or set DRIFTLINE_REDIS_URL") from None
    try:
        ensure_topics(settings.kafka_bootstrap, [settings.inference_topic, settings.label_topic,
                                                 settings.control_topic, settings.dead_letter_topic],
                      settings.topic_partitions, timeout_s=10)
    except KafkaUnreachable as exc:
        raise ServiceUnavailable(str(exc)) from None

    from stream_processors.profiles import restore_profiles

    restored = restore_profiles(settings)
    if restored:
        logging.getLogger("driftline").warning("restored %d reference profiles from %s into Redis", restored,
                                               settings.profile_topic)

    import faust

    from stream_processors.kafka_tuning import limit_fetch_wait
    from stream_processors.worker import build_app

    limit_fetch_wait(settings.fetch_max_wait_ms)
    from prometheus_client import CollectorRegistry, start_http_server

    from stream_processors.metrics import RedisModelCollector, WorkerMetrics

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_feature_series=settings.max_feature_series)
    registry.register(RedisModelCollector(RedisStateStore(settings.redis_url, settings.app_id)))
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
        except OSError as exc:
            raise ServiceUnavailable(f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} "
                                     f"({exc.strerror}); choose another with --metrics-port or "
                                     "DRIFTLINE_METRICS_PORT (0 turns metrics off)") from None
    app = build_app(settings, metrics)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    logging.getLogger("driftline").setLevel(settings.log_level.upper())
    gc.freeze()  # the modules and app built so far live for good: the collector need not rescan them
    worker.execute_from_commandline()
    return 0
