"""The Prometheus metrics of ``driftline ingest``, in one registry per process.

Labels are bounded: route (the fixed routes), status, kind, half, reason (``errors.REASONS``). Never
model names from requests, ids or tokens.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["IngestMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = self.registry = registry
        self.requests = Counter("driftline_ingest_requests", "HTTP requests answered.", ["route", "status"],
                                registry=r)
        self.latency = Histogram("driftline_ingest_request_seconds", "Time from request to answer, including "
                                 "the wait for Kafka's delivery report.", ["route"], buckets=_LATENCY_BUCKETS,
                                 registry=r)
        self.events = Counter("driftline_ingest_events", "Events acknowledged by Kafka.", ["kind"], registry=r)
        self.rejections = Counter("driftline_ingest_rejections", "Requests refused, by reason.", ["reason"],
                                  registry=r)
        self.unpaired = Counter("driftline_ingest_unpaired_cloudevents", "CloudEvent halves whose partner did not "
                                "arrive within the wait, that were pushed out of a full table, or that a resend of "
                                "the same half replaced; not sent.", ["half"], registry=r)
        self.waiting = Gauge("driftline_ingest_waiting_cloudevents", "CloudEvent halves waiting for their partner.",
                             ["half"], registry=r)
        self.waiting_bytes = Gauge("driftline_ingest_waiting_cloudevent_bytes", "Bytes (of their HTTP bodies) "
                                   "of the CloudEvent halves waiting for their partner.", registry=r)
        self.pending = Gauge("driftline_ingest_pending_events", "Events accepted and not yet confirmed by Kafka.",
                             registry=r)
        self.delivery_failures = Counter("driftline_ingest_delivery_failed_events", "Events Kafka reported "
                                         "undeliverable after its retries (their requests were not answered 2xx).",
                                         registry=r)
        self.kafka_ready = Gauge("driftline_ingest_kafka_ready", "1 while a Kafka broker answers, else 0.",
                                 registry=r)
