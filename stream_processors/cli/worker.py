"""``driftline worker``: check the services, create the topics, run the faust app."""

from __future__ import annotations

import argparse
import gc
import logging

from producers.topics import ensure_topics
from stream_processors.cli.flags import ENV_HELP, connection_flags
from stream_processors.errors import ServiceUnavailable
from stream_processors.config import Settings
from stream_processors.state import RedisStateStore

__all__ = ["add_parser", "run", "run_worker"]


def run_worker(settings: Settings) -> int:
    RedisStateStore(settings.redis, settings.app_id).ping()
    ensure_topics(settings.kafka, [settings.inference_topic, settings.label_topic, settings.control_topic,
                                   settings.dead_letter_topic], settings.topic_partitions, timeout_s=10)

    from stream_processors.profile_registry import restore_profiles

    restored = restore_profiles(settings)
    if restored:
        logging.getLogger("driftline").warning("restored %d reference profiles from %s into Redis", restored,
                                               settings.profile_topic)

    import faust

    from stream_processors.faust_app.app import build_app
    from stream_processors.faust_app.tuning import exit_on_refused_login, limit_fetch_wait

    limit_fetch_wait(settings.fetch_max_wait_ms)
    exit_on_refused_login(settings.kafka.describe(), settings.secrets())
    from prometheus_client import CollectorRegistry, start_http_server

    from stream_processors.metrics import WorkerMetrics

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_feature_series=settings.max_feature_series,
                            max_model_series=settings.max_model_series)
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


def add_parser(sub) -> None:
    p = sub.add_parser("worker", help="run a stream processor (consume events, update state, publish alerts)",
                       description="Run one Driftline worker. Start several with the same --app-id to share "
                                   "the partitions. SIGTERM or Ctrl-C stops it cleanly; a killed worker "
                                   "resumes where its saved state ends.", epilog=ENV_HELP)
    connection_flags(p)
    p.add_argument("--inference-topic", metavar="T", help="topic of inference events (default driftline.inference)")
    p.add_argument("--control-topic", metavar="T", help="topic for alerts (default driftline.control)")
    p.add_argument("--dead-letter-topic", metavar="T", help="topic for rejected events (default "
                                                            "driftline.deadletter)")
    p.add_argument("--cooldown-events", type=int, metavar="N",
                   help="after an alert on a feature, further alerts on it wait this many events (default 5000)")
    p.add_argument("--max-message-bytes", type=int, metavar="N",
                   help="messages larger than this are dead-lettered (default 1048576)")
    p.add_argument("--metrics-port", type=int, metavar="N",
                   help="serve Prometheus metrics on this port (default 9464, DRIFTLINE_METRICS_PORT; 0: off)")
    p.add_argument("--metrics-host", metavar="H",
                   help="address for the metrics server (default 127.0.0.1, DRIFTLINE_METRICS_HOST; 0.0.0.0 "
                        "exposes it)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return run_worker(settings)
