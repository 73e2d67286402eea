"""Labels, performance and the retrain loop on real Kafka and Redis."""

import json
import confluent_kafka
import numpy as np
import orjson
import pytest
from sklearn import metrics as sk

from producers.example_data import drifting_credit_data

from .conftest import describe, read_topic, run_cli, status_json, wait_until_applied

pytestmark = pytest.mark.integration


def _trigger(i: int) -> dict:
    return {"id": f"trigger-{i}", "type": "retrain", "model": "credit", "model_version": "1", "feature": None,
            "detector": "retrain_policy", "severity": "critical", "statistic": 1.0, "threshold": 1.0,
            "scenario": "reference", "created_at": 0.0, "evidence": {"last_event_id": f"e{i}", "events_seen": i}}


def test_the_exec_consumer_runs_once_per_trigger_across_restarts(settings, tmp_path):
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka.bootstrap,
                                         "partitioner": "murmur2_random"})
    for record in (_trigger(1), {**_trigger(9), "type": "drift"}, _trigger(2)):
        producer.produce(settings.control_topic, key=b"credit", value=orjson.dumps(record))
    assert producer.flush(30) == 0
    out = tmp_path / "runs.jsonl"
    command = f"cat >> {out}; echo >> {out}"
    first = run_cli(settings, "triggers", "--exec", command, "--group", settings.app_id + "-g1", "--stop-after", "8")
    assert first.returncode == 0, first.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines() if line] == ["trigger-1", "trigger-2"]
    producer.produce(settings.control_topic, key=b"credit", value=orjson.dumps(_trigger(3)))
    assert producer.flush(30) == 0
    again = run_cli(settings, "triggers", "--exec", command, "--group", settings.app_id + "-g1", "--stop-after", "8")
    assert again.returncode == 0, again.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines() if line] == [
        "trigger-1", "trigger-2", "trigger-3"]  # a restart runs the new trigger only


def test_a_failing_command_is_retried_and_the_trigger_is_not_lost(settings, tmp_path):
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka.bootstrap,
                                         "partitioner": "murmur2_random"})
    producer.produce(settings.control_topic, key=b"credit", value=orjson.dumps(_trigger(5)))
    assert producer.flush(30) == 0
    marker = tmp_path / "failed-once"
    out = tmp_path / "runs.txt"
    command = f"if [ ! -e {marker} ]; then touch {marker}; exit 3; fi; echo $DRIFTLINE_TRIGGER_ID >> {out}"
    result = run_cli(settings, "triggers", "--exec", command, "--group", settings.app_id + "-g2", "--stop-after", "10")
    assert result.returncode == 0, result.stderr
    assert "exited 3 (attempt 1 of 3); retrying in 1s" in result.stdout
    assert out.read_text().split() == ["trigger-5"]


def test_the_loop_profile_labels_late_and_early_performance_alert_trigger_exec(settings, worker_factory, tmp_path):
    train = drifting_credit_data(n=20000, shift_at=20000, seed=51)
    prod = drifting_credit_data(n=12000, shift_at=20000, seed=52)
    rng = np.random.default_rng(53)
    flip = (np.arange(len(prod)) >= 6000) & (rng.random(len(prod)) < 0.35)
    prod.loc[flip, "label"] = 1 - prod.loc[flip, "label"]  # from event 6000 on, the model is often wrong
    train.to_csv(tmp_path / "train.csv", index=False)
    prod.drop(columns=["label"]).to_csv(tmp_path / "prod.csv", index=False)
    labels = prod[["event_id", "label"]].sample(frac=1.0, random_state=54).reset_index(drop=True)
    early, late = labels.iloc[:4000], labels.iloc[4000:]  # early ones come before their predictions
    early.to_csv(tmp_path / "early.csv", index=False)
    late.to_csv(tmp_path / "late.csv", index=False)

    settings = settings.replace(performance_window=1000)
    assert run_cli(settings, "profile", "--model", "credit", "--model-version", "1", "--data",
                   str(tmp_path / "train.csv")).returncode == 0
    worker = worker_factory(settings).start()
    for args in (["--labels", str(tmp_path / "early.csv")], ["--data", str(tmp_path / "prod.csv")],
                 ["--labels", str(tmp_path / "late.csv")]):
        sent = run_cli(settings, "replay", "--model", "credit", "--model-version", "1", *args)
        assert sent.returncode == 0, sent.stderr
        wait_until_applied(settings, worker)

    status = describe(settings, "credit", "1")
    perf = status["performance"]
    assert perf["baseline_from"] == "reference" and perf["task"] == "classification"
    # Realized metrics equal scikit-learn's over the same windows. Join order: the early labels as
    # their predictions arrived (event order), then the late ones as they were sent.
    order = {e: i for i, e in enumerate(prod["event_id"])}
    joined = sorted(early["event_id"], key=order.get) + late["event_id"].tolist()
    truth = dict(zip(prod["event_id"], prod["label"]))
    predicted = dict(zip(prod["event_id"], prod["prediction"]))
    score = dict(zip(prod["event_id"], prod["score"]))
    windows = perf["windows"]
    assert len(windows) == 10  # the last ten of twelve
    for k, window in enumerate(windows, start=2):
        ids = joined[k * 1000:(k + 1) * 1000]
        y = [truth[i] for i in ids]
        assert window["accuracy"] == pytest.approx(sk.accuracy_score(y, [predicted[i] for i in ids]), abs=1e-12)
        assert window["roc_auc"] == pytest.approx(sk.roc_auc_score(y, [score[i] for i in ids]), abs=1e-12)

    alerts = read_topic(settings, settings.control_topic)
    performance = [a for a in alerts if a["type"] == "performance"]
    triggers = [a for a in alerts if a["type"] == "retrain"]
    assert performance, "a third of the labels flipped: realized accuracy must fall"
    assert len({t["id"] for t in triggers}) == 1
    assert not [a for a in alerts if a["type"] == "drift"]  # the inputs did not change

    out = tmp_path / "retrain.jsonl"
    ran = run_cli(settings, "triggers", "--exec", f"cat >> {out}; echo >> {out}", "--stop-after", "8")
    assert ran.returncode == 0, ran.stderr
    [run] = [json.loads(line) for line in out.read_text().splitlines() if line]
    assert run["id"] == triggers[0]["id"] and run["evidence"]["rule"] == "performance"


def test_a_shift_that_does_not_hurt_drifts_without_a_performance_alert(settings, worker_factory, tmp_path):
    prod = drifting_credit_data(n=12000, shift_at=6000, shifted_feature="tenure_years", seed=61)
    prod.to_csv(tmp_path / "prod.csv", index=False)  # with its label column: labels follow the events
    worker = worker_factory(settings.replace(performance_window=1000)).start()
    assert run_cli(settings, "replay", "--model", "credit", "--model-version", "1", "--data",
                   str(tmp_path / "prod.csv")).returncode == 0
    wait_until_applied(settings, worker)
    alerts = read_topic(settings, settings.control_topic)
    assert {a["feature"] for a in alerts if a["type"] == "drift"} == {"tenure_years"}
    assert not [a for a in alerts if a["type"] in ("performance", "retrain")]
    assert len(describe(settings, "credit", "1")["performance"]["windows"]) == 10
    # the decision follows the evidence: the input drifted, performance held, so continue (and it says why)
    status = status_json(settings)
    assert list(status)[0] == "decision"
    decision = status["decision"]
    assert decision["verdict"] == "continue" and decision["rule"] is None
    assert decision["drifted_features"] == ["tenure_years"] and "performance holds" in decision["evidence"]
    assert run_cli(settings, "status", "--model", "credit").stdout.startswith("DECISION: CONTINUE")
