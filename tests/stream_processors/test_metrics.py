import pytest
from prometheus_client import CollectorRegistry, generate_latest

from producers.events import encode_envelope
from producers.example_data import drifting_credit_data
from producers.replay import plan_columns, rows_to_events
from stream_processors.metrics import METRIC_NAMES, OTHER, WorkerMetrics
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings
from stream_processors.state import MemoryStateStore


def _messages(n=16000, batch=500):
    frame = drifting_credit_data(n=n, seed=6, shift_sigma=2.0)
    events, _ = rows_to_events(frame, plan_columns(frame), "credit")
    msgs = [IncomingMessage("t", 0, i, encode_envelope("credit", events[j:j + batch], "1"))
            for i, j in enumerate(range(0, n, batch))]
    return msgs + [IncomingMessage("t", 0, len(msgs), b"{broken")]


def _run(metrics, store):
    processor = BatchProcessor(Settings(), store)
    alerts = []
    for m in _messages():
        outcome = processor.process([m])
        assert store.commit(outcome)
        metrics.observe(outcome, 0.01, now=outcome.newest_event_time.get(("credit", "1"), 0) + 2.0)
        alerts += outcome.alerts
    return alerts


def test_counters_and_gauges_follow_the_outcomes():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    store = MemoryStateStore()
    alerts = _run(metrics, store)
    value = registry.get_sample_value
    assert value("driftline_events_processed_total", {"model": "credit", "model_version": "1"}) == 16000
    assert value("driftline_events_rejected_total", {"reason": "malformed_json"}) == 1
    assert value("driftline_batches_total") == 33
    assert value("driftline_batch_processing_seconds_count") == 33
    assert value("driftline_event_lag_seconds_sum", {"model": "credit"}) == 2.0 * 32
    published = sum(value("driftline_alerts_published_total", {"model": "credit", "type": t, "severity": s}) or 0
                    for t in ("drift", "data_quality") for s in ("warning", "critical"))
    assert published == len(alerts) > 0
    labels = {"model": "credit", "model_version": "1", "feature": "income", "detector": "cusum"}
    assert value("driftline_drift_threshold", labels) > 0
    assert value("driftline_drift_statistic", labels) is not None
    assert value("driftline_feature_drifting", {"model": "credit", "model_version": "1", "feature": "income"}) == 1
    assert value("driftline_feature_drifting", {"model": "credit", "model_version": "1", "feature": "age"}) == 0


def test_feature_series_are_capped_per_model_and_the_rest_counted():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_feature_series=3)
    _run(metrics, MemoryStateStore())
    text = generate_latest(registry).decode()
    features = {line.split('feature="')[1].split('"')[0] for line in text.splitlines()
                if line.startswith("driftline_feature_drifting{")}
    assert len(features) == 3
    assert registry.get_sample_value("driftline_metric_series_dropped_total", {"model": "credit"}) > 0


def test_model_gauges_are_what_this_worker_applied_without_reading_redis():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    store = MemoryStateStore()
    _run(metrics, store)
    summary = store.model_summaries()[("credit", "1")]
    labels = {"model": "credit", "model_version": "1"}
    assert registry.get_sample_value("driftline_model_events", labels) == summary["events"] == 16000
    newest = store.load([("credit", "1")])[("credit", "1")]["last_event_time"]
    assert registry.get_sample_value("driftline_model_last_update_timestamp_seconds", labels) == newest + 2.0


def test_the_decision_gauge_is_the_verdict_saved_in_each_model_state():
    store = MemoryStateStore()
    registry = CollectorRegistry()
    _run(WorkerMetrics(registry), store)
    saved = store.load([("credit", "1")])[("credit", "1")]
    expected = {"continue": 0.0, "retrain": 1.0}[saved["policy"]["verdict"]["verdict"]]
    assert registry.get_sample_value("driftline_model_decision", {"model": "credit", "model_version": "1"}) \
        == expected
    # one input drifted (income), no labels: fewer than the drift rule needs, so no trigger and continue
    policy = saved["policy"]
    assert len(policy["recent_drift"]) < policy["params"]["drift_features"] and policy["last_trigger_at"] is None
    assert expected == 0.0


def _model_series(registry) -> set[tuple[str, str]]:
    """The model versions with gauges (counters keep this worker's totals for good)."""
    return {(s.labels["model"], s.labels["model_version"]) for m in registry.collect() if m.type == "gauge"
            for s in m.samples if "model_version" in s.labels}


def _two_models_outcome():
    processor = BatchProcessor(Settings(), MemoryStateStore())
    frame = drifting_credit_data(n=200, seed=1, shift_sigma=0.0)
    messages = []
    for i, model in enumerate(("alpha", "beta")):
        events, _ = rows_to_events(frame, plan_columns(frame), model)
        messages.append(IncomingMessage("t", i, 0, encode_envelope(model, events, "1"), model.encode()))
    return processor.process(messages), {"alpha": 0, "beta": 1}


def test_a_rebalance_drops_the_gauges_of_models_whose_partition_moved_away():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    outcome, partitions = _two_models_outcome()
    metrics.observe(outcome, 0.01, partitions=partitions)
    assert _model_series(registry) == {("alpha", "1"), ("beta", "1")}
    metrics.owned_partitions({1})
    assert _model_series(registry) == {("beta", "1")}
    # a batch of the revoked partition saved late (it was in flight) does not bring its gauges back
    metrics.observe(outcome, 0.01, partitions=partitions)
    assert _model_series(registry) == {("beta", "1")}
    # the counters are this worker's totals: they stay
    assert registry.get_sample_value("driftline_events_processed_total", {"model": "alpha", "model_version": "1"}) \
        == 2 * outcome.events_by_model[("alpha", "1")] == 400


def test_model_versions_past_the_cap_are_not_exported_and_are_counted():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_model_series=1)
    outcome, partitions = _two_models_outcome()
    metrics.observe(outcome, 0.01, partitions=partitions)
    assert _model_series(registry) == {("alpha", "1")}
    assert registry.get_sample_value("driftline_metric_series_dropped_total", {"model": OTHER}) == 1
    # a freed slot (alpha's partition moved) is taken by the next model applied
    metrics.owned_partitions({1})
    metrics.observe(outcome, 0.01, partitions=partitions)
    assert _model_series(registry) == {("beta", "1")}


def test_alert_counter_labels_are_capped_for_models_without_state_too():
    from stream_processors.batch import BatchOutcome

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_model_series=3)
    alerts = [{"model": f"m{i}", "type": "data_quality", "severity": "warning"} for i in range(10)]
    metrics.observe(BatchOutcome(alerts=alerts), 0.01)
    models = {s.labels["model"] for m in registry.collect() if m.name == "driftline_alerts_published"
              for s in m.samples if s.name.endswith("_total")}
    assert models == {"m0", "m1", "m2", OTHER}
    assert registry.get_sample_value("driftline_alerts_published_total",
                                     {"model": OTHER, "type": "data_quality", "severity": "warning"}) == 7


def test_every_exported_name_is_declared():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    _run(metrics, MemoryStateStore())
    metrics.set_consumer_lag("t", 0, 5)
    metrics.triggers.labels("credit")
    metrics.redis_errors.inc()
    exported = {m.name + ("_total" if m.type == "counter" else "") for m in registry.collect()}
    assert exported == set(METRIC_NAMES)


def test_dead_letters_are_counted_by_their_reason_code_not_their_text():
    from producers.events import REASON_CODES, decode_message
    from stream_processors.batch import BatchProcessor, IncomingMessage

    store = MemoryStateStore()
    processor = BatchProcessor(Settings(), store)
    raw = [b"", b"{broken", b"[1]", b'{"schema_version": 1, "kind": "nope"}']
    outcome = processor.process([IncomingMessage("t", 0, i, value) for i, value in enumerate(raw)])
    registry = CollectorRegistry()
    WorkerMetrics(registry).observe(outcome, 0.01)
    expected = {}
    for value in raw:
        for rejection in decode_message(value, Settings().max_message_bytes).rejections:
            expected[rejection.code] = expected.get(rejection.code, 0) + 1
    counted = {s.labels["reason"]: s.value for m in registry.collect() if m.name == "driftline_events_rejected"
               for s in m.samples if s.name.endswith("_total")}
    assert counted == expected and set(counted) <= set(REASON_CODES) and len(counted) == 4


def test_the_consumer_lag_of_partitions_no_longer_assigned_goes_at_a_rebalance():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    for topic in ("driftline.inference", "driftline.labels"):
        metrics.set_consumer_lag(topic, 0, 500)
        metrics.set_consumer_lag(topic, 1, 7)

    def lag():
        return {(s.labels["topic"], s.labels["partition"]): s.value for m in registry.collect()
                if m.name == "driftline_consumer_lag_messages" for s in m.samples}

    metrics.owned_partitions({1}, {("driftline.inference", 1), ("driftline.labels", 1)})
    assert lag() == {("driftline.inference", "1"): 7, ("driftline.labels", "1"): 7}
    metrics.set_consumer_lag("driftline.inference", 0, 3)  # assigned again later: exported again
    metrics.owned_partitions({0, 1})  # without the topics: by partition number
    assert set(lag()) == {("driftline.inference", "0"), ("driftline.inference", "1"), ("driftline.labels", "1")}
    metrics.owned_partitions(set(), set())  # every partition revoked: no lag at all (DriftlineStateNotSaved)
    assert lag() == {}


def _on(partition: int, partitions: int = 2, n: int = 1) -> list[str]:
    from producers.partitioning import partition_for

    return [m for m in (f"model{i}" for i in range(60)) if partition_for(m, partitions) == partition][:n]


def _inference(model: str, partition: int, offset: int, n: int = 2) -> IncomingMessage:
    events = [{"event_id": f"{model}-{offset}-{i}", "features": {"x": float(i)}, "prediction": 1, "score": 0.5,
               "timestamp": 1.0e9} for i in range(n)]
    return IncomingMessage("inf", partition, offset, encode_envelope(model, events, "1"), model.encode())


def test_a_batch_of_labels_only_after_a_revocation_does_not_bring_back_its_models_gauges():
    from stream_processors.faust_app.app import model_partitions

    store = MemoryStateStore(partitions=2)
    processor = BatchProcessor(Settings(topic_partitions=2), store)
    metrics = WorkerMetrics(CollectorRegistry())
    (b,) = _on(1)
    metrics.owned_partitions({0, 1})
    out = processor.process([_inference(b, 1, 0)])
    assert store.commit(out)
    metrics.observe(out, 0.01, partitions=model_partitions(out, store.partition_of))
    assert (b, "1") in metrics.applied.models
    metrics.owned_partitions({0})
    # a batch fetched before the revocation, of b's labels only: no inference message tells b's partition
    label = encode_envelope(b, [{"event_id": f"{b}-0-0", "label": 1, "timestamp": 1.0e9}], kind="label")
    out = processor.process([IncomingMessage("lab", 1, 0, label, b.encode())])
    assert store.commit(out)
    assert model_partitions(out, store.partition_of) == {b: 1}
    metrics.observe(out, 0.01, partitions=model_partitions(out, store.partition_of))
    assert (b, "1") not in metrics.applied.models


def _events_series(registry) -> set[str]:
    return {s.labels["model"] for m in registry.collect() if m.name == "driftline_events_processed"
            for s in m.samples if s.name.endswith("_total")}


def test_counter_slots_of_revoked_partitions_go_to_the_models_of_newly_owned_ones():
    from stream_processors.faust_app.app import model_partitions

    store = MemoryStateStore(partitions=2)
    processor = BatchProcessor(Settings(topic_partitions=2), store)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_model_series=2)
    on0, on1 = _on(0, n=2), _on(1, n=2)

    def apply(messages):
        out = processor.process(messages)
        assert store.commit(out)
        metrics.observe(out, 0.01, partitions=model_partitions(out, store.partition_of))

    metrics.owned_partitions({0})
    apply([_inference(m, 0, i) for i, m in enumerate(on0)])
    assert _events_series(registry) == set(on0)
    metrics.owned_partitions({1})  # the rebalance: partition 0 went to another worker, 1 came here
    apply([_inference(on1[0], 1, 0)])
    # on1[0] took the slot (and series) of the oldest model of the revoked partition; the other keeps its own
    assert _events_series(registry) == {on0[1], on1[0]}
    metrics.owned_partitions({0, 1})  # partition 0 back: on0[1] is owned again and keeps its slot
    apply([_inference(on1[1], 1, 1)])
    assert _events_series(registry) == {on0[1], on1[0], OTHER}  # still at most max_model_series own labels
    assert registry.get_sample_value("driftline_events_processed_total",
                                     {"model": on1[0], "model_version": "1"}) == 2


def test_events_saved_before_a_conflict_are_counted_once():
    from stream_processors.faust_app.app import commit_in_parts, model_partitions, saved_part

    store = MemoryStateStore(partitions=2)
    settings = Settings(topic_partitions=2)
    (a,), (b,) = _on(0), _on(1)
    messages = [_inference(a, 0, 0, n=3), _inference(b, 1, 0, n=3)]
    first = BatchProcessor(settings, store).process(messages)

    class Advance:  # another worker applies b's partition meanwhile
        offsets = {("inf", 1): (-1, 0)}
        states, events_total, writes, quarantined = {}, {}, [], []

    assert store.commit(Advance())
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    parts: set[int] = set()
    assert not commit_in_parts(store, first, 2, parts)
    assert parts == {0}  # a's partition saved, b's conflicts
    part = saved_part(first, parts, store.partition_of)
    metrics.observe_models(part, partitions=model_partitions(part, store.partition_of))  # what handle() does
    redo = BatchProcessor(settings, store).process(messages)
    redone: set[int] = set()
    assert commit_in_parts(store, redo, 2, redone) and redone == set()  # both partitions' messages applied already
    metrics.observe(redo, 0.01, partitions=model_partitions(redo, store.partition_of))
    assert store.model_summaries()[(a, "1")]["events"] == 3
    value = registry.get_sample_value
    assert value("driftline_events_processed_total", {"model": a, "model_version": "1"}) == 3
    assert value("driftline_events_processed_total", {"model": b, "model_version": "1"}) is None  # the other's
    assert value("driftline_model_events", {"model": a, "model_version": "1"}) == 3


def test_a_batch_is_saved_in_parts_as_the_store_saves_it():
    from stream_processors.faust_app.app import commit_in_parts

    store = MemoryStateStore(partitions=2)
    (a,), (b,) = _on(0), _on(1)
    out = BatchProcessor(Settings(topic_partitions=2), store).process([_inference(a, 0, 0), _inference(b, 1, 0)])
    parts: set[int] = set()
    assert commit_in_parts(store, out, 2, parts) and parts == {0, 1}
    assert store.offsets([("inf", 0), ("inf", 1)]) == {("inf", 0): 0, ("inf", 1): 0}
    assert {k for k in store.model_summaries()} == {(a, "1"), (b, "1")}
    again: set[int] = set()
    assert not commit_in_parts(store, out, 2, again) and again == set()  # the same batch again: the first conflicts


def test_parts_saved_before_redis_fails_are_known_with_their_alerts_and_dead_letters():
    """A later part's Redis failure (a cluster master failing over) after earlier parts were saved: the redo skips
    the saved ones, so the worker learns them from ``commit_in_parts`` and counts them with ``saved_part``."""
    from stream_processors.errors import ServiceUnavailable
    from stream_processors.faust_app.app import commit_in_parts, saved_part

    store = MemoryStateStore(partitions=2)
    (a,), (b,) = _on(0), _on(1)
    bad = IncomingMessage("inf", 0, 1, b"not json", a.encode())
    out = BatchProcessor(Settings(topic_partitions=2), store).process(
        [_inference(a, 0, 0), bad, _inference(b, 1, 0)])
    out.alerts = [{"model": a, "type": "drift", "severity": "warning"}, {"model": b, "type": "drift",
                                                                        "severity": "warning"}]
    commit = store.commit
    calls = []

    def failing_second(part):
        calls.append(part)
        if len(calls) == 2:
            raise ServiceUnavailable("Redis at localhost:6379 is unavailable")
        return commit(part)

    store.commit = failing_second
    parts: set[int] = set()
    with pytest.raises(ServiceUnavailable):
        commit_in_parts(store, out, 2, parts)
    assert parts == {0} and store.offsets([("inf", 0), ("inf", 1)]) == {("inf", 0): 1, ("inf", 1): -1}
    saved = saved_part(out, parts, store.partition_of)
    assert [x["model"] for x in saved.alerts] == [a]
    assert saved.rejected_by_reason == {"malformed_json": 1} and len(saved.dead_letters) == 1


def test_alert_counter_slots_of_revoked_partitions_go_to_models_of_newly_owned_ones():
    from stream_processors.batch import BatchOutcome

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_model_series=2)

    def alert(model, partition):
        fired = {"model": model, "type": "data_drift", "severity": "warning"}
        metrics.observe(BatchOutcome(alerts=[fired, {**fired, "status": "resolved"}, {**fired, "type": "retrain"}]),
                        0.01, partitions={model: partition})

    def series() -> dict[str, set[str]]:
        return {name: {s.labels["model"] for m in registry.collect() if m.name == name for s in m.samples
                       if s.name.endswith("_total")}
                for name in ("driftline_alerts_published", "driftline_alerts_resolved", "driftline_triggers_published")}

    metrics.owned_partitions({0})
    alert("a", 0)
    alert("b", 0)
    alert("c", 1)  # no slot free: both named models are on an owned partition
    assert series()["driftline_alerts_published"] == {"a", "b", OTHER}
    metrics.owned_partitions({1})  # partition 0 went to another worker, which counts a's and b's alerts now
    alert("c", 1)
    assert series() == {"driftline_alerts_published": {"b", "c", OTHER}, "driftline_alerts_resolved": {"b", "c", OTHER},
                        "driftline_triggers_published": {"b", "c", OTHER}}
    assert registry.get_sample_value("driftline_alerts_published_total",
                                     {"model": "c", "type": "data_drift", "severity": "warning"}) == 1
    alert("d", 1)
    alert("e", 1)  # every slot is of an owned partition again
    assert series()["driftline_alerts_published"] == {"c", "d", OTHER}


def test_saved_model_versions_of_owned_partitions_are_exported_before_their_next_event():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_model_series=3)
    partition_of = {"a": 0, "b": 0, "c": 0, "d": 0, "other": 1}.__getitem__
    summaries = {("a", "1"): {"events": 10, "updated": 100.0, "decision": "retrain"},
                 ("a", "2"): {"events": 5, "updated": 400.0},  # saved before decisions were kept
                 ("b", "1"): {"events": 7, "updated": 300.0, "decision": "continue"},
                 ("c", "1"): {"events": 1, "updated": 50.0, "decision": "continue"},
                 ("d", "1"): {"events": 2, "updated": 200.0, "decision": "continue"},
                 ("other", "1"): {"events": 99, "updated": 500.0, "decision": "retrain"}}
    metrics.owned_partitions({0})
    # b was applied here already: what this worker applied is newer than any summary read meanwhile
    metrics.applied.entry(("b", "1"), 0).events = 8
    assert metrics.seed(summaries, partition_of) == 2  # the cap of 3, the most recently updated first
    value = registry.get_sample_value
    assert value("driftline_model_events", {"model": "a", "model_version": "2"}) == 5
    assert value("driftline_model_decision", {"model": "a", "model_version": "2"}) is None
    assert value("driftline_model_events", {"model": "d", "model_version": "1"}) == 2
    assert value("driftline_model_last_update_timestamp_seconds", {"model": "d", "model_version": "1"}) == 200.0
    assert value("driftline_model_decision", {"model": "d", "model_version": "1"}) == 0.0
    assert value("driftline_model_events", {"model": "b", "model_version": "1"}) == 8
    assert value("driftline_model_events", {"model": "other", "model_version": "1"}) is None  # not owned
    assert value("driftline_model_events", {"model": "a", "model_version": "1"}) is None  # past the cap
    metrics.owned_partitions({0, 1})
    assert metrics.seed(summaries, partition_of) == 0  # no room left


def test_a_version_applied_here_takes_the_slot_of_a_seeded_one_when_none_is_free():
    from stream_processors.batch import BatchOutcome

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_model_series=2)
    metrics.owned_partitions({0})
    summaries = {("old", "1"): {"events": 1, "updated": 10.0}, ("older", "1"): {"events": 1, "updated": 5.0}}
    assert metrics.seed(summaries, lambda m: 0) == 2
    live = BatchOutcome(events_total={("live", "1"): 7}, decisions={("live", "1"): "retrain"})
    metrics.observe(live, 0.01, partitions={"live": 0})
    value = registry.get_sample_value
    assert value("driftline_model_events", {"model": "live", "model_version": "1"}) == 7
    assert value("driftline_model_decision", {"model": "live", "model_version": "1"}) == 1.0
    assert value("driftline_model_events", {"model": "older", "model_version": "1"}) is None  # least recent went
    assert value("driftline_model_events", {"model": "old", "model_version": "1"}) == 1
    # a seeded version that is applied here is kept like any other from then on
    metrics.observe(BatchOutcome(events_total={("old", "1"): 2}), 0.01, partitions={"old": 0})
    metrics.observe(BatchOutcome(events_total={("new", "1"): 1}), 0.01, partitions={"new": 0})
    assert value("driftline_model_events", {"model": "new", "model_version": "1"}) is None  # no slot: __other__
    assert value("driftline_metric_series_dropped_total", {"model": OTHER}) == 1


def test_an_alert_counted_in_a_batch_keeps_its_series_through_that_batch():
    from stream_processors.batch import BatchOutcome

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_model_series=1)
    metrics.owned_partitions({0, 1})
    fired = {"type": "drift", "severity": "warning"}
    metrics.observe(BatchOutcome(alerts=[{**fired, "model": "a"}]), 0.01, partitions={"a": 0})
    metrics.owned_partitions({1})  # a's partition is being revoked while a batch of both is saved
    metrics.observe(BatchOutcome(alerts=[{**fired, "model": "a"}, {**fired, "model": "b"}]), 0.01,
                    partitions={"a": 0, "b": 1})
    counted = sum(s.value for m in registry.collect() if m.name == "driftline_alerts_published" for s in m.samples
                  if s.name.endswith("_total"))
    assert counted == 3  # a twice (its slot kept through the batch), b under __other__
