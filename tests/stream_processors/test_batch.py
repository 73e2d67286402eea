"""The batch processor on the in-memory store: exactly-once state, dead letters, alerts."""

import dataclasses
import itertools

import numpy as np
import orjson
import pytest

from producers.events import encode_envelope
from producers.example_data import drifting_credit_data
from producers.replay import plan_columns, rows_to_events
from stream_processors.batch import logic_params
from detectors.model.monitor import ModelMonitor
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings
from stream_processors.state import MemoryStateStore

SETTINGS = Settings()


def _messages(frame, model="credit", version="1", batch=250, topic="t", partition=0):
    events, _ = rows_to_events(frame, plan_columns(frame), model)
    return [IncomingMessage(topic, partition, i, encode_envelope(model, events[j:j + batch], version))
            for i, j in enumerate(range(0, len(events), batch))]


def _run(store, messages, batch_messages, settings=SETTINGS):
    processor = BatchProcessor(settings, store)
    alerts = []
    for start in range(0, len(messages), batch_messages):
        outcome = processor.process(messages[start:start + batch_messages])
        assert store.commit(outcome)
        alerts += outcome.alerts
    return alerts


def _state(store, model="credit", version="1"):
    return ModelMonitor.from_dict(store.load([(model, version)])[(model, version)], logic_params(SETTINGS).monitor)


def test_statistics_equal_numpy():
    frame = drifting_credit_data(n=6000, seed=3)
    store = MemoryStateStore()
    _run(store, _messages(frame), batch_messages=5)
    status = _state(store).describe()
    assert status["events"] == 6000
    for name in ("age", "income", "debt_ratio"):
        col = frame[name].to_numpy()
        present = col[~np.isnan(col)]
        f = status["features"][name]
        assert f["count"] == present.size and f["missing"] == col.size - present.size
        assert f["mean"] == pytest.approx(present.mean(), rel=1e-9)
        assert f["std"] == pytest.approx(present.std(ddof=1), rel=1e-9)
        assert (f["min"], f["max"]) == (present.min(), present.max())
    assert status["features"]["region"]["frequencies"] == frame["region"].value_counts().to_dict()
    assert status["features"]["homeowner"]["frequencies"] == {
        "true": int(frame["homeowner"].sum()), "false": int((~frame["homeowner"]).sum())}


def test_redelivered_messages_are_not_counted_twice():
    frame = drifting_credit_data(n=4000, seed=1)
    messages = _messages(frame)
    once, twice = MemoryStateStore(), MemoryStateStore()
    alerts_once = _run(once, messages, batch_messages=3)
    processor = BatchProcessor(SETTINGS, twice)
    alerts_twice = []
    # at-least-once delivery: every batch arrives, then arrives again overlapping the next
    for start in range(0, len(messages), 3):
        for window in (messages[max(0, start - 2):start + 3], messages[start:start + 3]):
            outcome = processor.process(window)
            assert twice.commit(outcome)
            alerts_twice += outcome.alerts
    assert twice.load([("credit", "1")]) == once.load([("credit", "1")])
    assert [a["id"] for a in alerts_twice] == [a["id"] for a in alerts_once]


def test_batching_does_not_change_the_outcome():
    frame = drifting_credit_data(n=16000, seed=2)
    messages = _messages(frame, batch=100)
    a, b = MemoryStateStore(), MemoryStateStore()
    alerts_a = _run(a, messages, batch_messages=1)
    alerts_b = _run(b, messages, batch_messages=37)
    assert a.load([("credit", "1")]) == b.load([("credit", "1")])
    assert [x["id"] for x in alerts_a] == [x["id"] for x in alerts_b]
    assert {x["feature"] for x in alerts_a} >= {"income"}


def _cut(events, sizes):
    """The events as messages of model credit version 1, of the given sizes in turn (1 is a single event)."""
    cycle, messages, start = itertools.cycle(sizes), [], 0
    while start < len(events):
        size = next(cycle)
        messages.append(IncomingMessage("t", 0, len(messages), encode_envelope("credit", events[start:start + size],
                                                                                "1")))
        start += size
    return messages


def test_single_events_and_envelopes_give_the_same_state_however_batches_group_them():
    """A batch applies a version's messages as one call; cut into batches otherwise, the bytes are the same."""
    frame = drifting_credit_data(n=3000, seed=5)
    events, _ = rows_to_events(frame, plan_columns(frame), "credit")
    messages = _cut(events, [1, 1, 7, 1, 40, 1, 3])
    a, b = MemoryStateStore(), MemoryStateStore()
    alerts_a = _run(a, messages, batch_messages=1)
    alerts_b = _run(b, messages, batch_messages=97)
    assert _state(a).events == len(events)
    assert a.load([("credit", "1")]) == b.load([("credit", "1")])
    assert [x["id"] for x in alerts_a] == [x["id"] for x in alerts_b]


def test_stale_batch_is_refused_by_the_offset_guard():
    frame = drifting_credit_data(n=1000, seed=0)
    messages = _messages(frame)
    store = MemoryStateStore()
    processor = BatchProcessor(SETTINGS, store)
    late = processor.process(messages[:2])
    assert store.commit(processor.process(messages[:2]))
    assert not store.commit(late)


def test_dead_letters_keep_reason_and_source_and_spare_the_rest():
    good = [{"event_id": f"g{i}", "timestamp": 1.0, "features": {"x": float(i)}, "prediction": 0}
            for i in range(4)]
    bad = {"event_id": "b1", "timestamp": 1.0, "features": {"x": [1]}, "prediction": 0}
    messages = [IncomingMessage("t", 0, 0, encode_envelope("m", good[:2] + [bad] + good[2:], "1")),
                IncomingMessage("t", 0, 1, b"{oops"),
                IncomingMessage("t", 1, 0, orjson.dumps({"schema_version": 1, "kind": "label", "model": "m",
                                                         "event_id": "e", "label": 1, "timestamp": 1.0}))]
    store = MemoryStateStore()
    outcome = BatchProcessor(SETTINGS, store).process(messages)
    assert outcome.events == 4
    reasons = [(d["event_id"], d["source"]["offset"], d["reason_code"], d["reason"][:20])
               for d in outcome.dead_letters]
    assert reasons == [("b1", 0, "wrong_type", "wrong type: feature "), (None, 1, "malformed_json", "malformed JSON: unex")]
    assert outcome.dead_letters[1]["payload"] == "{oops"
    assert outcome.rejected_by_reason == {"wrong_type": 1, "malformed_json": 1}
    assert outcome.labels == 1  # a label is a label on whichever topic it comes
    assert outcome.offsets == {("t", 0): (-1, 1), ("t", 1): (-1, 0)}


def test_type_mismatch_counts_as_missing_and_mismatch():
    events = [{"event_id": f"e{i}", "timestamp": 1.0, "features": {"x": v}, "prediction": 0}
              for i, v in enumerate([1.0, 2.0, "three", True, None])]
    store = MemoryStateStore()
    outcome = BatchProcessor(SETTINGS, store).process([IncomingMessage("t", 0, 0, encode_envelope("m", events, "1"))])
    x = ModelMonitor.from_dict(orjson.loads(outcome.states[("m", "1")]), logic_params(SETTINGS).monitor).describe()["features"]["x"]
    assert (x["count"], x["missing"], x["type_mismatches"]) == (2, 3, 2)


def test_one_alert_per_drift_episode():
    frame = drifting_credit_data(n=30000, seed=4, shift_sigma=2.0)
    store = MemoryStateStore()
    alerts = _run(store, _messages(frame), batch_messages=10)
    income = [a for a in alerts if a["feature"] == "income"]
    assert [a["type"] for a in income] == ["drift", "data_quality"]  # the shift, and values past the baseline range
    assert "app-0015000" <= income[0]["evidence"]["last_event_id"] <= "app-0015400"
    assert income[0]["severity"] == "critical"
    assert {a["feature"] for a in alerts} <= {"income", "__prediction__", "__score__"}


def _single(i: int, model: str = "m", x: float | None = None) -> bytes:
    return orjson.dumps({"schema_version": 1, "model": model, "model_version": "1", "event_id": f"e{i}",
                         "timestamp": 1.0 + i, "features": {"x": float(i % 7) if x is None else x, "c": "abc"[i % 3]},
                         "prediction": i % 2, "score": 0.3})


def _run_singles(store, processor, first, n, batch=50):
    for start in range(first, first + n, batch):
        outcome = processor.process([IncomingMessage("t", 0, i, _single(i)) for i in range(start, start + batch)])
        assert store.commit(outcome)
    return outcome


def _damage(raw: bytes, how: str) -> bytes:
    if how == "not_json":
        return raw[: len(raw) // 2]
    if how == "wrong_shape":
        return orjson.dumps({"format": "driftline.model_state/3", "model": "m"})
    if how == "adwin_bytes":  # river's compiled core panics on a window it cannot read
        doc = orjson.loads(raw)
        for monitor in doc["monitors"].values():
            for state in monitor.values():
                if isinstance(state, dict) and "window" in state:
                    state["window"] = state["window"][:12]
        return orjson.dumps(doc)
    raise ValueError(how)


@pytest.mark.parametrize("how", ["not_json", "wrong_shape", "adwin_bytes"])
def test_damaged_state_is_quarantined_alerted_and_the_version_goes_on(how):
    settings = Settings(pilot_size=100, baseline_blocks=10, block_size=5)
    store = MemoryStateStore()
    processor = BatchProcessor(settings, store)
    _run_singles(store, processor, 0, 2000)
    before = store.load([("m", "1")])[("m", "1")]
    if how == "adwin_bytes":
        assert any("window" in str(m) for m in before["monitors"].values())  # the damage has something to hit
    damaged = _damage(orjson.dumps(before), how)
    store.put_raw("state", "m", "1", damaged)
    outcome = _run_singles(store, processor, 2000, 50)
    [alert] = [a for a in outcome.alerts if a["type"] == "state_quarantined"]
    assert alert["severity"] == "critical" and alert["model"] == "m" and alert["evidence"]["record"] == "state"
    [q] = outcome.quarantined
    assert q.raw == damaged and q.kind == "state"
    assert store.quarantined()[("m", "1")]["sha256"] == alert["evidence"]["sha256"]
    state = ModelMonitor.from_dict(store.load([("m", "1")])[("m", "1")], logic_params(settings).monitor)
    assert state.events == 50  # afresh, from the batch after the damage, and it says so
    outcome = _run_singles(store, processor, 2050, 50)
    assert not outcome.quarantined and outcome.events == 50


def test_damaged_profile_is_quarantined_and_removed():
    store = MemoryStateStore()
    store.put_raw("profile", "m", "1", b'{"format": "driftline.reference_profile/999"}')
    processor = BatchProcessor(SETTINGS, store)
    outcome = _run_singles(store, processor, 0, 50)
    assert [a["evidence"]["record"] for a in outcome.alerts if a["type"] == "state_quarantined"] == ["profile"]
    assert outcome.events == 50
    assert store.profiles([("m", "1")])[("m", "1")] is None  # not read (and alerted) again at every batch
    assert not _run_singles(store, processor, 50, 50).quarantined


def test_an_event_that_fails_to_apply_is_dead_lettered_alone(monkeypatch):
    real_apply = ModelMonitor.apply

    def apply(self, events):
        if any(e["event_id"] == "e7" for e in events):
            raise OverflowError("cannot apply e7")
        return real_apply(self, events)

    monkeypatch.setattr(ModelMonitor, "apply", apply)
    store = MemoryStateStore()
    processor = BatchProcessor(SETTINGS, store)
    envelope = encode_envelope("m", [orjson.loads(_single(i)) for i in range(5, 10)], "1")
    messages = [IncomingMessage("t", 0, 0, _single(1)), IncomingMessage("t", 0, 1, envelope),
                IncomingMessage("t", 0, 2, _single(2))]
    outcome = processor.process(messages)
    assert store.commit(outcome)
    assert [(d["event_id"], d["reason_code"]) for d in outcome.dead_letters] == [("e7", "apply_failed")]
    assert outcome.events == 6
    monkeypatch.setattr(ModelMonitor, "apply", real_apply)
    # the same events without the failing one, applied normally, give the same state
    other = MemoryStateStore()
    reference = BatchProcessor(SETTINGS, other).process(
        [IncomingMessage("t", 0, 0, _single(1))] + [IncomingMessage("t", 0, 1 + k, _single(i))
                                                    for k, i in enumerate([5, 6, 8, 9])]
        + [IncomingMessage("t", 0, 9, _single(2))])
    got = orjson.loads(outcome.states[("m", "1")])
    want = orjson.loads(reference.states[("m", "1")])
    assert got["events"] == want["events"] == 6
    assert got == want  # what a replay without e7 would reach, to the bit


def test_numbers_at_the_magnitude_limit_keep_every_statistic_finite_and_loadable():
    from producers.events import MAX_ABS_NUMBER

    rng = np.random.default_rng(4)
    xs = rng.choice([MAX_ABS_NUMBER, -MAX_ABS_NUMBER, 0.0, 1e-300], size=3000)
    store = MemoryStateStore()
    processor = BatchProcessor(SETTINGS, store)
    for start in range(0, len(xs), 500):
        events = [{"event_id": f"e{i}", "timestamp": 1.0, "features": {"x": float(xs[i])}, "prediction": float(xs[i]),
                   "score": float(xs[i])} for i in range(start, start + 500)]
        assert store.commit(processor.process([IncomingMessage("t", 0, start, encode_envelope("m", events, "1"))]))
    saved = store.load([("m", "1")])[("m", "1")]
    restored = ModelMonitor.from_dict(saved, logic_params(SETTINGS).monitor)
    assert restored.to_dict() == saved
    x = restored.describe()["features"]["x"]
    assert x["count"] == len(xs)
    assert x["mean"] == pytest.approx(xs.mean(), rel=1e-9, abs=1e3)
    assert x["std"] == pytest.approx(xs.std(ddof=1), rel=1e-9)
    assert (x["min"], x["max"]) == (xs.min(), xs.max())


def _label(i: int, label) -> bytes:
    return orjson.dumps({"schema_version": 1, "kind": "label", "model": "m", "event_id": f"e{i}", "label": label,
                         "timestamp": 2.0 + i})


def test_damaged_label_join_records_cost_only_their_own_label():
    store = MemoryStateStore()
    processor = BatchProcessor(SETTINGS, store)
    _run_singles(store, processor, 0, 100)
    kept = [k for k in store._predictions if k[0] == "m"]
    assert kept, "predictions are kept for the label join"
    store._predictions[kept[0]][0]["e3"] = b"{not json"       # undecodable
    store._predictions[kept[0]][0]["e4"] = orjson.dumps([1])  # decodable, of the wrong form
    outcome = processor.process([IncomingMessage("l", 0, i, _label(i, i % 2)) for i in range(10)])
    assert store.commit(outcome)
    assert outcome.labels == 10 and outcome.unmatched_labels == 0
    assert store.label_counts()["m:joined"] == 8  # e3 and e4 wait for a prediction that is not readable
    assert store.label_counts()["m:pending"] == 2


def test_a_label_that_fails_to_apply_is_dead_lettered_alone(monkeypatch):
    from detectors.model.performance_tracker import PerformanceTracker

    real = PerformanceTracker.on_labels

    def on_labels(self, joined):
        if any(j.event_id == "e5" for j in joined):
            raise ValueError("cannot use label of e5")
        return real(self, joined)

    monkeypatch.setattr(PerformanceTracker, "on_labels", on_labels)
    store = MemoryStateStore()
    processor = BatchProcessor(SETTINGS, store)
    _run_singles(store, processor, 0, 50)
    outcome = processor.process([IncomingMessage("l", 0, i, _label(i, i % 2)) for i in range(10)])
    assert store.commit(outcome)
    assert [(d["event_id"], d["reason_code"], d["source"]["offset"]) for d in outcome.dead_letters] == \
        [("e5", "apply_failed", 5)]


@pytest.mark.parametrize("columns", [{"x": []}, {"x": {"kind": "numeric"}}, {"x": {"kind": "numeric", "monitor": 7}}])
def test_a_profile_that_parses_but_cannot_be_used_is_quarantined(columns):
    from stream_processors.profile_registry import profile_from_table

    frame = drifting_credit_data(n=3000, seed=1)
    doc = profile_from_table(frame, plan_columns(frame), "m", "1", SETTINGS).to_dict()
    doc["columns"] = columns
    store = MemoryStateStore()
    store.put_raw("profile", "m", "1", orjson.dumps(doc))
    processor = BatchProcessor(SETTINGS, store)
    outcome = _run_singles(store, processor, 0, 50)
    assert outcome.events == 50 and not outcome.dead_letters
    assert store.quarantined()[("m", "1")]["record"] == "profile"
    assert store.profiles([("m", "1")])[("m", "1")] is None


def test_dead_letters_have_deterministic_ids():
    messages = [IncomingMessage("t", 0, 0, b"{oops"), IncomingMessage("t", 0, 1, b"{oops"),
                IncomingMessage("t", 0, 2, encode_envelope("m", [{"event_id": "a"}, {"event_id": "b"}], "1"))]
    first = BatchProcessor(SETTINGS, MemoryStateStore()).process(messages).dead_letters
    again = BatchProcessor(SETTINGS, MemoryStateStore()).process(messages).dead_letters
    assert [d["id"] for d in first] == [d["id"] for d in again]
    assert len({d["id"] for d in first}) == 4


def test_a_timestamp_before_1970_is_rejected_in_any_form():
    from producers.events import decode_message

    for ts in (-1.0, "1969-12-31T23:59:59+00:00"):
        [rejection] = decode_message(encode_event_like(ts), 10 ** 6).rejections
        assert rejection.code == "timestamp"


def encode_event_like(ts) -> bytes:
    return orjson.dumps({"schema_version": 1, "model": "m", "model_version": "1", "event_id": "e", "timestamp": ts,
                         "features": {}, "prediction": 1})


def test_a_message_delivered_twice_in_one_batch_counts_once():
    store = MemoryStateStore()
    processor = BatchProcessor(SETTINGS, store)
    messages = [IncomingMessage("t", 0, i, _single(i)) for i in range(5)]
    assert store.commit(processor.process(messages[:2]))
    # 2..4 were buffered before a rebalance; the consumer went back to Redis's offset and delivered 2, 3 again
    outcome = processor.process(messages[2:] + messages[2:4])
    assert store.commit(outcome)
    assert outcome.events == 2 and outcome.offsets[("t", 0)] == (1, 3)
    again = processor.process(messages[4:])  # and 4 comes after them
    assert store.commit(again) and again.events == 1
    assert ModelMonitor.from_dict(store.load([("m", "1")])[("m", "1")], logic_params(SETTINGS).monitor).events == 5


def test_after_a_rewind_within_a_batch_nothing_is_skipped():
    store = MemoryStateStore()
    processor = BatchProcessor(SETTINGS, store)
    first = processor.process([IncomingMessage("t", 0, i, _single(i)) for i in range(3)])
    assert store.commit(first)
    # delivered: 7, 8 (read before a seek), then 3, 4 (the seek went back to Redis's offset)
    outcome = processor.process([IncomingMessage("t", 0, i, _single(i)) for i in (7, 8, 3, 4)])
    assert store.commit(outcome)
    assert outcome.events == 2 and outcome.offsets[("t", 0)] == (2, 4)
    rest = processor.process([IncomingMessage("t", 0, i, _single(i)) for i in range(5, 9)])
    assert store.commit(rest) and rest.events == 4
    assert ModelMonitor.from_dict(store.load([("m", "1")])[("m", "1")], logic_params(SETTINGS).monitor).events == 9


def _episodic_drift_messages(n=12000, seed=11):
    """Two features shifted for a stretch, then back: drift episodes open and resolve, the drift rule triggers a
    retrain and its verdict later lapses without any finding (the drift ages out of the window)."""
    frame = drifting_credit_data(n=n, shift_at=n, seed=seed)
    stretch = slice(n // 2, n // 2 + n // 6)  # after the baseline (without a reference profile, ~5,000 events)
    for name in ("income", "age"):
        values = frame[name].to_numpy(dtype=float, copy=True)
        values[stretch] += 2.0 * np.nanstd(values)
        frame[name] = values
    events, _ = rows_to_events(frame, plan_columns(frame), "credit")
    return _cut(events, [1, 1, 7, 1, 40, 1, 3, 1, 1, 12]), len(events)


def test_retrain_decisions_are_the_same_however_batches_group_the_messages():
    """The retrain policy decides at the end of a call; a batch applies a version's messages as one call only
    while they are quiet, so triggers, their ids and the saved verdict do not depend on how a restart regroups
    messages into batches."""
    settings = dataclasses.replace(SETTINGS, trigger_drift_features=2, trigger_window_events=1200,
                                   trigger_cooldown_events=800, cooldown_events=300)
    messages, n = _episodic_drift_messages()
    runs = {}
    for per_batch in (1, 13, 97, 2000):  # 2000: all ~1,760 messages in one batch, halved around each finding
        store = MemoryStateStore()
        alerts = _run(store, messages, per_batch, settings)
        runs[per_batch] = (store.load([("credit", "1")])[("credit", "1")], [a["id"] for a in alerts], alerts)
    state, ids, alerts = runs[1]
    assert state["events"] == n
    assert any(a["type"] == "retrain" for a in alerts), "the stream must exercise the retrain policy"
    assert state["policy"]["verdict"]["verdict"] == "continue" and "no longer holds" in str(state["policy"]["verdict"])
    for per_batch in (13, 97, 2000):
        assert runs[per_batch][0] == state, per_batch
        assert runs[per_batch][1] == ids, per_batch


def test_a_version_with_a_reference_profile_alerts_the_same_in_one_batch_as_message_by_message():
    """A loud run is halved, the state going back to a copy before each try: with a reference profile the copy
    keeps the detectors that ran since the batch began (adopting the profile afresh would reset them: no
    alert, and other bytes). And a finding costs a few calls, not one per message."""
    from stream_processors.profile_registry import profile_from_table

    reference = drifting_credit_data(n=3000, seed=1)
    profile = orjson.dumps(profile_from_table(reference, plan_columns(reference), "credit", "1", SETTINGS).to_dict())
    frame = drifting_credit_data(n=3000, shift_at=1500, seed=2)
    events, _ = rows_to_events(frame, plan_columns(frame), "credit")
    messages = _cut(events, [1, 1, 7, 1, 40, 1, 3, 1, 1, 12])
    runs = {}
    for per_batch in (1, len(messages)):
        store = MemoryStateStore()
        store.put_raw("profile", "credit", "1", profile)
        calls = []
        apply = ModelMonitor.apply
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ModelMonitor, "apply", lambda self, events: calls.append(len(events)) or apply(self, events))
            alerts = _run(store, messages, per_batch)
        runs[per_batch] = (store.load([("credit", "1")])[("credit", "1")], [a["id"] for a in alerts], len(calls))
    state, ids, _ = runs[1]
    assert state["scenario"] == "reference" and len(ids) >= 2
    one_batch_state, one_batch_ids, one_batch_calls = runs[len(messages)]
    assert one_batch_state == state and one_batch_ids == ids
    assert one_batch_calls < len(messages) / 3, (one_batch_calls, len(messages))


def test_a_state_that_cannot_be_saved_dead_letters_its_events_and_the_batch_goes_on():
    """``unsavable`` takes the version out of the batch's states while the save loops over them; and the copies
    a loud run's halving takes meet the same fault: neither may raise out of ``process``."""
    messages, _n = _episodic_drift_messages(n=8000)
    to_dict = ModelMonitor.to_dict

    def failing(self):
        if self.events > 4000:
            raise TypeError("Integer exceeds 64-bit range (raised by the test)")
        return to_dict(self)

    for per_batch in (1, 2000):
        store = MemoryStateStore()
        processor = BatchProcessor(SETTINGS, store)
        dead = 0
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ModelMonitor, "to_dict", failing)
            for start in range(0, len(messages), per_batch):
                outcome = processor.process(messages[start:start + per_batch])
                assert store.commit(outcome)
                dead += sum(letter["count"] for letter in outcome.dead_letters)
        saved_before = (store.load([("credit", "1")])[("credit", "1")] or {}).get("events", 0)  # none: one batch
        assert saved_before <= 4000 and saved_before + dead == 8000, per_batch
