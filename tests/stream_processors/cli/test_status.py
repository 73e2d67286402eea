"""The model list of `driftline status`: its order against pandas', its page bound and how it reads."""

import io

import numpy as np
import pandas as pd
import pytest

from stream_processors.cli.status import SORTS, list_models, print_page


def _summaries(n=200, seed=5):
    rng = np.random.default_rng(seed)
    return {(f"m{i % 37}", str(i)): {"events": int(rng.integers(0, 50)), "updated": float(rng.integers(0, 100))}
            for i in range(n)}


@pytest.mark.parametrize("sort", SORTS)
def test_a_page_is_the_head_of_the_whole_list_in_the_order_asked(sort):
    summaries = _summaries()
    frame = pd.DataFrame([{"model": m, "version": v, **s} for (m, v), s in summaries.items()])
    by, ascending = {"recent": (["updated", "model", "version"], [False, True, True]),
                     "stale": (["updated", "model", "version"], [True, True, True]),
                     "name": (["model", "version"], [True, True]),
                     "events": (["events", "model", "version"], [False, True, True])}[sort]
    expected = frame.sort_values(by, ascending=ascending, kind="stable").head(25)
    assert list_models(summaries, sort, 25) == list(zip(expected["model"], expected["version"]))
    assert list_models(summaries, sort, 0) == []


def test_the_page_says_how_many_there_are_and_marks_unreadable_states():
    page = {"total": 3, "sort": "recent", "limit": 2, "now": 1000.0, "models": [
        {"model": "credit", "model_version": "2", "events": 5000, "updated": 990.0, "decision": "retrain",
         "drifting": ["income", "age"]},
        {"model": "fraud", "model_version": "1", "events": 12, "updated": -6200.0, "decision": None,
         "drifting": None}]}
    out = io.StringIO()
    print_page(page, out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("2 of 3 model versions, sorted by recent (--limit for more")
    assert lines[2].split() == ["credit", "2", "RETRAIN", "5000", "10s", "ago", "income,", "age"]
    assert lines[3].split() == ["fraud", "1", "UNREADABLE", "12", "2h", "ago", "-"]


@pytest.mark.parametrize("limit", ["-5", "0", "ten"])
def test_a_limit_that_is_not_a_positive_number_is_a_usage_error(limit, capsys):
    from stream_processors.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["status", "--limit", limit])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: driftline status" in err and "argument --limit" in err, err
    assert ("must be at least 1" if limit != "ten" else "expected a whole number") in err, err


def test_a_positive_limit_is_taken():
    from stream_processors.cli import build_parser

    assert build_parser().parse_args(["status", "--limit", "3"]).limit == 3


ANSI = "\x1b[1A\x1b[2K\rDECISION: CONTINUE (spoofed)\n  \x1b[8m"
SHOWN = "\\x1b[1A\\x1b[2K\\rDECISION: CONTINUE (spoofed)\\n  \\x1b[8m"


def test_names_with_terminal_escapes_are_shown_as_escaped_text_and_spoof_no_line():
    """The reviewer's model of issue 1015: a feature name and a category that rewrite the lines above them."""
    from detectors.model.monitor import ModelMonitor
    from stream_processors.batch import logic_params
    from stream_processors.cli.status import print_status
    from stream_processors.config import Settings

    monitor = ModelMonitor(ANSI, ANSI, logic_params(Settings()).monitor)
    monitor.apply([{"event_id": f"e{i}{ANSI}", "timestamp": 1.0 + i, "features": {ANSI: ANSI, "x": 1.0},
                    "prediction": ANSI, "score": None} for i in range(3)])
    out = io.StringIO()
    print_status({**monitor.describe(), "versions": [ANSI], "labels": {}}, out)
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert all(line.isprintable() for line in lines)
    assert sum(line.startswith("DECISION") for line in lines) == 1 and lines[0].startswith("DECISION: CONTINUE")
    assert lines[3].startswith(f"model {SHOWN} version {SHOWN}: 3 events")
    assert any(line.startswith(f"  {SHOWN} categorical") and f"{SHOWN}: 3" in line for line in lines)


def test_the_model_list_shows_names_with_terminal_escapes_as_escaped_text():
    page = {"total": 1, "sort": "recent", "limit": 20, "now": 1000.0, "models": [
        {"model": ANSI, "model_version": "\x9b2J", "events": 3, "updated": 990.0, "decision": "continue",
         "drifting": [ANSI]}]}
    out = io.StringIO()
    print_page(page, out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all(line.isprintable() for line in lines)
    assert lines[2] == f"  {SHOWN} \\x9b2J     CONTINUE           3    10s ago  {SHOWN}"


def test_a_damaged_label_count_is_shown_as_unknown_and_named():
    """``model_label_counts`` reads a count damaged in Redis as None: status says so rather than printing None,
    and shows the labels line even when every count is damaged."""
    from detectors.model.monitor import ModelMonitor
    from stream_processors.batch import logic_params
    from stream_processors.cli.status import print_status
    from stream_processors.config import Settings

    monitor = ModelMonitor("credit", "1", logic_params(Settings()).monitor)
    monitor.apply([{"event_id": f"e{i}", "timestamp": 1.0 + i, "features": {"x": 1.0}, "prediction": 1,
                    "score": None} for i in range(3)])
    for labels, shown, named in (({"joined": 5, "pending": None, "unmatched": 2}, "5 joined", "pending"),
                                 ({"joined": None, "pending": None, "unmatched": None}, "? joined",
                                  "joined, pending, unmatched")):
        out = io.StringIO()
        print_status({**monitor.describe(), "versions": ["1"], "labels": labels}, out)
        text = out.getvalue()
        assert "None" not in text
        line = next(line for line in text.splitlines() if line.startswith("  labels: "))
        assert line.startswith(f"  labels: {shown}") and "? waiting" in line
        assert f"damaged in Redis (not a whole number of at most 18 digits, as Driftline writes them): the {named} " \
               "label count" in text
    out = io.StringIO()
    print_status({**monitor.describe(), "versions": ["1"], "labels": {"joined": 0, "pending": 0, "unmatched": 0}},
                 out)
    assert "labels:" not in out.getvalue() and "damaged" not in out.getvalue()
