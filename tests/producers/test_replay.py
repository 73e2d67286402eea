import numpy as np
import pandas as pd
import pytest

from producers.replay import ReplayError, load_table, plan_columns, rows_to_events


def _frame():
    return pd.DataFrame({"id": ["a", "b", "c"], "x": [1.0, np.nan, 3.0], "n": [1, 2, 3],
                         "flag": [True, False, True], "city": ["p", None, "q"],
                         "prediction": [0, 1, 0], "score": [0.1, 0.9, 0.2], "label": [0, 1, None]})


def test_roles_and_inferred_kinds():
    plan = plan_columns(_frame(), id_column="id")
    assert plan.features == {"x": "numeric", "n": "numeric", "flag": "boolean", "city": "categorical"}
    assert (plan.prediction_column, plan.score_column, plan.label_column) == ("prediction", "score", "label")


def test_rows_become_events_and_labels():
    frame = _frame()
    events, labels = rows_to_events(frame, plan_columns(frame, id_column="id"), "m")
    assert [e["event_id"] for e in events] == ["a", "b", "c"]
    assert events[1]["features"] == {"x": None, "n": 2, "flag": False, "city": None}
    assert events[0]["score"] == 0.1 and events[0]["prediction"] == 0
    assert [(l["event_id"], l["label"]) for l in labels] == [("a", 0), ("b", 1)]


def test_feature_subset_and_errors(tmp_path):
    frame = _frame()
    assert plan_columns(frame, id_column="id", features=["x"]).features == {"x": "numeric"}
    with pytest.raises(ReplayError, match="not in the data"):
        plan_columns(frame, id_column="nope")
    with pytest.raises(ReplayError, match=r"feature columns \['zz'\]"):
        plan_columns(frame, features=["zz"])


def test_parquet_and_csv_read_alike(tmp_path):
    frame = _frame()
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    a, b = load_table(tmp_path / "d.csv"), load_table(tmp_path / "d.parquet")
    assert plan_columns(a, id_column="id").features == plan_columns(b, id_column="id").features


def test_object_columns_take_the_kind_the_worker_gives_their_values():
    """Columns pandas leaves as objects are typed by detectors.kinds, as the worker types the values it sees:
    Python numbers are numeric (sent as numbers), mixed values categorical, booleans boolean."""
    from detectors.kinds import kind_of_values

    columns = {"ints": [1, 2, None, 4], "mixed": [1, "a", 2, None], "flags": [True, None, False, True],
               "words": ["x", "y", None, "z"]}
    frame = pd.DataFrame({"id": ["a", "b", "c", "d"], "prediction": [0, 1, 0, 1],
                          **{n: pd.Series(v, dtype=object) for n, v in columns.items()}})
    plan = plan_columns(frame, id_column="id")
    assert plan.features == {n: kind_of_values([x for x in v if x is not None]) for n, v in columns.items()}
    assert plan.features["ints"] == "numeric"
    events, _labels = rows_to_events(frame, plan, "m")
    assert [e["features"].get("ints") for e in events] == [1.0, 2.0, None, 4.0]


def test_a_number_beyond_float_range_is_one_clear_error():
    frame = pd.DataFrame({"id": ["a", "b"], "prediction": [0, 1], "big": pd.Series([1, 10**400], dtype=object)})
    with pytest.raises(ReplayError, match="'big'"):
        rows_to_events(frame, plan_columns(frame, id_column="id"), "m")
