"""Debian's Prometheus scrapes a worker processing real events; the series say what `status` says."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest

from producers.example_data import drifting_credit_data

from .conftest import free_port, run_cli, wait_until_applied

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"


def _query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def _wait_for(base: str, expr: str, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = _query(base, expr)
            if result:
                return result
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no result for {expr} within {timeout}s")


@pytest.fixture
def prometheus(tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: run 'make stack-up' (it installs Debian's prometheus)")
    started = []

    def start(targets: list[str]) -> str:
        port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(RULES)],
                  "scrape_configs": [{"job_name": "driftline-workers", "static_configs": [{"targets": targets}]}]}
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))
        proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=open(tmp_path / "prometheus.log", "wb"), stderr=subprocess.STDOUT)
        started.append(proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(30)


def test_prometheus_scrapes_a_working_worker(settings, worker_factory, prometheus, tmp_path):
    metrics_port = free_port()
    settings = settings.replace(metrics_port=metrics_port, metrics_host="127.0.0.1")
    frame = drifting_credit_data(n=16000, shift_at=8000, shifted_feature="tenure_years", seed=41)
    frame.to_csv(tmp_path / "credit.csv", index=False)
    worker = worker_factory(settings).start()
    assert run_cli(settings, "replay", "--model", "credit", "--model-version", "5", "--data",
                   str(tmp_path / "credit.csv")).returncode == 0
    wait_until_applied(settings, worker)
    base = prometheus([f"127.0.0.1:{metrics_port}"])

    [up] = _wait_for(base, 'up{job="driftline-workers"}')
    assert up["value"][1] == "1"
    [processed] = _wait_for(base, 'driftline_events_processed_total{model="credit",model_version="5"}')
    assert float(processed["value"][1]) == 16000
    status = orjson.loads(run_cli(settings, "status", "--model", "credit", "--json").stdout)
    [events] = _wait_for(base, 'driftline_model_events{model="credit",model_version="5"}')
    assert float(events["value"][1]) == status["events"] == 16000  # `status` and the metrics agree
    [decision] = _wait_for(base, 'driftline_model_decision{model="credit",model_version="5"}')
    assert status["decision"]["verdict"] == "continue" and decision["value"][1] == "0"  # one input drifted

    drifting = {r["metric"]["feature"]: r["value"][1]
                for r in _wait_for(base, 'driftline_feature_drifting{model="credit"}')}
    assert drifting["tenure_years"] == "1" and drifting["age"] == "0"
    [alerts] = _wait_for(base, 'sum(driftline_alerts_published_total{model="credit",type="drift"})')
    assert float(alerts["value"][1]) >= 1
    statistic = _wait_for(base, 'driftline_drift_statistic{model="credit",feature="income",detector="cusum"}')
    threshold = _wait_for(base, 'driftline_drift_threshold{model="credit",feature="income",detector="cusum"}')
    assert float(statistic[0]["value"][1]) < float(threshold[0]["value"][1])  # income did not drift
    [count] = _wait_for(base, 'driftline:drifting_features:count{model="credit"}')  # a recording rule
    assert count["value"][1] == "1"
    assert _wait_for(base, 'driftline_batch_processing_seconds_count')
    assert _wait_for(base, 'driftline_consumer_lag_messages')
