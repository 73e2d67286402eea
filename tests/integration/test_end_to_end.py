"""Replay → worker → alerts and status, on real Kafka and Redis, through the CLI."""

import numpy as np
import orjson
import pytest

from producers.example_data import drifting_credit_data

from .conftest import BACKENDS, run_cli, wait_until_applied

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("redis_backend", BACKENDS, indirect=True)]

SHIFT_AT = 8000


def test_mean_shift_in_one_feature_alerts_on_that_feature_only(settings, worker_factory, tmp_path):
    # tenure_years does not enter the model's score, so predictions do not drift with it
    frame = drifting_credit_data(n=16000, shift_at=SHIFT_AT, shifted_feature="tenure_years", seed=21)
    data = tmp_path / "credit.csv"
    frame.to_csv(data, index=False)
    worker = worker_factory(settings).start()
    replayed = run_cli(settings, "replay", "--model", "credit", "--model-version", "4", "--data", str(data),
                       "--json")
    assert replayed.returncode == 0, replayed.stderr
    summary = orjson.loads(replayed.stdout)
    assert summary["events"] == 16000 and summary["failed"] == 0
    assert summary["features"]["region"] == "categorical" and summary["features"]["homeowner"] == "boolean"
    wait_until_applied(settings, worker)

    alerts_cli = run_cli(settings, "alerts", "--json", "--model", "credit")
    assert alerts_cli.returncode == 0, alerts_cli.stderr
    alerts = [orjson.loads(line) for line in alerts_cli.stdout.splitlines()]
    assert {a["feature"] for a in alerts} == {"tenure_years"}, alerts
    first = min(alerts, key=lambda a: a["evidence"]["last_event_id"])
    fired_at = int(first["evidence"]["last_event_id"].removeprefix("app-"))
    assert SHIFT_AT <= fired_at <= SHIFT_AT + 500
    for key in ("id", "type", "model", "model_version", "feature", "detector", "severity", "statistic",
                "threshold", "scenario", "created_at", "evidence"):
        assert key in first
    assert (first["type"], first["model_version"], first["scenario"]) == ("drift", "4", "no_reference")
    assert first["evidence"]["events_seen"] > SHIFT_AT

    status_cli = run_cli(settings, "status", "--model", "credit", "--json")
    assert status_cli.returncode == 0, status_cli.stderr
    status = orjson.loads(status_cli.stdout)
    assert status["model"] == "credit" and status["events"] == 16000
    for name in ("age", "income", "debt_ratio", "tenure_years", "n_accounts"):
        col = frame[name].to_numpy()
        present = col[~np.isnan(col)]
        f = status["features"][name]
        assert (f["count"], f["missing"]) == (present.size, col.size - present.size)
        assert f["mean"] == pytest.approx(np.mean(present), rel=1e-9)
        assert f["std"] == pytest.approx(np.std(present, ddof=1), rel=1e-9)
        assert (f["min"], f["max"]) == (present.min(), present.max())
        assert f["p50"] == pytest.approx(np.median(present), rel=0.02)
    assert status["features"]["region"]["frequencies"] == frame["region"].value_counts().to_dict()

    # the episode began at the first firing, however often its detectors fired since
    assert status["features"]["tenure_years"]["drifting_since_event"] == first["started_at_event"] \
        == first["evidence"]["last_event_id"]
    human = run_cli(settings, "status", "--model", "credit")
    assert f"[drifting since event {first['started_at_event']}]" in human.stdout
    opened = f"FIRING   drift tenure_years by {first['detector']}: since event {first['started_at_event']}"
    assert opened in human.stdout


def test_unknown_model_is_one_clear_line(settings, worker_factory):
    result = run_cli(settings, "status", "--model", "nobody")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "unknown model 'nobody'" in result.stderr
