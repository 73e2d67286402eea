"""Bounds on what a producer can create: each one dead-letters the offending events with its own reason code
and applies everything else (in-memory store)."""

import time

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from detectors.model.monitor import ModelMonitor
from producers.events import BOUND_CODES, REASON_CODES
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings
from stream_processors.metrics import OTHER, WorkerMetrics
from stream_processors.state import MemoryStateStore


def _event(i, **changes):
    return {"event_id": f"e{i}", "timestamp": 1.0, "features": {"x": float(i % 7), "c": "a"}, "prediction": 1,
            **changes}


def _envelope(events, model="m", version="1"):
    return orjson.dumps({"schema_version": 1, "kind": "inference", "model": model, "model_version": version,
                         "events": events})


def _process(messages, settings=Settings(), store=None):
    store = MemoryStateStore() if store is None else store
    processor = BatchProcessor(settings, store)
    outcome = processor.process(messages)
    assert store.commit(outcome)
    return outcome, store


def _accounted(outcome):
    """Events applied plus events dead-lettered (each dead letter counts the events it stands for)."""
    return outcome.events + sum(letter["count"] for letter in outcome.dead_letters)


def _codes(outcome):
    codes = {}
    for letter in outcome.dead_letters:
        codes[letter["reason_code"]] = codes.get(letter["reason_code"], 0) + letter["count"]
    return codes


def test_bound_codes_are_reason_codes():
    assert set(BOUND_CODES) <= set(REASON_CODES)


def test_an_event_of_another_model_than_the_key_is_dead_lettered():
    events = [_event(0), _event(1, model="other"), _event(2)]
    outcome, store = _process([IncomingMessage("t", 0, 0, _envelope(events), key=b"m")])
    assert outcome.events == 2
    assert [(d["reason_code"], d["event_id"]) for d in outcome.dead_letters] == [("model_mismatch", "e1")]
    assert set(store.models()) == {("m", "1")}


def test_a_message_without_a_key_belongs_to_its_first_events_model():
    events = [_event(0, model="a"), _event(1, model="b"), _event(2, model="a")]
    outcome, store = _process([IncomingMessage("t", 0, 0, _envelope(events, model="a"))])
    assert outcome.events == 2 and _codes(outcome) == {"model_mismatch": 1}
    assert set(store.models()) == {("a", "1")}


def test_a_message_whose_key_names_another_model_applies_nothing():
    outcome, store = _process([IncomingMessage("t", 0, 0, _envelope([_event(0), _event(1)]), key=b"x")])
    assert outcome.events == 0 and _codes(outcome) == {"model_mismatch": 2}
    assert store.models() == {}


def test_labels_of_another_model_than_the_key_are_dead_lettered():
    labels = orjson.dumps({"schema_version": 1, "kind": "label", "model": "m", "events": [
        {"event_id": "e0", "label": 1, "timestamp": 2.0}, {"event_id": "e1", "label": 0, "timestamp": 2.0,
                                                           "model": "other"}]})
    outcome, _ = _process([IncomingMessage("l", 0, 0, labels, key=b"m")])
    assert _codes(outcome) == {"model_mismatch": 1} and outcome.labels == 1


def test_new_versions_past_the_cap_are_refused_and_existing_ones_keep_working():
    settings = Settings(max_versions_per_model=3)
    store = MemoryStateStore()
    first = [_event(i, model_version=f"v{i}") for i in range(5)]
    outcome, _ = _process([IncomingMessage("t", 0, 0, _envelope(first), key=b"m")], settings, store)
    assert outcome.events == 3 and _codes(outcome) == {"too_many_versions": 2}
    assert set(store.models()) == {("m", "v0"), ("m", "v1"), ("m", "v2")}
    # a later batch, a new processor (a restarted worker): old versions apply, new ones are refused
    later = [_event(10, model_version="v1"), _event(11, model_version="v9"), _event(12, model_version="v2")]
    outcome, _ = _process([IncomingMessage("t", 0, 1, _envelope(later), key=b"m")], settings, store)
    assert outcome.events == 2 and _codes(outcome) == {"too_many_versions": 1}
    assert outcome.dead_letters[0]["event_id"] == "e11"
    # other models have their own cap
    outcome, _ = _process([IncomingMessage("t", 0, 2, _envelope([_event(20)], model="n"), key=b"n")], settings,
                          store)
    assert outcome.events == 1 and not outcome.dead_letters


def test_a_version_saved_by_another_worker_is_not_refused():
    settings = Settings(max_versions_per_model=1)
    store = MemoryStateStore()
    processor = BatchProcessor(settings, store)
    assert store.commit(processor.process([IncomingMessage("t", 0, 0, _envelope([_event(0)], version="a"),
                                                           key=b"m")]))
    # another worker (its own catalog) saves version b before the cap was reached there
    other = BatchProcessor(settings, MemoryStateStore())
    outcome = other.process([IncomingMessage("t", 0, 1, _envelope([_event(1)], version="b"), key=b"m")])
    outcome.offsets = {("t", 0): (0, 1)}
    assert store.commit(outcome)
    # the first worker's catalog does not know b, yet b has state: it is applied
    outcome = processor.process([IncomingMessage("t", 0, 2, _envelope([_event(2)], version="b"), key=b"m")])
    assert outcome.events == 1 and not outcome.dead_letters


def test_new_models_past_the_cap_are_refused():
    settings = Settings(max_models=2)
    messages = [IncomingMessage("t", 0, i, _envelope([_event(i), _event(100 + i)], model=f"m{i}"),
                                key=f"m{i}".encode()) for i in range(4)]
    outcome, store = _process(messages, settings)
    assert outcome.events == 4 and _codes(outcome) == {"too_many_models": 4}
    assert len([d for d in outcome.dead_letters]) == 2  # one dead letter per message, counting its events
    assert {m for m, _ in store.models()} == {"m0", "m1"}


def test_an_event_with_too_many_features_is_dead_lettered():
    settings = Settings(max_features=3)
    wide = _event(1, features={f"f{k}": 1.0 for k in range(4)})
    outcome, store = _process([IncomingMessage("t", 0, 0, _envelope([_event(0), wide, _event(2)]), key=b"m")],
                              settings)
    assert outcome.events == 2
    assert [(d["reason_code"], d["event_id"]) for d in outcome.dead_letters] == [("too_many_features", "e1")]


@pytest.mark.parametrize("changes, code", [
    ({"features": {"x" * 300: 1.0}}, "name_too_long"),
    ({"features": {"c": "v" * 1025}}, "name_too_long"),
    ({"prediction": "p" * 1025}, "name_too_long"),
    ({"score": {"k" * 1025: 0.5}}, "name_too_long"),
    ({"score": {f"class{k}": 0.0 for k in range(1001)}}, "too_many_classes"),
    ({"features": {"x": 1.0, "__prediction__": "p"}}, "reserved_name"),
    ({"features": {"__score__": 0.5}}, "reserved_name"),
    ({"features": {"__error__": 0.5}}, "reserved_name"),
    ({"model_version": "v" * 257}, "name_too_long"),
    ({"event_id": "i" * 257}, "name_too_long"),
])
def test_long_names_and_values_are_dead_lettered(changes, code):
    bad = _event(1, **changes)
    outcome, _ = _process([IncomingMessage("t", 0, 0, _envelope([_event(0), bad, _event(2)]), key=b"m")])
    assert outcome.events == 2 and _codes(outcome) == {code: 1}


def test_a_long_model_name_is_dead_lettered():
    outcome, _ = _process([IncomingMessage("t", 0, 0, _envelope([_event(0)], model="m" * 257))])
    assert outcome.events == 0 and _codes(outcome) == {"name_too_long": 1}
    assert outcome.dead_letters[0]["model"] is None  # the long name is not repeated in the dead letter


def test_names_at_the_limits_are_applied():
    fine = _event(0, features={"x" * 256: 1.0, "c": "v" * 1024}, model_version="v" * 256)
    outcome, _ = _process([IncomingMessage("t", 0, 0, _envelope([fine]), key=b"m")])
    assert outcome.events == 1 and not outcome.dead_letters


def test_events_past_the_per_message_cap_are_one_dead_letter_with_their_count():
    settings = Settings(max_events_per_message=100)
    outcome, store = _process([IncomingMessage("t", 0, 0, _envelope([_event(i) for i in range(250)]), key=b"m")],
                              settings)
    assert outcome.events == 100
    assert len(outcome.dead_letters) == 1
    letter = outcome.dead_letters[0]
    assert (letter["reason_code"], letter["count"], letter["event_id"]) == ("too_many_events", 150, "e100")
    assert outcome.rejected_by_reason == {"too_many_events": 150}
    assert store.model_summaries()[("m", "1")]["events"] == 100


def test_bounds_hit_are_counted_by_bound():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    outcome, _ = _process([IncomingMessage("t", 0, 0, _envelope([_event(0), _event(1, model="o")]), key=b"m")],
                          Settings(max_events_per_message=1))
    metrics.observe(outcome, 0.1)
    assert registry.get_sample_value("driftline_bounds_hit_total", {"bound": "too_many_events"}) == 1
    assert registry.get_sample_value("driftline_bounds_hit_total", {"bound": "too_many_models"}) == 0
    assert registry.get_sample_value("driftline_events_rejected_total", {"reason": "too_many_events"}) == 1


def test_model_series_past_the_cap_go_to_other():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, max_model_series=2)
    messages = [IncomingMessage("t", 0, i, _envelope([_event(i)], model=f"m{i}"), key=f"m{i}".encode())
                for i in range(4)]
    outcome, _ = _process(messages)
    metrics.observe(outcome, 0.1)
    series = {s.labels["model"] for s in registry.collect() if s.name == "driftline_events_processed"
              for s in s.samples if s.name.endswith("_total")}
    assert series == {"m0", "m1", OTHER}
    assert registry.get_sample_value("driftline_events_processed_total", {"model": OTHER,
                                                                          "model_version": OTHER}) == 2


def _hostile(kind, n_messages=20, max_bytes=1_000_000):
    """Messages of about ``max_bytes`` whose events each create a new version, a new model, or carry long
    names; and, for the baseline, ordinary messages of the same size."""
    messages = []
    serial = 0
    for k in range(n_messages):
        events, size = [], 200
        while True:
            serial += 1
            if kind == "versions":
                event = _event(serial, model_version=f"v{serial}")
            elif kind == "models":
                event = _event(serial, model=f"m{serial}")
            elif kind == "names":
                event = _event(serial, features={"x" * 300: 1.0})
            else:
                event = _event(serial)
            size += len(orjson.dumps(event)) + 1
            if size > max_bytes:
                break
            events.append(event)
        messages.append((IncomingMessage("t", 0, k, _envelope(events), key=b"m"), len(events)))
    return messages


def _timed(messages, settings):
    processor = BatchProcessor(settings, MemoryStateStore())
    started = time.process_time()
    outcome = processor.process([m for m, _ in messages])
    return time.process_time() - started, outcome


@pytest.mark.parametrize("kind", ["versions", "models", "names"])
def test_a_batch_of_hostile_messages_stays_bounded(kind):
    """20 hostile 1 MB messages in one batch take at most a few times an ordinary batch of the same size, and
    every event ends applied or dead-lettered."""
    settings = Settings(max_events_per_message=100_000, max_models=50)
    normal_s, normal = _timed(_hostile("normal"), settings)
    hostile = _hostile(kind)
    hostile_s, outcome = _timed(hostile, settings)
    assert normal.events == sum(n for _, n in _hostile("normal"))
    assert _accounted(outcome) == sum(n for _, n in hostile)
    assert outcome.dead_letters
    assert hostile_s < 3 * normal_s + 1.0, (hostile_s, normal_s)


def _labels(model, ids):
    return orjson.dumps({"schema_version": 1, "kind": "label", "model": model,
                         "events": [{"event_id": i, "label": 1, "timestamp": 2.0} for i in ids]})


def test_waiting_labels_of_a_model_without_traffic_are_settled_by_other_models_batches():
    settings = Settings(label_wait_s=0.01, label_sweep_limit=2)
    store = MemoryStateStore()
    processor = BatchProcessor(settings, store)
    outcome = processor.process([IncomingMessage("l", 0, 0, _labels("quiet", ["a", "b", "c"]), key=b"quiet")])
    assert store.commit(outcome)
    assert store.label_counts() == {"quiet:pending": 3}
    time.sleep(0.05)
    # only another model has traffic from now on; the sweep settles at most 2 labels per batch
    for offset in (1, 2):
        outcome = processor.process([IncomingMessage("t", 0, offset, _envelope([_event(offset)]), key=b"m")])
        assert store.commit(outcome)
    assert store.label_counts()["quiet:pending"] == 0
    assert store.label_counts()["quiet:unmatched"] == 3
    assert store.due_labels("quiet", time.time(), 10) == []


def test_a_rebalance_forgets_which_models_have_waiting_labels():
    settings = Settings(label_wait_s=0.01)
    store = MemoryStateStore()
    processor = BatchProcessor(settings, store)
    assert store.commit(processor.process([IncomingMessage("l", 0, 0, _labels("quiet", ["a"]), key=b"quiet")]))
    processor.rebalanced()  # the model's partition may belong to another worker now
    time.sleep(0.05)
    assert store.commit(processor.process([IncomingMessage("t", 0, 1, _envelope([_event(1)]), key=b"m")]))
    assert store.label_counts() == {"quiet:pending": 1}


def _label_message(model, *labels, offset=0, first=0):
    value = orjson.dumps({"schema_version": 1, "kind": "label", "model": model, "events": [
        {"event_id": f"e{i}", "label": label, "timestamp": 2.0} for i, label in enumerate(labels, start=first)]})
    return IncomingMessage("l", 0, offset, value, key=model.encode())


def test_a_long_label_is_dead_lettered_and_its_neighbours_joined():
    outcome, store = _process([_label_message("m", 1, "y" * 1025, "y" * 1024)])
    assert _codes(outcome) == {"name_too_long": 1} and outcome.labels == 2
    assert outcome.dead_letters[0]["event_id"] == "e1"


def test_a_feature_named_as_an_output_column_leaves_the_predictions_statistics_alone():
    from detectors.model.monitor import ModelMonitor
    from stream_processors.batch import logic_params

    events = [_event(i, prediction=float(i)) for i in range(300)]
    events[5] = _event(5, prediction=5.0, features={"x": 1.0, "__prediction__": "text"})
    outcome, store = _process([IncomingMessage("t", 0, 0, _envelope(events), key=b"m")])
    assert _codes(outcome) == {"reserved_name": 1} and outcome.events == 299
    status = ModelMonitor.from_dict(store.load([("m", "1")])[("m", "1")], logic_params(Settings()).monitor).describe()
    prediction = status["prediction"]
    assert (prediction["kind"], prediction["count"], prediction["missing"]) == ("numeric", 299, 0)
    assert "__prediction__" not in status["features"]


def test_labels_of_models_kept_from_state_by_the_cap_are_dead_lettered_not_kept_waiting():
    settings = Settings(max_models=1)
    store = MemoryStateStore()
    processor = BatchProcessor(settings, store)
    assert store.commit(processor.process([IncomingMessage("t", 0, 0, _envelope([_event(0)]), key=b"m")]))
    outcome = processor.process([_label_message("m", 1, offset=1), _label_message("new", 1, 0, 1, offset=2),
                                 _label_message("new", 0, offset=3, first=3)])
    assert _codes(outcome) == {"too_many_models": 4} and len(outcome.dead_letters) == 2  # one per message
    assert outcome.labels == 1 and "labels of a model without state" in outcome.dead_letters[0]["reason"]
    assert store.commit(outcome)
    assert store.pending_labels("new") == 0 and "new" not in processor._waiting_models
    # below the cap, labels may come before their model's first prediction: they wait
    outcome = BatchProcessor(Settings(max_models=2), store).process([_label_message("early", 1, offset=4)])
    assert not outcome.dead_letters and outcome.labels == 1


def test_labels_of_a_model_another_worker_gave_state_are_joined():
    settings = Settings(max_models=1)
    store = MemoryStateStore()
    processor = BatchProcessor(settings, store)
    processor.catalog._known()  # read while the store was empty
    assert store.commit(BatchProcessor(settings, store).process(
        [IncomingMessage("t", 0, 0, _envelope([_event(0)], model="late"), key=b"late")]))
    assert store.commit(BatchProcessor(settings, store).process(
        [IncomingMessage("t2", 0, 0, _envelope([_event(0)], model="m"), key=b"m")]))  # refused: at the cap
    outcome = processor.process([_label_message("late", 1, offset=1)])
    assert not outcome.dead_letters and outcome.labels == 1


def test_long_categories_are_kept_short_and_distinct():
    from detectors.frequencies import CategoryFrequencies

    values = [f"{i:04d}" + "v" * 1020 for i in range(50)] * 2 + ["w" * 1000] * 3
    frequencies = CategoryFrequencies()
    frequencies.update(values)
    kept = frequencies.frequencies
    assert len(kept) == 51 and max(map(len, kept)) <= 128 and sorted(kept.values()) == [2] * 50 + [3]
    # a state with many long categories stays small: 20 features of 1,000 distinct 1,024-character values
    events = [_event(i, features={f"c{f}": f"{i:04d}{f:02d}" + "z" * 1018 for f in range(20)}) for i in range(1000)]
    outcome, store = _process([IncomingMessage("t", 0, k, _envelope(events[k * 40:(k + 1) * 40]), key=b"m")
                               for k in range(25)])
    assert outcome.events == 1000
    size = len(outcome.states[("m", "1")])
    assert size < 20 * 1000 * 400, size  # about 2 copies of each short key; 1,024-character keys took 43 MB


@pytest.mark.parametrize("value", [1e16, 1e300])
@pytest.mark.parametrize("missing", [None, "absent"])
def test_a_number_past_the_bound_is_refused_even_beside_a_missing_value_of_its_feature(missing, value):
    """The range of a column is checked on the whole column at once; a missing value (NaN there) must not hide a
    number past ±MAX_ABS_NUMBER, which would make the feature's statistics infinite."""
    other = _event(2)  # after the feature's kind is known
    if missing is None:
        other["features"]["x"] = None
    else:
        del other["features"]["x"]
    events = [_event(0), _event(1), other, _event(3, features={"x": value, "c": "a"}), _event(4)]
    outcome, store = _process([IncomingMessage("t", 0, 0, _envelope(events), b"m")])
    assert _codes(outcome) == {"out_of_range": 1}
    assert outcome.dead_letters[0]["event_id"] == "e3"
    assert outcome.events == 4
    processor = BatchProcessor(Settings(), store)
    summary = ModelMonitor.from_dict(orjson.loads(outcome.states[("m", "1")]), processor.params.monitor).numeric["x"]
    applied = [e["features"].get("x") for e in events if e["event_id"] != "e3"]
    assert summary.count == 3
    assert summary.mean == pytest.approx(np.nanmean(np.array(applied, dtype=float)))
