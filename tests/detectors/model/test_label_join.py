"""The label join's decisions, read from the typed writes it returns (the stores' side is the contract test
in tests/stream_processors/state)."""

from __future__ import annotations

import pytest

from detectors.model.label_join import LabelJoin
from detectors.model.params import JoinParams
from detectors.model.writes import AwaitLabel, CountLabels, ForgetLabel, KeepPredictions
from stream_processors.state import MemoryStateStore

PARAMS = JoinParams(keep_predictions=True, prediction_ttl_s=7200, label_wait_s=30.0)
NOW = 7200.0 * 100 + 5


def _prediction(i: int, version: str = "1") -> tuple[str, dict]:
    return version, {"event_id": f"e{i}", "prediction": i % 2, "score": 0.5, "timestamp": float(i)}


def _label(i: int, label=1) -> dict:
    return {"event_id": f"e{i}", "label": label, "timestamp": 1.0}


def _commit(store: MemoryStateStore, writes: list, n: int) -> None:
    class Batch:
        offsets = {("t", 0): (n - 1, n)}
        states, events_total, quarantined = {}, {}, []

    Batch.writes = writes
    assert store.commit(Batch)


def test_predictions_are_kept_in_the_hour_bucket_for_the_ttl_plus_an_hour():
    batch = LabelJoin(PARAMS, MemoryStateStore(lambda: NOW)).run({"m": [_prediction(1), _prediction(2, "2")]}, {},
                                                                 NOW)
    assert batch.writes == [KeepPredictions("m", 200, 10800, ("e1", "e2"), (("1", 1, 0.5, 1.0), ("2", 0, 0.5, 2.0)))]
    with pytest.raises(ValueError, match="2 event ids for 1 predictions"):
        KeepPredictions("m", 200, 10800, ("e1", "e2"), (("1", 1, 0.5, 1.0),))
    for bad in (None, 0.1, ["x"]):  # the commit script would write them as they come, after the offsets
        with pytest.raises(TypeError, match="event ids must be strings"):
            KeepPredictions("m", 200, 10800, ("e1", bad), (("1", 1, 0.5, 1.0), ("1", 1, 0.5, 1.0)))
    off = JoinParams(keep_predictions=False, prediction_ttl_s=7200, label_wait_s=30.0)
    assert LabelJoin(off, MemoryStateStore()).run({"m": [_prediction(1)]}, {}, NOW).writes == []


def test_a_label_and_its_prediction_in_one_batch_join_without_waiting():
    batch = LabelJoin(PARAMS, MemoryStateStore(lambda: NOW)).run({"m": [_prediction(3)]}, {"m": [_label(3, 0)]},
                                                                 NOW)
    [joined] = batch.joined[("m", "1")]
    assert (joined.event_id, joined.prediction, joined.label, joined.model_version) == ("e3", 1, 0, "1")
    assert not any(isinstance(w, AwaitLabel) for w in batch.writes)
    assert batch.writes[-1] == CountLabels("m", joined=1)


def test_a_label_waits_for_its_prediction_then_joins_or_is_unmatched():
    store = MemoryStateStore(lambda: NOW)
    join = LabelJoin(PARAMS, store)
    first = join.run({}, {"m": [_label(4), _label(5)]}, NOW)
    assert first.joined == {}
    assert [w for w in first.writes if isinstance(w, AwaitLabel)] == [
        AwaitLabel("m", "e4", 1, 1.0, NOW + 30.0, 3630), AwaitLabel("m", "e5", 1, 1.0, NOW + 30.0, 3630)]
    assert first.writes[-1] == CountLabels("m", pending=2)
    _commit(store, first.writes, 0)
    second = join.run({"m": [_prediction(4)]}, {}, NOW + 1)
    assert [j.event_id for j in second.joined[("m", "1")]] == ["e4"]
    assert ForgetLabel("m", "e4") in second.writes and second.writes[-1] == CountLabels("m", pending=-1, joined=1)
    _commit(store, second.writes, 1)
    third = join.run({}, {"m": []}, NOW + 31)
    assert third.unmatched == {"m": 1} and ForgetLabel("m", "e5") in third.writes
    assert third.writes[-1] == CountLabels("m", pending=-1, unmatched=1)
