"""A worker's Prometheus metrics: declared here, in one registry per process.

Labels are bounded: model, model_version, feature, detector, type, severity,
reason (a fixed set), topic and partition. Never event ids. Per-feature series
are capped per model version (``max_feature_series``); features past the cap
are not exported and are counted in ``driftline_metric_series_dropped_total``. Model versions are capped
per worker too (``max_model_series``): counters of versions past the cap go to the ``__other__`` label,
their gauges are not exported (counted in ``driftline_metric_series_dropped_total{model="__other__"}``);
model names in alert counters are capped the same way, whether or not the model has state.
``driftline_bounds_hit_total{bound}`` counts events dead-lettered by a bound (``stream_processors.bounds``).

The per-model gauges (events, last update, decision, drift statistics, performance) are what this worker
itself applied, kept in memory by ``AppliedModels`` for the model versions of the partitions it owns and
dropped when a rebalance moves their partition away. A scrape reads no Redis: its cost grows with the
models this worker owns (at most ``max_model_series``), not with all the models in Redis. Across workers,
each model version is exported by the worker that owns its partition (``max by (model, model_version)``
covers the moment of a handover, when two workers may both show it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from producers.events import BOUND_CODES
from stream_processors.batch import BatchOutcome

__all__ = ["METRIC_NAMES", "OTHER", "AppliedModels", "WorkerMetrics", "decision_of"]

OTHER = "__other__"
"""The model and version label of the series of model versions past ``max_model_series``."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass
class _Applied:
    """What this worker last applied for one model version (the source of its gauges)."""

    partition: int | None
    events: int | None = None
    updated: float | None = None
    decision: str | None = None
    statistics: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    drifting: dict[str, bool] = field(default_factory=dict)
    performance: dict[tuple[str, str], float] = field(default_factory=dict)
    bounds: dict[str, float] = field(default_factory=dict)
    improvement: dict[tuple[str, str], float] = field(default_factory=dict)


class AppliedModels:
    """Per-model gauges computed at scrape time from what this worker applied, capped and forgettable.

    A custom collector rather than labelled ``Gauge`` objects so that forgetting a model version (its
    partition moved to another worker) is one dictionary delete, and a scrape walks only these entries.
    """

    def __init__(self, max_model_series: int, max_feature_series: int) -> None:
        self.max_model_series = max_model_series
        self.max_feature_series = max_feature_series
        self.models: dict[tuple[str, str], _Applied] = {}
        # versions exported as saved (``WorkerMetrics.seed``) and not applied here since, most recently updated
        # first: a version this worker applies takes the slot of the last of them when there is no free one
        self.seeded: dict[tuple[str, str], None] = {}
        self._owned: set[int] | None = None  # None until the first assignment (tests, single process)

    def owns(self, partition: int | None) -> bool:
        """False for a partition this worker no longer owns (a batch saved while it was being revoked)."""
        return partition is None or self._owned is None or partition in self._owned

    def entry(self, key: tuple[str, str], partition: int | None, seed: bool = False) -> _Applied | None:
        """The entry of a model version, made if there is room (for a version being applied, room made by
        dropping a seeded one, the least recently updated); None past ``max_model_series``."""
        applied = self.models.get(key)
        if applied is None:
            if len(self.models) >= self.max_model_series:
                if seed or not self.seeded:
                    return None
                del self.models[self.seeded.popitem()[0]]
            applied = self.models[key] = _Applied(partition)
            if seed:
                self.seeded[key] = None
        elif partition is not None:
            applied.partition = partition
        if not seed:
            self.seeded.pop(key, None)
        return applied

    def feature_allowed(self, applied: _Applied, feature: str) -> bool:
        known = applied.drifting.keys() | {f for f, _d in applied.statistics}
        return feature in known or len(known) < self.max_feature_series

    def own(self, partitions: set[int]) -> int:
        """Keep only the model versions of ``partitions`` (those of unknown partition go too: their next
        batch brings them back); returns how many were dropped."""
        self._owned = set(partitions)
        gone = [k for k, a in self.models.items() if a.partition not in self._owned]
        for key in gone:
            del self.models[key]
            self.seeded.pop(key, None)
        return len(gone)

    def collect(self):
        mv = ["model", "model_version"]
        events = GaugeMetricFamily("driftline_model_events", "Events applied to a model version since it was "
                                   "first seen (the count saved in its state, the same number as `driftline "
                                   "status`), as of this worker's last save; exported by the worker that owns "
                                   "the model's partition.", labels=mv)
        updated = GaugeMetricFamily("driftline_model_last_update_timestamp_seconds", "When a model version's "
                                    "state was last saved (by this worker, or as read from Redis when this worker "
                                    "took its partition).", labels=mv)
        decision = GaugeMetricFamily("driftline_model_decision", "What Driftline decides for a model version: "
                                     "1 retrain, 0 continue (the retrain policy's verdict at this worker's last "
                                     "save; `driftline status` says why).", labels=mv)
        fd = mv + ["feature", "detector"]
        statistic = GaugeMetricFamily("driftline_drift_statistic", "Latest value of a detector's decision "
                                      "statistic (higher is more drifted; window tests: -log10 p-value).",
                                      labels=fd)
        threshold = GaugeMetricFamily("driftline_drift_threshold", "What driftline_drift_statistic is compared "
                                      "with.", labels=fd)
        drifting = GaugeMetricFamily("driftline_feature_drifting", "1 while a feature's drift episode is open "
                                     "(from its firing to its resolved message), else 0.", labels=mv + ["feature"])
        performance = GaugeMetricFamily("driftline_model_performance", "A model version's performance on the "
                                        "latest window: kind is realized (from labels) or estimated (from "
                                        "scores).", labels=mv + ["metric", "kind"])
        bound = GaugeMetricFamily("driftline_model_performance_bound", "The bound below which a performance "
                                  "metric raises an alert.", labels=mv + ["metric"])
        improvement = GaugeMetricFamily("driftline_model_performance_improvement_bound", "Past this bound "
                                        "(accuracy above, MAE below) the latest window is better than the "
                                        "baseline: an improvement, shown in status, never alerted.",
                                        labels=mv + ["metric", "kind"])
        for (model, version), a in list(self.models.items()):
            labels = [model, version]
            if a.events is not None:
                events.add_metric(labels, a.events)
                updated.add_metric(labels, a.updated)
            if a.decision is not None:
                decision.add_metric(labels, 1.0 if a.decision == "retrain" else 0.0)
            for (feature, detector), (value, limit) in a.statistics.items():
                statistic.add_metric(labels + [feature, detector], value)
                threshold.add_metric(labels + [feature, detector], limit)
            for feature, flag in a.drifting.items():
                drifting.add_metric(labels + [feature], 1.0 if flag else 0.0)
            for (metric, kind), value in a.performance.items():
                performance.add_metric(labels + [metric, kind], value)
            for metric, value in a.bounds.items():
                bound.add_metric(labels + [metric], value)
            for (metric, kind), value in a.improvement.items():
                improvement.add_metric(labels + [metric, kind], value)
        yield from (events, updated, decision, statistic, threshold, drifting, performance, bound, improvement)

    def describe(self):
        return []


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry, max_feature_series: int = 100,
                 max_model_series: int = 1000) -> None:
        self.registry = registry
        self.max_feature_series = max_feature_series
        self.max_model_series = max_model_series
        # model versions with their own counter labels, with their partition (None: not known); those of
        # partitions this worker no longer owns keep their series until their slot is needed by another model
        self._counted: dict[tuple[str, str], int | None] = {}
        self._released: dict[tuple[str, str], None] = {}  # of those, the ones of revoked partitions, oldest first
        # model names with their own alert counter labels, with their partition (None: not known); those of
        # partitions this worker no longer owns give their slot up, oldest first, when a model needs one
        self._named: dict[str, int | None] = {}
        self._alerting: set[str] = set()  # the models of the alerts being counted
        self._lag_series: set[tuple[str, int]] = set()  # (topic, partition) of the consumer lag series exported
        self.applied = AppliedModels(max_model_series, max_feature_series)
        r = registry
        r.register(self.applied)
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
        self.dropped_series = Counter("driftline_metric_series_dropped", "Per-model series not exported: the "
                                      "model version has more features than max_feature_series (label: the "
                                      "model), or is past max_model_series (label: __other__).",
                                      ["model"], registry=r)
        self.bounds_hit = Counter("driftline_bounds_hit", "Events dead-lettered because they were past a bound "
                                  "(see README, Limits).", ["bound"], registry=r)
        for bound in BOUND_CODES:
            self.bounds_hit.labels(bound)

    def _model_labels(self, model: str, version: str, partition: int | None = None) -> tuple[str, str]:
        """The labels of a model version's counters: its own, or ``__other__`` past ``max_model_series`` (a
        version of a revoked partition gives its slot up, and its series, to a version without one)."""
        key = (model, version)
        if key not in self._counted:
            if len(self._counted) >= self.max_model_series and not self._release_one():
                return OTHER, OTHER
            self._counted[key] = partition
        elif partition is not None:
            self._counted[key] = partition
        if partition is not None and not self.applied.owns(partition):
            self._released[key] = None
        elif partition is not None:
            self._released.pop(key, None)
        return key

    def _release_one(self) -> bool:
        """Free the slot of the oldest version released (its partition revoked): its series go."""
        if not self._released:
            return False
        key = next(iter(self._released))
        del self._released[key], self._counted[key]
        _remove(self.events, *key)
        if not any(m == key[0] for m, _v in self._counted):  # the per-model series of its last version
            _remove(self.event_lag, key[0])
            _remove(self.dropped_series, key[0])
        return True

    def _model_label(self, model: str, partition: int | None = None) -> str:
        """A model name as an alert counter's label; bounded even for models that never had state. Past
        ``max_model_series``, the slot of a model whose partition went to another worker (which counts its
        alerts from then on) is freed, its alert series removed, for this one; without such a slot, ``__other__``.
        """
        named = self._named
        if model in named:
            if partition is not None:
                named[model] = partition
            return model
        if len(named) >= self.max_model_series:
            owns = self.applied.owns
            busy = self._alerting
            freed = next((m for m, p in named.items() if p is not None and not owns(p) and m not in busy), None)
            if freed is None:
                return OTHER
            del named[freed]
            for counter in (self.alerts, self.resolved, self.triggers):
                for labels in [k for k in list(counter._metrics) if k[0] == freed]:
                    _remove(counter, *labels)
        named[model] = partition
        return model

    def owned_partitions(self, partitions: set[int], assigned: set[tuple[str, int]] | None = None) -> None:
        """A rebalance assigned ``partitions`` (of the inference topic): the gauges of models on other partitions
        are dropped, and the consumer lag of every partition not in ``assigned`` (topic, partition) - without
        it, of every partition not in ``partitions`` - so that only a partition's owner exports its lag."""
        self.applied.own(partitions)
        for key, partition in self._counted.items():
            if partition is not None and partition not in partitions:
                self._released.setdefault(key, None)
            elif partition is not None:
                self._released.pop(key, None)
        if assigned is None:
            assigned = {(topic, p) for topic, p in self._lag_series if p in partitions}
        for topic, partition in self._lag_series - assigned:
                self.consumer_lag.remove(topic, str(partition))
                self._lag_series.discard((topic, partition))

    def observe(self, outcome: BatchOutcome, seconds: float, now: float | None = None,
                partitions: dict[str, int] | None = None) -> None:
        """Count a saved batch; ``partitions`` gives each model's partition (from the message keys)."""
        now = time.time() if now is None else now
        partitions = partitions or {}
        self.batches.inc()
        self.batch_seconds.observe(seconds)
        self.redelivered.inc(outcome.skipped_messages)
        self.last_save.set(now)
        self.observe_models(outcome, now, partitions)

    def observe_models(self, outcome: BatchOutcome, now: float | None = None,
                       partitions: dict[str, int] | None = None) -> None:
        """The per-model part of ``observe``: also for the part of a batch saved before a conflict (the redo
        skips it, so it is counted here once)."""
        now = time.time() if now is None else now
        partitions = partitions or {}
        for key, n in outcome.events_by_model.items():
            self.events.labels(*self._model_labels(*key, partitions.get(key[0]))).inc(n)
        for key, newest in outcome.newest_event_time.items():
            model = self._model_labels(*key, partitions.get(key[0]))[0]
            self.event_lag.labels(model).observe(max(0.0, now - newest))
        for reason, n in outcome.rejected_by_reason.items():
            self.rejected.labels(reason).inc(n)
            if reason in BOUND_CODES:
                self.bounds_hit.labels(reason).inc(n)
        for q in outcome.quarantined:
            self.quarantined.labels(q.kind).inc()
        # a model counted in this batch keeps its slot through the batch (else a batch saved while its partition
        # was revoked could count an alert, then drop its series for another model's)
        self._alerting = {alert["model"] or "" for alert in outcome.alerts}
        for alert in outcome.alerts:
            model = self._model_label(alert["model"] or "", partitions.get(alert["model"] or ""))
            if alert.get("status") == "resolved":
                self.resolved.labels(model, alert["type"]).inc()
                continue
            self.alerts.labels(model, alert["type"], alert["severity"]).inc()
            if alert["type"] == "retrain":
                self.triggers.labels(model).inc()
        touched = {**outcome.events_total, **outcome.readings, **outcome.drifting, **outcome.performance}
        for key in touched:
            partition = partitions.get(key[0])
            if not self.applied.owns(partition):
                continue
            applied = self.applied.entry(key, partition)
            if applied is None:
                self.dropped_series.labels(OTHER).inc()
                continue
            self._record(applied, key, outcome, now)

    def _record(self, applied: _Applied, key: tuple[str, str], outcome: BatchOutcome, now: float) -> None:
        if key in outcome.events_total:
            applied.events = outcome.events_total[key]
            applied.updated = now
        applied.decision = outcome.decisions.get(key, applied.decision)
        for metric, kind, value, bound, better in outcome.performance.get(key, ()):
            applied.performance[(metric, kind)] = value
            if bound is not None:
                applied.bounds[metric] = bound
            if better is not None:
                applied.improvement[(metric, kind)] = better
        allowed = self.applied.feature_allowed
        for feature, detector, statistic, threshold in outcome.readings.get(key, ()):
            if allowed(applied, feature):
                applied.statistics[(feature, detector)] = (statistic, threshold)
            else:
                self.dropped_series.labels(self._model_labels(*key)[0]).inc()
        for feature, flag in outcome.drifting.get(key, {}).items():
            if allowed(applied, feature):
                applied.drifting[feature] = flag
            else:
                self.dropped_series.labels(self._model_labels(*key)[0]).inc()

    def seed(self, summaries: dict[tuple[str, str], dict], partition_of) -> int:
        """After an assignment: the events and last update of the owned partitions' model versions, as saved
        (``StateStore.summaries_of``) with their decision, for those this worker has applied nothing of yet, so
        that a model without traffic is exported from the start and not only after its next event (its drift and
        performance gauges come with that event). Most recently updated first, in the free slots of
        ``max_model_series``: a version applied later takes a seeded one's slot when none is free. Returns how
        many."""
        seeded = 0
        for key, summary in sorted(summaries.items(), key=lambda kv: (-kv[1]["updated"], kv[0])):
            partition = partition_of(key[0])
            if not self.applied.owns(partition) or key in self.applied.models:
                continue
            applied = self.applied.entry(key, partition, seed=True)
            if applied is None:
                break
            applied.events, applied.updated = summary["events"], summary["updated"]
            applied.decision = summary.get("decision")
            seeded += 1
        return seeded

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(topic, str(partition)).set(max(0, lag))
        self._lag_series.add((topic, partition))


def _remove(metric, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:  # never exported
        pass


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
