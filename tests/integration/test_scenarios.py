"""Both scenarios on real Kafka and Redis, through the CLI: profile, replay, alerts."""

import orjson
import pytest

from producers.example_data import drifting_credit_data
from stream_processors.state import redis_client
from stream_processors.profile_registry import restore_profiles
from stream_processors.state import profile_key

from .conftest import run_cli, wait_until_applied

pytestmark = pytest.mark.integration


def _alerts(settings):
    result = run_cli(settings, "alerts", "--json")
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_reference_scenario_drift_and_data_quality(settings, worker_factory, tmp_path):
    train = drifting_credit_data(n=20000, shift_at=20000, seed=31)        # no shift: the training data
    prod = drifting_credit_data(n=12000, shift_at=4000, shifted_feature="tenure_years", seed=32)
    prod.loc[6000:, "region"] = prod.loc[6000:, "region"].mask(prod.index[6000:] % 10 == 0, "atlantis")
    train.to_csv(tmp_path / "train.csv", index=False)
    prod.to_csv(tmp_path / "prod.csv", index=False)

    profiled = run_cli(settings, "profile", "--model", "credit", "--model-version", "7", "--data",
                       str(tmp_path / "train.csv"), "--json")
    assert profiled.returncode == 0, profiled.stderr
    summary = orjson.loads(profiled.stdout)
    assert summary["rows"] == 20000 and summary["columns"]["region"] == "categorical"
    assert summary["performance"]["task"] == "classification"
    assert summary["performance"]["accuracy"] == pytest.approx(
        (train["prediction"] == train["label"]).mean(), abs=1e-12)

    worker = worker_factory(settings).start()
    replayed = run_cli(settings, "replay", "--model", "credit", "--model-version", "7", "--data",
                       str(tmp_path / "prod.csv"))
    assert replayed.returncode == 0, replayed.stderr
    wait_until_applied(settings, worker)

    alerts = _alerts(settings)
    assert alerts and {a["scenario"] for a in alerts} == {"reference"}
    drift = [a for a in alerts if a["type"] == "drift"]
    quality = [a for a in alerts if a["type"] == "data_quality"]
    # region's distribution changed too: a tenth of its values are a new category
    assert {a["feature"] for a in drift} == {"tenure_years", "region"}, drift
    assert {a["detector"] for a in drift if a["feature"] == "region"} == {"chi_square"}
    unchanged = {"age", "income", "debt_ratio", "n_accounts", "homeowner", "__prediction__", "__score__"}
    assert not [a for a in alerts if a["feature"] in unchanged], alerts
    first = min(int(a["evidence"]["last_event_id"].removeprefix("app-")) for a in drift
                if a["feature"] == "tenure_years")
    assert 4000 <= first <= 4300  # a 1 sd shift, against a known reference
    assert {(a["feature"], a["detector"]) for a in quality} >= {("region", "unseen_category")}
    assert {a["feature"] for a in quality} <= {"region", "tenure_years"}  # tenure: values past the reference range
    for a in alerts:
        assert a["statistic"] is not None and a["threshold"] is not None and a["evidence"]["last_event_id"]

    status = orjson.loads(run_cli(settings, "status", "--model", "credit", "--json").stdout)
    assert status["scenario"] == "reference" and status["events"] == 12000


def test_no_reference_scenario(settings, worker_factory, tmp_path):
    prod = drifting_credit_data(n=16000, shift_at=9000, shifted_feature="n_accounts", shift_sigma=1.0, seed=33)
    prod.to_csv(tmp_path / "prod.csv", index=False)
    worker = worker_factory(settings).start()
    assert run_cli(settings, "replay", "--model", "credit", "--model-version", "1", "--data",
                   str(tmp_path / "prod.csv")).returncode == 0
    wait_until_applied(settings, worker)
    alerts = _alerts(settings)
    assert {a["scenario"] for a in alerts} == {"no_reference"}
    assert {a["feature"] for a in alerts if a["type"] == "drift"} == {"n_accounts"}, alerts
    first = min(int(a["evidence"]["last_event_id"].removeprefix("app-")) for a in alerts if a["type"] == "drift")
    assert 9000 <= first <= 9500


def test_profiles_come_back_from_the_compacted_topic(settings, tmp_path):
    drifting_credit_data(n=3000, seed=34).to_csv(tmp_path / "train.csv", index=False)
    assert run_cli(settings, "profile", "--model", "m-restore", "--model-version", "1", "--data",
                   str(tmp_path / "train.csv")).returncode == 0
    client = redis_client(settings.redis)
    saved = client.get(profile_key(settings.app_id, "m-restore", "1"))
    client.delete(profile_key(settings.app_id, "m-restore", "1"))
    assert restore_profiles(settings) >= 1
    assert client.get(profile_key(settings.app_id, "m-restore", "1")) == saved
