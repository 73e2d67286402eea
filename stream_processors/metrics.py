"""A worker's Prometheus metrics: declared here, in one registry per process.

Labels are bounded: model, model_version, feature, detector, type, severity,
reason (a fixed set), topic and partition. Never event ids. Per-feature series
are capped per model version (``max_feature_series``); features past the cap
are not exported and are counted in ``driftline_metric_series_dropped_total``. Model versions are capped
per worker too (``max_model_series``): counters of versions past the cap go to the ``__other__`` label,
their gauges are not exported (counted in ``driftline_metric_series_dropped_total{model="__other__"}``).
``driftline_bounds_hit_total{bound}`` counts events dead-lettered by a bound (``stream_processors.bounds``).
Values that live in Redis (every model's event count and last update, whoever
processed it) are read at scrape time by ``RedisModelCollector``.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from producers.events import BOUND_CODES
from stream_processors.batch import BatchOutcome

__all__ = ["METRIC_NAMES", "OTHER", "RedisModelCollector", "WorkerMetrics", "decision_of"]

OTHER = "__other__"
"""The model and version label of the series of model versions past ``max_model_series``."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry, max_feature_series: int = 100,
                 max_model_series: int = 1000) -> None:
        self.registry = registry
        self.max_feature_series = max_feature_series
        self.max_model_series = max_model_series
        self._models: set[tuple[str, str]] = set()
        self._features: dict[tuple[str, str], set[str]] = {}
        r = registry
        self.events = Counter("driftline_events_processed", "Valid inference events applied to state.",
                              ["model", "model_version"], registry=r)
        self.rejected = Counter("driftline_events_rejected", "Events or messages sent to the dead-letter topic.",
                                ["reason"], registry=r)
        self.batches = Counter("driftline_batches", "Batches of messages processed and saved.", registry=r)
        self.redelivered = Counter("driftline_messages_skipped", "Messages already applied before (redelivered "
                                   "after a restart) and skipped.", registry=r)
        self.batch_seconds = Histogram("driftline_batch_processing_seconds", "Time to process, publish and save "
                                       "one batch.", buckets=_LATENCY_BUCKETS, registry=r)
        self.event_lag = Histogram("driftline_event_lag_seconds", "Event timestamp to processing, sampled with "
                                   "the newest event of each model version in a batch.",
                                   ["model"], buckets=_LAG_BUCKETS, registry=r)
        self.consumer_lag = Gauge("driftline_consumer_lag_messages", "Messages in the partition not yet "
                                  "processed by this worker.", ["topic", "partition"], registry=r)
        self.statistic = Gauge("driftline_drift_statistic", "Latest value of a detector's decision statistic "
                               "(higher is more drifted; window tests: -log10 p-value).",
                               ["model", "model_version", "feature", "detector"], registry=r)
        self.threshold = Gauge("driftline_drift_threshold", "What driftline_drift_statistic is compared with.",
                               ["model", "model_version", "feature", "detector"], registry=r)
        self.drifting = Gauge("driftline_feature_drifting", "1 while a feature's drift episode is open (from its "
                              "firing to its resolved message), else 0.",
                              ["model", "model_version", "feature"], registry=r)
        self.alerts = Counter("driftline_alerts_published", "Alerts published on the control topic (firings: "
                              "each opens an episode).", ["model", "type", "severity"], registry=r)
        self.resolved = Counter("driftline_alerts_resolved", "Episodes closed with a resolved message on the "
                                "control topic.", ["model", "type"], registry=r)
        self.triggers = Counter("driftline_triggers_published", "Retrain triggers published on the control topic.",
                                ["model"], registry=r)
        self.redis_errors = Counter("driftline_redis_errors", "Failed Redis operations (the batch is retried).",
                                    registry=r)
        self.kafka_errors = Counter("driftline_kafka_errors", "Failed Kafka publishes (the batch is retried).",
                                    registry=r)
        self.conflicts = Counter("driftline_state_conflicts", "Batches redone because another worker had "
                                 "advanced the same partitions meanwhile.", registry=r)
        self.quarantined = Counter("driftline_state_quarantined", "Saved states or profiles that could not be "
                                   "loaded and were quarantined (the version started afresh).", ["record"],
                                   registry=r)
        self.state_lost = Counter("driftline_state_lost", "Partitions consumed before (per Kafka) for which Redis "
                                  "held no offset: their models' state was lost.", registry=r)
        self.rewound = Counter("driftline_offsets_rewound", "Partitions whose Kafka committed offset was ahead of "
                               "the offset saved in Redis; the worker went back to Redis's.", registry=r)
        self.last_save = Gauge("driftline_last_state_save_timestamp_seconds", "When this worker last saved state "
                               "to Redis.", registry=r)
        self.performance = Gauge("driftline_model_performance", "A model version's performance on the latest "
                                 "window: kind is realized (from labels) or estimated (from scores).",
                                 ["model", "model_version", "metric", "kind"], registry=r)
        self.performance_bound = Gauge("driftline_model_performance_bound", "The bound below which a performance "
                                       "metric raises an alert.", ["model", "model_version", "metric"], registry=r)
        self.improvement_bound = Gauge("driftline_model_performance_improvement_bound", "Past this bound (accuracy "
                                       "above, MAE below) the latest window is better than the baseline: an "
                                       "improvement, shown in status, never alerted.",
                                       ["model", "model_version", "metric", "kind"], registry=r)
        self.dropped_series = Counter("driftline_metric_series_dropped", "Per-feature series not exported: the "
                                      "model version has more features than max_feature_series.",
                                      ["model"], registry=r)
        self.bounds_hit = Counter("driftline_bounds_hit", "Events dead-lettered because they were past a bound "
                                  "(see README, Limits).", ["bound"], registry=r)
        for bound in BOUND_CODES:
            self.bounds_hit.labels(bound)

    def _model_labels(self, model: str, version: str) -> tuple[str, str] | None:
        """The labels of a model version's series, or None past ``max_model_series`` (then ``__other__``)."""
        key = (model, version)
        if key in self._models:
            return key
        if len(self._models) < self.max_model_series:
            self._models.add(key)
            return key
        return None

    def _model_label(self, model: str) -> str:
        return model if any(m == model for m, _v in self._models) or \
            len(self._models) < self.max_model_series else OTHER

    def _exported(self, model: str, version: str, feature: str) -> bool:
        if self._model_labels(model, version) is None:
            self.dropped_series.labels(OTHER).inc()
            return False
        allowed = self._features.setdefault((model, version), set())
        if feature in allowed:
            return True
        if len(allowed) < self.max_feature_series:
            allowed.add(feature)
            return True
        self.dropped_series.labels(model).inc()
        return False

    def observe(self, outcome: BatchOutcome, seconds: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.batches.inc()
        self.batch_seconds.observe(seconds)
        self.redelivered.inc(outcome.skipped_messages)
        self.last_save.set(now)
        for (model, version), n in outcome.events_by_model.items():
            self.events.labels(*(self._model_labels(model, version) or (OTHER, OTHER))).inc(n)
        for (model, version), newest in outcome.newest_event_time.items():
            labels = self._model_labels(model, version)
            self.event_lag.labels(OTHER if labels is None else model).observe(max(0.0, now - newest))
        for reason, n in outcome.rejected_by_reason.items():
            self.rejected.labels(reason).inc(n)
            if reason in BOUND_CODES:
                self.bounds_hit.labels(reason).inc(n)
        for q in outcome.quarantined:
            self.quarantined.labels(q.kind).inc()
        for alert in outcome.alerts:
            model = self._model_label(alert["model"] or "")
            if alert.get("status") == "resolved":
                self.resolved.labels(model, alert["type"]).inc()
                continue
            self.alerts.labels(model, alert["type"], alert["severity"]).inc()
            if alert["type"] == "retrain":
                self.triggers.labels(model).inc()
        for (model, version), readings in outcome.performance.items():
            if self._model_labels(model, version) is None:
                continue
            for metric, kind, value, bound, better in readings:
                self.performance.labels(model, version, metric, kind).set(value)
                if bound is not None:
                    self.performance_bound.labels(model, version, metric).set(bound)
                if better is not None:
                    self.improvement_bound.labels(model, version, metric, kind).set(better)
        for (model, version), readings in outcome.readings.items():
            for feature, detector, statistic, threshold in readings:
                if self._exported(model, version, feature):
                    self.statistic.labels(model, version, feature, detector).set(statistic)
                    self.threshold.labels(model, version, feature, detector).set(threshold)
        for (model, version), drifting in outcome.drifting.items():
            for feature, flag in drifting.items():
                if self._exported(model, version, feature):
                    self.drifting.labels(model, version, feature).set(1 if flag else 0)

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(topic, str(partition)).set(max(0, lag))


class RedisModelCollector:
    """Model versions' event counts, last updates and decisions, read from Redis when Prometheus scrapes: the
    ``max_model_series`` most recently updated versions.

    The decision (``driftline_model_decision``: 0 continue, 1 retrain) is the retrain policy's verdict saved
    in the version's state; it is exported for the same model versions as ``driftline_model_events``, so it
    adds no label values of its own.
    """

    def __init__(self, store, max_model_series: int = 1000) -> None:
        self._store = store
        self.max_model_series = max_model_series

    def collect(self):
        events = GaugeMetricFamily("driftline_model_events", "Events applied for a model version, by all workers "
                                   "(the same number as `driftline status`).", labels=["model", "model_version"])
        updated = GaugeMetricFamily("driftline_model_last_update_timestamp_seconds", "When a model version's "
                                    "state was last saved, by any worker.", labels=["model", "model_version"])
        try:
            summaries = self._store.model_summaries()
        except Exception:  # a scrape must not fail because Redis is briefly away
            summaries = {}
        newest = sorted(summaries.items(), key=lambda item: -item[1]["updated"])[:self.max_model_series]
        for (model, version), summary in newest:
            events.add_metric([model, version], summary["events"])
            updated.add_metric([model, version], summary["updated"])
        yield events
        yield updated
        yield self._decisions([key for key, _summary in newest])

    def _decisions(self, models: list[tuple[str, str]]) -> GaugeMetricFamily:
        decision = GaugeMetricFamily("driftline_model_decision", "What Driftline decides for a model version: "
                                     "1 retrain, 0 continue (the retrain policy's current verdict; `driftline "
                                     "status` says why).", labels=["model", "model_version"])
        try:
            states = self._store.load(models) if models else {}
        except Exception:  # as above: a scrape never fails on Redis
            states = {}
        for (model, version), state in states.items():
            verdict = decision_of(state)
            if verdict is not None:
                decision.add_metric([model, version], 1.0 if verdict == "retrain" else 0.0)
        return decision

    def describe(self):
        return []


def decision_of(state: dict | bytes | None) -> str | None:
    """The verdict saved in a model state, without rebuilding its monitor (None if it has none)."""
    if not isinstance(state, dict):
        return None
    verdict = (state.get("policy") or {}).get("verdict") or {}
    return verdict.get("verdict") if verdict.get("verdict") in ("continue", "retrain") else None


METRIC_NAMES = frozenset({
    "driftline_events_processed_total", "driftline_events_rejected_total", "driftline_batches_total",
    "driftline_messages_skipped_total", "driftline_batch_processing_seconds", "driftline_event_lag_seconds",
    "driftline_consumer_lag_messages", "driftline_drift_statistic", "driftline_drift_threshold",
    "driftline_feature_drifting", "driftline_alerts_published_total", "driftline_alerts_resolved_total",
    "driftline_triggers_published_total",
    "driftline_redis_errors_total", "driftline_kafka_errors_total", "driftline_state_conflicts_total",
    "driftline_state_quarantined_total", "driftline_state_lost_total", "driftline_offsets_rewound_total",
    "driftline_last_state_save_timestamp_seconds", "driftline_metric_series_dropped_total",
    "driftline_model_events", "driftline_model_last_update_timestamp_seconds", "driftline_model_performance",
    "driftline_model_performance_bound", "driftline_model_performance_improvement_bound",
    "driftline_bounds_hit_total",
    "driftline_model_decision",
})
"""Every series name a worker exports (histograms also have _bucket, _sum and _count)."""
